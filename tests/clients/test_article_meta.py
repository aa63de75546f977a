"""Check 7: per-article metadata as the clients see it. Jekyll, as GitHub Pages runs it, gives
the post Google Scholar's tags, its licence and its "Cite this" BibTeX naming the page Jekyll
put it at; on the HTML site the Copy button puts the BibTeX on the clipboard.
"""
from __future__ import annotations

import html

import pytest
from pybtex.database import parse_string

from .checks import find_post_page, parse_html, read_front_matter, url_to_file

pytestmark = pytest.mark.client


def _bibtex(page: str) -> str:
    return html.unescape(page.split('<pre class="bibtex"')[1].split("<code>", 1)[1]
                         .split("</code>", 1)[0])


def test_the_jekyll_post_has_scholar_tags_its_licence_and_bibtex(jekyll_site):
    site, dest, pages = jekyll_site
    for slug, permalink in pages.items():
        page = url_to_file(dest, permalink).read_text(encoding="utf-8")
        tree = parse_html(page)
        head = next(tree.iter("head"))
        canonical = [n.attrs["href"] for n in head.iter("link")
                     if n.attrs.get("rel") == "canonical"]
        assert canonical == [site.config["url"] + site.baseurl + permalink]
        meta, _ = read_front_matter(site.jekyll_post(slug).read_text(encoding="utf-8"))
        tags = [(n.attrs["name"], n.attrs["content"]) for n in head.iter("meta")
                if n.attrs.get("name", "").startswith("citation_")]
        assert tags == [*map(tuple, meta["lora_site"]["citation"]),
                        ("citation_fulltext_html_url", canonical[0])]
        assert [n.attrs["href"] for n in head.iter("link") if n.attrs.get("rel") == "license"] \
            == ["https://creativecommons.org/licenses/by/4.0/"]
        footer = next(n for n in tree.iter("footer") if "post-footer" in n.classes())
        links = [(n.attrs.get("rel"), n.attrs["href"], n.text()) for n in footer.iter("a")]
        assert links == [("license", "https://creativecommons.org/licenses/by/4.0/", "CC BY 4.0"),
                         (None, "https://spdx.org/licenses/MIT.html", "MIT")]
        # The BibTeX reads back, names this page, and is the HTML site's but for its URL.
        bibtex = _bibtex(page)
        entry = parse_string(bibtex, "bibtex").entries[f"{slug}-2026"]
        assert entry.fields["url"] == canonical[0]
        html_page = find_post_page(site.html, slug).read_text(encoding="utf-8")
        html_url = site.config["url"] + site.baseurl + f"/{slug}/"
        assert bibtex.replace(canonical[0], html_url) == _bibtex(html_page)
        assert "page.url" not in bibtex and "absolute_url" not in bibtex   # Liquid filled it


def test_the_copy_button_puts_the_bibtex_on_the_clipboard(built_site, serve_folder,
                                                          new_context):
    server = serve_folder(built_site.html, "/")
    slug = "lora-attention-geometry"
    url = server.url + find_post_page(built_site.html, slug).relative_to(
        built_site.html).as_posix()
    context, _ = new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.origin)
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.click(".cite-this summary")
    button = page.locator(".cite-this .copy-button")
    assert button.is_visible() and button.inner_text() == "Copy BibTeX"
    button.click()
    page.wait_for_function("document.querySelector('.cite-this .copy-button').textContent "
                           "=== 'Copied'")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == _bibtex(find_post_page(built_site.html, slug).read_text(encoding="utf-8"))
    assert copied.startswith("@online{lora-attention-geometry-2026,\n")
    # Without JavaScript there is nothing to copy with, so no button.
    quiet = new_context(javascript=False)[0].new_page()
    quiet.goto(url, wait_until="load")
    quiet.click(".cite-this summary")
    assert quiet.locator(".cite-this pre").is_visible()
    assert not quiet.locator(".cite-this .copy-button").is_visible()
