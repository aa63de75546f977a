"""Author input diagnosed exactly, through the CLI: front matter (a byte order mark, never
closed, text on the closing line, old Mac line ends), dates that do not exist, names of
experiments, slugs and URLs. Each bad case exits 1 with one line naming the file, the line or
field and the fix, and leaves site/ and content/_freeze exactly as they were (tests/harness.py).
"""
from __future__ import annotations

import re

import pytest

from harness import (
    POST, SITE_YML, Case, add_body_line, check_case, edit, extra_post, invoke, line_of,
    tree_hashes)  # noqa: F401

PAGE = "site/html/lora-attention-geometry/index.html"


# ---------------------------------------------------------------------------------------------
# Front matter

def unclosed_front_matter(root):
    name = extra_post(root, "description: never closed\n")
    path = root / "content" / "posts" / name
    path.write_text(path.read_text(encoding="utf-8").replace("---\nAnother", "Another"),
                    encoding="utf-8")
    return Case([f"{name}:1:", "the front matter opened on line 1 is never closed",
                 "end it with a line holding only '---' before the body"])


def text_after_closing_line(root):
    name = extra_post(root, "")
    path = root / "content" / "posts" / name
    path.write_text(path.read_text(encoding="utf-8").replace("---\nAnother", "---Another"),
                    encoding="utf-8")
    return Case([f"{name}:4:", "text after the closing '---' of the front matter: 'Another",
                 "start the body on the next line"])


def old_mac_line_ends(root):
    path = root / "content" / "posts" / extra_post(root, "")
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))
    return Case(["extra.md:1:", "the line ends are carriage returns only (old Mac format)",
                 "save the file with LF or CRLF line ends"])


def stray_carriage_return(root):
    line = add_body_line(root, "A sentence with a stray")
    path = root / POST
    path.write_bytes(path.read_bytes().replace(b"with a stray", b"with a\rstray"))
    return Case([f"lora-attention-geometry.md:{line}:",
                 "a carriage return (CR) without a line feed", "save the file with LF"])


def first_line_not_exactly_dashes(root):
    edit(root, POST, "---\ntitle:", "----\ntitle:")
    return Case(["lora-attention-geometry.md:1:", "no front matter",
                 "the first line must be exactly '---'"])


# ---------------------------------------------------------------------------------------------
# Dates

def impossible_date(root):
    edit(root, POST, "date: 2026-01-11 10:00:00 +0530", "date: 2026-02-30")
    line = line_of(root, POST, "date: 2026-02-30")
    return Case([f"lora-attention-geometry.md:{line}:",
                 "'2026-02-30' is not a calendar date: day is out of range for month",
                 "write a date that exists, or quote the value to keep it as text"])


def impossible_hour(root):
    # Without a zone YAML reads it as a timestamp (and fails on the hour, with its line).
    edit(root, POST, "date: 2026-01-11 10:00:00 +0530", "date: 2026-01-11 25:00:00")
    line = line_of(root, POST, "date: 2026-01-11 25")
    return Case([f"lora-attention-geometry.md:{line}:", "is not a calendar date",
                 "hour must be in 0..23"])


def impossible_hour_with_zone(root):
    # With a +0530 zone YAML leaves it a string; the build's own reading says the same.
    edit(root, POST, "date: 2026-01-11 10:00:00 +0530", "date: 2026-01-11 25:00:00 +0530")
    return Case(["lora-attention-geometry.md: date:",
                 "'2026-01-11 25:00:00 +0530' is not a calendar date: hour must be in 0..23"])


def impossible_zone(root):
    edit(root, POST, "date: 2026-01-11 10:00:00 +0530", "date: 2026-01-11 10:00:00 +2530")
    return Case(["lora-attention-geometry.md: date:", "is not a calendar date",
                 "the zone offset must be less than 24 hours"])


def impossible_quoted_date(root):
    edit(root, POST, "date: 2026-01-11 10:00:00 +0530", 'date: "2026-02-30 10:00:00 +0530"')
    return Case(["lora-attention-geometry.md: date:",
                 "date '2026-02-30 10:00:00 +0530' is not a calendar date: day is out of range "
                 "for month", "write it as 2026-01-11 10:00:00 +0530"])


def three_digit_year(root):
    edit(root, POST, "date: 2026-01-11 10:00:00 +0530", 'date: "0999-01-11"')
    return Case(["lora-attention-geometry.md: date:", "date 0999-01-11 is out of range",
                 "use a year from 1000 to 9999"])


def impossible_date_in_site_yml(root):
    with open(root / SITE_YML, "a", encoding="utf-8") as fh:
        fh.write("extra:\n  launched: 2026-13-01\n")
    line = line_of(root, SITE_YML, "launched: 2026-13-01")
    return Case([f"site.yml:{line}:", "'2026-13-01' is not a calendar date",
                 "month must be in 1..12"])


# ---------------------------------------------------------------------------------------------
# Experiment names

def experiment_name_with_a_dash(root):
    edit(root, POST, "  main: {}\n", "  main: {}\n  keys-exp: {d_model: 8}\n")
    line = line_of(root, POST, "keys-exp")
    return Case([f"lora-attention-geometry.md:{line}: experiments.keys-exp:",
                 "experiment name 'keys-exp' is not a name a post body can use",
                 "starting with a letter, such as 'keys_exp'"])


def reserved_name(name):
    def case(root):
        edit(root, POST, "  main: {}\n", f"  main: {{}}\n  {name}: {{d_model: 8}}\n")
        line = line_of(root, POST, f"  {name}: {{d_model")
        return Case([f"lora-attention-geometry.md:{line}: experiments.{name}:",
                     f"experiment name '{name}' would hide the body's own '{name}'",
                     f"rename it, e.g. '{name}_exp'", "reserved: argmax, argmin, bibliography, caller",
                     "figure", "listing", "namespace", "range", "site", "target",
                     "and Python's keywords"])
    case.__name__ = f"reserved_name_{name}"
    return case


# ---------------------------------------------------------------------------------------------
# Slugs and URLs

def slug_taken_by_the_site(root):
    extra_post(root, "slug: assets\n")
    return Case(["extra.md: slug:", "the slug 'assets' is taken by the site's assets/ folder",
                 "rename the file, or set another slug: in its front matter"])


def file_name_taken_by_the_site(root):
    extra_post(root, "", name="feed.md")
    return Case(["feed.md:", "the slug 'feed' is taken by the Atom feed (feed.xml)"])


def two_posts_one_url(root):
    extra_post(root, "slug: lora-attention-geometry\n")
    return Case(["extra.md: slug:", "two posts have the URL /lora-attention-geometry/ (also ",
                 "lora-attention-geometry.md)", "give one of them another slug"])


def two_posts_one_jekyll_url(root):
    extra_post(root, "permalink: /lora-attention-claims-audit/\n")
    # Both set permalink:, so the later file is named.
    return Case(["lora-attention-claims-audit.md: permalink:",
                 "two posts have the Jekyll URL /lora-attention-claims-audit/ (also ",
                 "extra.md)", "another permalink:"])


def permalink_taken_by_the_site(root):
    extra_post(root, "permalink: /assets/extra/\n")
    return Case(["extra.md: permalink:", "the Jekyll URL /assets/extra/ is one of the Jekyll "
                 "tree's own paths", "choose another permalink:"])


def permalink_unknown_placeholder(root):
    extra_post(root, "permalink: /:year/:name/\n")
    return Case(["extra.md: permalink:", "unknown placeholder :name", ":title"])


def permalink_not_a_path(root):
    extra_post(root, "permalink: extra.html\n")
    return Case(["extra.md: permalink:", "must be a URL path starting with /",
                 "write it as /my-post/"])


def bad_slug_value(root):
    extra_post(root, "slug: My Extra\n")
    return Case(["extra.md: slug:", "slug 'My Extra' is not a URL slug",
                 "lower-case letters, digits and -"])


CASES = [unclosed_front_matter, text_after_closing_line, old_mac_line_ends,
         stray_carriage_return, first_line_not_exactly_dashes,
         impossible_date, impossible_hour, impossible_hour_with_zone, impossible_zone,
         impossible_quoted_date, three_digit_year,
         impossible_date_in_site_yml,
         experiment_name_with_a_dash, *(reserved_name(n) for n in (
             "range", "namespace", "argmax", "figure", "data", "experiments", "for")),
         slug_taken_by_the_site, file_name_taken_by_the_site, two_posts_one_url,
         two_posts_one_jekyll_url, permalink_taken_by_the_site, permalink_unknown_placeholder,
         permalink_not_a_path, bad_slug_value]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_author_input_is_one_clear_line_and_nothing_changes(project, case):
    check_case(project, case)


def test_a_byte_order_mark_is_accepted_and_changes_nothing(project):
    before = tree_hashes(project / "site")
    path = project / POST
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    assert tree_hashes(project / "site") == before


def test_windows_line_ends_are_accepted_and_change_nothing(project):
    before = tree_hashes(project / "site")
    path = project / POST
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    assert tree_hashes(project / "site") == before


def test_the_closing_dashes_may_end_the_file(project):
    """As in Jekyll: front matter whose '---' is the file's last line, without a newline, is a
    post with an empty body."""
    path = project / "content" / "posts" / "empty.md"
    path.write_text("---\ntitle: Nothing yet\ndate: 2026-02-01\n---", encoding="utf-8")
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    page = (project / "site" / "html" / "empty" / "index.html").read_text(encoding="utf-8")
    assert "<h1>Nothing yet</h1>" in page
    assert '<div class="post-body">\n\n</div>' in page


def test_figure_ids_are_unique_on_a_page(project):
    """The same figure of two experiments, and one figure shown twice, get distinct ids; the
    experiment 'main' keeps its anchors (fig-<name>)."""
    extra_post(project, "experiments:\n  main: {}\n"
                        "  other: {d_model: 8, seq_len: 4, key: 2, max_steps: 15}\n",
               body="{{ figure('before_lora', 'Main.') }}\n\n"
                    "{{ figure('before_lora', 'Other.', experiment='other') }}\n\n"
                    "{{ figure('before_lora', 'Main again.') }}\n")
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    page = (project / "site" / "html" / "extra" / "index.html").read_text(encoding="utf-8")
    ids = re.findall(r'<figure id="([^"]+)">', page)
    assert ids == ["fig-before_lora", "fig-other-before_lora", "fig-before_lora-2"]
    article = (project / PAGE).read_text(encoding="utf-8")
    assert '<figure id="fig-before_lora">' in article


def test_slug_in_front_matter_names_the_post_in_both_outputs(project):
    path = project / "content" / "posts" / "Draft Notes.md"   # no slug in this file name
    path.write_text("---\ntitle: Notes\ndate: 2026-02-01\nslug: notes\n---\nSome notes.\n",
                    encoding="utf-8")
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    assert "Some notes." in (project / "site/html/notes/index.html").read_text(encoding="utf-8")
    jekyll = (project / "site/jekyll/_posts/2026-02-01-notes.md").read_text(encoding="utf-8")
    assert "Some notes." in jekyll and "slug:" not in jekyll
    assert 'href="/notes/"' in (project / "site/html/index.html").read_text(encoding="utf-8")


def test_every_top_level_site_file_has_its_reserved_slug(project):
    """No output file of either tree can be hidden by a post: each top-level name the build
    writes (post folders aside) is a reserved slug, or starts with '.' or '_'."""
    from generator.authoring.urls import RESERVED_SLUGS

    posts = {"lora-attention-geometry", "lora-attention-claims-audit",
             "lora-on-a-trained-transformer"}
    for tree in ("html", "jekyll"):
        for entry in (project / "site" / tree).iterdir():
            name = entry.name.split(".")[0]
            if entry.name[0] in "._" or name in posts:
                continue
            assert name in RESERVED_SLUGS, (tree, entry.name)
