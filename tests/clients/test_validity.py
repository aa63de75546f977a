"""Check 3: every HTML page passes the Nu HTML checker; the feed and the sitemap are sound XML."""
from __future__ import annotations

import pytest

from . import handmade
from .checks import check_atom_feed, check_sitemap, html_files, validate_html
from .clientenv import require_client

pytestmark = pytest.mark.client

GOOD_FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>https://example.org/</id><title>T</title><updated>2026-01-11T10:00:00+05:30</updated>
  <entry><id>https://example.org/p/</id><title>P</title>
    <updated>2026-01-11T10:00:00+05:30</updated><link href="https://example.org/p/"/></entry>
</feed>"""

GOOD_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://example.org/</loc></url>
  <url><loc>https://example.org/p/</loc><lastmod>2026-01-11</lastmod></url>
</urlset>"""


def test_the_nu_checker_passes_a_valid_page_and_catches_an_unclosed_tag(tmp_path):
    require_client("java", "vnu")
    good = tmp_path / "good.html"
    good.write_text(handmade.html_page("<p>Fine.</p>"), encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(handmade.html_page("<div><p>Never closed.</p>\n<span>one"),
                      encoding="utf-8")
    problems = validate_html([good, broken])          # one JVM start for both
    assert problems and all(p.startswith("broken.html:") for p in problems), problems
    assert any("Unclosed element" in p for p in problems), problems


def test_a_sound_feed_and_sitemap_pass():
    assert check_atom_feed(GOOD_FEED) == []
    assert check_sitemap(GOOD_SITEMAP) == []


@pytest.mark.parametrize("broken, problem", [
    (GOOD_FEED.replace(b"</feed>", b""), "not well-formed XML"),
    (GOOD_FEED.replace(b"<title>P</title>", b""), "entry 1 has no <title>"),
    (GOOD_FEED.replace(b'<link href="https://example.org/p/"/>', b""), "entry 1 has no <link"),
    (GOOD_FEED.replace(b"<updated>2026-01-11T10:00:00+05:30</updated><link",
                       b"<updated>11 Jan 2026</updated><link"), "not an RFC 3339 date"),
    (GOOD_FEED.replace(b"http://www.w3.org/2005/Atom", b"urn:x"), "not an Atom <feed>"),
])
def test_a_broken_feed_is_caught(broken, problem):
    assert any(problem in p for p in check_atom_feed(broken)), check_atom_feed(broken)


@pytest.mark.parametrize("broken, problem", [
    (GOOD_SITEMAP.replace(b"<url><loc>https://example.org/</loc></url>", b"<url></url>"),
     "url 1 has no absolute <loc>"),
    (GOOD_SITEMAP.replace(b"https://example.org/p/", b"/p/"), "url 2 has no absolute <loc>"),
    (GOOD_SITEMAP.replace(b"</urlset>", b"</url>"), "not well-formed XML"),
])
def test_a_broken_sitemap_is_caught(broken, problem):
    assert any(problem in p for p in check_sitemap(broken)), check_sitemap(broken)


# ---------------------------------------------------------------------------------------------
# The real site

def test_every_page_of_the_html_site_passes_the_nu_checker(built_site):
    require_client("java", "vnu")
    pages = html_files(built_site.html)
    assert len(pages) >= 3                            # index, a post, 404
    assert validate_html(pages) == []


def test_the_feed_and_the_sitemap_are_sound(any_built_site):
    html = any_built_site.html
    assert check_atom_feed((html / "feed.xml").read_bytes()) == []
    assert check_sitemap((html / "sitemap.xml").read_bytes()) == []
