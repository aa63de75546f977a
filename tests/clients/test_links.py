"""Check 4: every internal link and asset resolves over HTTP, at the root and under /repo/."""
from __future__ import annotations

import pytest

from . import handmade
from .checks import check_links

pytestmark = pytest.mark.client


def _site(root, index_body: str):
    page = handmade.html_page
    return handmade.write(root, {
        "index.html": page(index_body, mathjax=False),
        "post/index.html": page('<h2 id="setup">Setup</h2><p><img src="../fig.png" alt="A" '
                                'width="4" height="3"></p>', mathjax=False,
                                head='<link rel="stylesheet" href="../style.css">\n'),
        "style.css": "body { background: url('fig.png') no-repeat; }\n",
        "fig.png": handmade.tiny_png(),
    })


GOOD_INDEX = ('<p><a href="post/">Post</a> <a href="post/#setup">Setup</a> '
              '<a href="https://example.org/elsewhere">away</a> <a href="#top">top</a></p>'
              '<p id="top">Top</p>')


@pytest.mark.parametrize("prefix", ["/", "/repo/"])
def test_a_sound_site_passes_at_the_root_and_under_a_prefix(tmp_path, serve_folder, prefix):
    server = serve_folder(_site(tmp_path, GOOD_INDEX), prefix)
    assert check_links(server.url) == []


def test_a_broken_link_a_root_absolute_asset_and_a_missing_anchor_are_caught(
        tmp_path, serve_folder):
    index = GOOD_INDEX + ('<p><a href="missing.html">gone</a> <img src="/fig.png" alt="B" '
                          'width="4" height="3"> <a href="post/#nowhere">x</a></p>')
    server = serve_folder(_site(tmp_path, index), "/repo/")
    assert sorted(check_links(server.url)) == [
        "index: img[src] '/fig.png' points outside the site root /repo/",
        "index: link to #nowhere on post/ has no such id",
        "missing.html: HTTP 404 (from index: a[href] 'missing.html')",
    ]


def test_a_missing_stylesheet_asset_is_caught(tmp_path, serve_folder):
    root = _site(tmp_path, GOOD_INDEX)
    (root / "style.css").write_text("body { background: url(gone.png); }\n", encoding="utf-8")
    server = serve_folder(root, "/")
    assert check_links(server.url) == ["gone.png: HTTP 404 (from style.css: css url() 'gone.png')"]


def test_links_to_the_public_url_are_checked_against_the_local_copy(tmp_path, serve_folder):
    index = GOOD_INDEX + ('<link rel="canonical" href="https://me.github.io/repo/nope/">'
                          '<a href="https://me.github.io/other/">outside</a>')
    server = serve_folder(_site(tmp_path, index), "/repo/")
    assert sorted(check_links(server.url, site_url="https://me.github.io/repo/")) == [
        "index: a[href] 'https://me.github.io/other/' is on the site's host but outside its URL "
        "https://me.github.io/repo/",
        "nope/: HTTP 404 (from index: link[href] 'https://me.github.io/repo/nope/')",
    ]


# ---------------------------------------------------------------------------------------------
# The real site, built for the root of a domain and for /repo/

def test_every_internal_link_of_the_html_site_resolves(any_built_site, serve_folder):
    site = any_built_site
    server = serve_folder(site.html, site.baseurl or "/")
    assert check_links(server.url, site_url=site.site_url,
                       extra_starts=("404.html", "feed.xml", "sitemap.xml")) == []


def test_every_internal_link_of_the_jekyll_site_resolves(jekyll_site, serve_folder):
    site, dest, pages = jekyll_site
    server = serve_folder(dest, site.baseurl or "/")
    assert check_links(server.url, extra_starts=tuple(p.lstrip("/") for p in pages.values())) \
        == []
