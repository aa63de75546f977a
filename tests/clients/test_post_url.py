"""post_url against real Jekyll: every link the linking post makes with post_url, in the Jekyll
tree, leads to a page `jekyll build` (as GitHub Pages runs it) wrote; and every HTML link to a
page of the HTML site. At / and under a baseurl."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from generator.cli import main
from post_url_site import EXPECTED_JEKYLL, POSTS, make_links_project

from .checks import jekyll_build, url_to_file
from .clientenv import require_client

pytestmark = pytest.mark.client


@pytest.mark.parametrize("base", ["", "/repo"])
def test_every_post_url_link_is_a_page_jekyll_wrote(tmp_path, base):
    require_client("jekyll")
    root = make_links_project(tmp_path / "project", base)
    res = CliRunner().invoke(main, ["build", "--root", str(root), "-q"])
    assert res.exit_code == 0, res.output
    dest = tmp_path / "_site"
    code, output = jekyll_build(root / "site" / "jekyll", dest, baseurl=base)
    assert code == 0, output
    page = url_to_file(dest, "/2026/06/01/linker.html")
    html = page.read_text(encoding="utf-8")
    hrefs = dict((text, href) for href, text in re.findall(r'<a href="([^"]+)">([a-z-]+)</a>',
                                                           html))
    assert sorted(hrefs) == sorted([*POSTS, "self"])
    for slug, href in hrefs.items():
        assert href.startswith(base + "/"), href
        target = url_to_file(dest, href[len(base):])
        assert target.is_file(), f"{slug}: {href} is no page of the Jekyll build"
        if slug != "self":
            assert f"Post {slug}." in target.read_text(encoding="utf-8"), slug
            assert href == base + EXPECTED_JEKYLL[slug]
