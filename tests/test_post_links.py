"""Local links and images in posts are checked at build time against the pages and files of
each output (a broken one is one line naming the post and its line); external URLs are never
fetched; files in content/posts the build does not read are listed by --explain and warned
about once. Through the CLI; a failing build leaves site/ and content/_freeze as they were."""
from __future__ import annotations

import pytest

from harness import POST, Case, add_body_line, check_case, invoke, line_of, tree_hashes


def broken(text: str, url: str, output: str, why: str, args: list[str] | None = None,
           at: str | None = None, hint: str = "start with {{ site.baseurl }}/"):
    def case(root):
        with open(root / POST, "a", encoding="utf-8") as fh:
            fh.write(f"\n{text}\n")
        line = line_of(root, POST, at or text)
        return Case([f"lora-attention-geometry.md:{line}:", f"broken link {url} in the {output} "
                     f"output: {why}", hint], args=args or [])
    return case


CASES = {
    "page": broken("See [nothing](/no-such-post/).", "/no-such-post/", "html",
                   "there is no /no-such-post/"),
    "image": broken("![A chart](/assets/images/no-such.png)", "/assets/images/no-such.png",
                    "html", "there is no /assets/images/no-such.png"),
    "made by jinja": broken("See [the audit page]({{ site.baseurl }}/audit-page/).",
                            "/audit-page/", "html", "there is no /audit-page/"),
    "reference": broken("See [the notes][n].\n\n[n]: /notes/", "/notes/", "html",
                        "there is no /notes/", at="[n]: /notes/"),
    "raw html": broken('<a href="/raw/">raw</a>', "/raw/", "html", "there is no /raw/"),
    "relative, broken in jekyll": broken(
        "See [the audit](../lora-attention-claims-audit/).", "../lora-attention-claims-audit/",
        "jekyll", "there is no /blog/2026/01/lora-attention-claims-audit/"),
    "only in one output": broken(
        "Read [the feed]({{ site.baseurl }}/feed.xml).", "/feed.xml", "jekyll",
        "there is no /feed.xml"),
    "a post's address in the other output": broken(
        "See [this page]({{ site.baseurl }}/lora-attention-geometry/).",
        "/lora-attention-geometry/", "jekyll", "there is no /lora-attention-geometry/",
        hint="link to a post with {{ post_url('lora-attention-geometry') }}, which gives each "
             "output its own address"),
    "without the baseurl": broken(
        "See [the audit](/lora-attention-claims-audit/).", "/lora-attention-claims-audit/",
        "html", "it leads outside the site's baseurl /repo", args=["--baseurl", "/repo"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_broken_local_link_is_one_line_naming_the_post_and_line(project, name):
    check_case(project, CASES[name])


def test_links_that_work_and_links_that_are_not_checked(project):
    for text in ("[The audit]({{ site.baseurl }}/lora-attention-claims-audit/), [a figure]"
                 "({{ site.baseurl }}/assets/images/before_lora.png), [up](#introduction).",
                 "[Far away](https://example.invalid/nowhere/) and <https://example.invalid/x>"
                 " and [mail](mailto:someone@example.invalid).",
                 "Code is not a link: `[x](/no-such/)`, nor is math: $[a](b)$.",
                 "```text\n[x](/no-such-either/)\n```"):
        with open(project / POST, "a", encoding="utf-8") as fh:
            fh.write(f"\n{text}\n")
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    page = (project / "site/html/lora-attention-geometry/index.html").read_text(encoding="utf-8")
    assert 'href="https://example.invalid/nowhere/"' in page


IGNORED = {"drafts/next.md": "in a subfolder", "notes.markdown": "only files named *.md",
           ".lora-attention-geometry.md.swp": "a hidden or editor's file",
           "lora-attention-geometry.md~": "a hidden or editor's file",
           "figure.png": "not a post"}


def test_files_the_build_ignores_are_listed_and_warned_about_once(project):
    before = tree_hashes(project / "site")
    posts = project / "content" / "posts"
    (posts / "drafts").mkdir()
    for rel in IGNORED:
        (posts / rel).write_text("---\ntitle: Not read\ndate: 2026-02-01\n---\nNot read.\n")
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: 5 file(s) in content/posts are not posts and are ignored: "
        ".lora-attention-geometry.md.swp, drafts/next.md, figure.png and 2 more "
        "(--explain says why)"]
    assert tree_hashes(project / "site") == before      # not one of them was read
    # The next build says nothing (it was said once) unless asked, and --explain says why.
    add_body_line(project, "A new sentence.")
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0 and result.stderr == "", result.output
    add_body_line(project, "Another new sentence.")
    result = invoke("build", "--root", project, "--quiet", "--explain")
    assert result.exit_code == 0, result.output
    lines = [x for x in result.stderr.splitlines() if x.startswith("ignored: ")]
    assert len(lines) == len(IGNORED)
    for rel, why in IGNORED.items():
        assert any(x.startswith(f"ignored: content/posts/{rel} (") and why in x for x in lines)
    # A new ignored file is warned about again.
    (posts / "later.markdown").write_text("x")
    result = invoke("build", "--root", project, "--quiet")
    assert "warning: 6 file(s) in content/posts are not posts" in result.stderr


def test_an_up_to_date_build_names_stages_only(project):
    """The no-op build's --explain repeats the last build's stages; the ignored files the
    last build named are not stages."""
    (project / "content" / "posts" / "notes.markdown").write_text("x")
    assert invoke("build", "--root", project, "--quiet").exit_code == 0
    result = invoke("build", "--root", project, "--explain")
    assert "up to date" in result.output
    assert not any(line.startswith("ignored") for line in result.stderr.splitlines())
