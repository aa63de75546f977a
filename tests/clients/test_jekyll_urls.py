"""Jekyll itself agrees with the build about where each post lives and which posts exist: a
future-dated post is published (the tree's _config.yml says future: true), a draft is not in
the tree at all, and every post is at the URL the build computed (authoring.urls), which is
what its link check and its refusal of two posts with one URL rely on."""
from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from generator.authoring.post_info import post_info
from generator.authoring.posts import read_posts
from generator.authoring.site_config import load_site_config
from generator.cli import main
from generator.core.context import BuildContext
from generator.core.project import Project

from .checks import jekyll_build, url_to_file
from .clientenv import require_client

pytestmark = pytest.mark.client

POSTS = {
    "normal.md": "date: 2026-01-11 10:00:00 +0530\ncategory: blog\n",
    "later.md": "date: 2999-01-01\n",
    "file-name.md": "date: 2026-01-12\nslug: chosen\ncategories: Alpha Beta\n",
    "linked.md": "date: 2026-01-13\npermalink: /fixed/:year/:title/\n",
    "late.md": "date: 2026-01-11 00:30:00 +0530\n",
    "wip.md": "date: 2026-01-14\npublished: false\n",
}


def test_jekyll_serves_each_post_where_the_build_says(tmp_path):
    require_client("jekyll")
    posts = tmp_path / "content" / "posts"
    posts.mkdir(parents=True)
    (tmp_path / "content" / "site.yml").write_text(
        'title: "T"\ndescription: "D"\nauthor: "A"\nurl: "https://example.org"\n')
    for name, meta in POSTS.items():
        (posts / name).write_text(f"---\ntitle: {name}\n{meta}---\nText of {name}.\n")
    result = CliRunner().invoke(main, ["build", "--root", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    with BuildContext(Project(tmp_path), remember_hashes=False) as ctx:
        site = load_site_config(ctx.project)
        urls = {p.path.name: post_info(p, site).jekyll_url for p in read_posts(ctx)}
    assert urls == {"normal.md": "/blog/2026/01/11/normal.html",
                    "later.md": "/2999/01/01/later.html",
                    "file-name.md": "/alpha/beta/2026/01/12/chosen.html",
                    "linked.md": "/fixed/2026/linked/",
                    "late.md": "/2026/01/10/late.html",
                    "wip.md": "/2026/01/14/wip.html"}
    source = tmp_path / "site" / "jekyll"
    assert not list(source.glob("_posts/*wip*"))
    dest = tmp_path / "_site"
    # Without --future: the tree's own future: true must publish the post of 2999.
    code, output = jekyll_build(source, dest, future=False)
    assert code == 0, output
    for name, url in urls.items():
        page = url_to_file(dest, url)
        if name == "wip.md":
            assert not page.exists()
            continue
        assert page.is_file(), (name, url, sorted(p.relative_to(dest).as_posix()
                                                  for p in dest.rglob("*.html")))
        assert f"Text of {name}." in page.read_text(encoding="utf-8")
    assert not any("Text of wip.md" in p.read_text(encoding="utf-8")
                   for p in dest.rglob("*.html"))
    shutil.rmtree(dest)
