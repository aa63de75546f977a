"""{{ post_url('slug') }}: links between posts that are right in both outputs (the HTML site's
<baseurl>/<slug>/, the Jekyll post's permalink as Jekyll files it); an unknown slug is one line
naming the post and its line. Real Jekyll checks the same URLs in tests/clients/test_post_url.py."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from generator.cli import main
from post_url_site import EXPECTED_JEKYLL, POSTS, make_links_project


def build(root, *args):
    res = CliRunner().invoke(main, ["build", "--root", str(root), "-q", *args])
    assert res.exit_code == 0, res.output
    return res


def links(text: str) -> dict[str, str]:
    return dict(re.findall(r"\[([a-z-]+)\]\(([^)]+)\)", text))


@pytest.mark.parametrize("base", ["", "/repo"])
def test_post_url_in_both_outputs(tmp_path, base):
    root = make_links_project(tmp_path, base)
    build(root)
    jekyll = next((root / "site" / "jekyll" / "_posts").glob("*-linker.md")).read_text()
    assert links(jekyll) == {**{slug: base + url for slug, url in EXPECTED_JEKYLL.items()},
                             "self": f"{base}/2026/06/01/linker.html"}
    html = (root / "site" / "html" / "linker" / "index.html").read_text()
    found = dict(re.findall(r'<a href="([^"]+)">([a-z-]+)</a>', html))
    assert {v: k for k, v in found.items()} == {**{s: f"{base}/{s}/" for s in POSTS},
                                                "self": f"{base}/linker/"}
    for slug in POSTS:                                  # each HTML link is a page of the site
        assert (root / "site" / "html" / slug / "index.html").is_file()


def test_an_unknown_slug_is_one_line_naming_the_post_and_line(tmp_path):
    root = make_links_project(tmp_path)
    linker = root / "content" / "posts" / "linker.md"
    linker.write_text(linker.read_text() + "\nSee [it]({{ post_url('in-blgo') }}).\n")
    res = CliRunner().invoke(main, ["build", "--root", str(root)])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    line_no = linker.read_text().split("\n").index("See [it]({{ post_url('in-blgo') }}).") + 1
    assert lines[0] == (f"Error: {linker}:{line_no}: post_url: no post named 'in-blgo' "
                        "(did you mean 'in-blog'?)")


def test_a_post_url_target_moving_re_renders_the_post_that_links_to_it(tmp_path):
    root = make_links_project(tmp_path)
    build(root)
    post = root / "content" / "posts" / "in-blog.md"
    post.write_text(post.read_text().replace("category: blog\n", "category: news\n"))
    build(root)
    jekyll = next((root / "site" / "jekyll" / "_posts").glob("*-linker.md")).read_text()
    assert links(jekyll)["in-blog"] == "/news/2026/01/11/in-blog.html"


def test_an_unknown_permalink_placeholder_is_an_error_naming_the_post(tmp_path):
    root = make_links_project(tmp_path)
    post = root / "content" / "posts" / "placeholders.md"
    post.write_text(post.read_text().replace(":year", ":yaer"))
    res = CliRunner().invoke(main, ["build", "--root", str(root)])
    assert res.exit_code == 1
    assert f"{post}: permalink: permalink '/notes/:yaer/:title/'" in res.output
    assert ": unknown placeholder :yaer (use :categories, :year," in res.output
