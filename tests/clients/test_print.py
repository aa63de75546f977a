"""Check 6: a post prints well (templates/assets/style.css, @media print): no site chrome, ink on
white whatever the reader's colour scheme, code wrapped, figures kept with their captions, the
addresses of external links written out, math and images drawn; and Chromium makes a PDF of it.
"""
from __future__ import annotations

import re

import pytest

from .checks import find_post_page

pytestmark = pytest.mark.client

STYLES = """() => {
  const all = (sel) => Array.from(document.querySelectorAll(sel));
  const style = (el, pseudo) => getComputedStyle(el, pseudo || null);
  const shown = (el) => style(el).display !== 'none' && el.getBoundingClientRect().height > 0;
  const body = document.querySelector('.post-body');
  const external = all('a').filter(a => /^https?:/.test(a.getAttribute('href')))
    .filter(a => !a.closest('.references'));
  const internal = all('.post-body a, .post-footer a')
    .filter(a => !/^https?:/.test(a.getAttribute('href')));
  return {
    hidden: Object.fromEntries(['.skip-link', '.site-header', '.site-nav', '.site-footer',
                                '.toc', '.copy-button', '.code-copy']
      .map(s => [s, all(s).length > 0 && all(s).every(el => style(el).display === 'none')])),
    ink: [style(document.body).color, style(document.body).backgroundColor],
    keyword: document.querySelector('.highlight .k') ?
      style(document.querySelector('.highlight .k')).color : null,
    pre: [...new Set(all('pre').map(p => style(p).whiteSpace))],
    figures: [...new Set(all('figure:not(.listing)').map(f => style(f).breakInside))],
    figureCount: all('figure:not(.listing)').length,
    listings: [...new Set(all('figure.listing').map(f => style(f).breakInside))],
    folded: all('.listing-fold pre').filter(p => !shown(p)).length,
    foldCount: all('.listing-fold pre').length,
    externalAfter: external.map(a => [a.getAttribute('href'), style(a, '::after').content]),
    internalAfter: [...new Set(internal.map(a => style(a, '::after').content))],
    math: all('mjx-container > svg').filter(s => !shown(s)).length,
    mathCount: all('mjx-container > svg').length,
    images: all('.post-body img').filter(i => !shown(i)).length,
    imageCount: all('.post-body img').length,
    bibtex: shown(document.querySelector('.cite-this pre')),
  };
}"""


def _open(new_context, url: str, scheme: str, media: str):
    page = new_context(width=1280, height=900, color_scheme=scheme)[0].new_page()
    page.goto(url, wait_until="load")
    page.emulate_media(media=media)
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_post_prints_without_chrome_in_ink_on_white(built_site, serve_folder, new_context,
                                                          scheme):
    server = serve_folder(built_site.html, "/")
    for slug in built_site.slugs:
        url = server.url + find_post_page(built_site.html, slug).relative_to(
            built_site.html).as_posix()
        on_screen = _open(new_context, url, "light", "screen").evaluate(STYLES)
        assert on_screen["hidden"][".copy-button"] is False      # shown where it can copy
        assert on_screen["bibtex"] is False                       # closed until asked for
        printed = _open(new_context, url, scheme, "print")
        got = printed.evaluate(STYLES)
        assert got["hidden"] == {s: True for s in got["hidden"]}, got["hidden"]
        assert got["ink"] == ["rgb(0, 0, 0)", "rgb(255, 255, 255)"]
        # Code is highlighted in the light scheme's colours, as on a light screen.
        assert got["keyword"] == on_screen["keyword"]
        assert (got["keyword"] is not None) == (slug == "lora-attention-geometry")
        assert got["pre"] == ["pre-wrap"]
        assert got["figureCount"] > 0 and got["figures"] == ["avoid"]
        # A listing may break across pages (it can be longer than one); a folded one prints open.
        assert got["listings"] == (["auto"] if slug == "lora-attention-geometry" else [])
        assert got["folded"] == 0 and (got["foldCount"] > 0) == (slug == "lora-attention-geometry")
        assert got["externalAfter"] and all(
            after == f'" <{href}>"' for href, after in got["externalAfter"]), got["externalAfter"]
        assert ["https://creativecommons.org/licenses/by/4.0/",
                '" <https://creativecommons.org/licenses/by/4.0/>"'] in got["externalAfter"]
        assert got["internalAfter"] == ["none"]
        assert got["mathCount"] == len(built_site.expected_math(slug)) and got["math"] == 0
        assert got["images"] == 0 and got["bibtex"] is True


def test_chromium_prints_a_post_to_pdf(built_site, serve_folder, new_context, screenshot_dir):
    server = serve_folder(built_site.html, "/")
    slug = "lora-attention-geometry"
    url = server.url + find_post_page(built_site.html, slug).relative_to(
        built_site.html).as_posix()
    # Print media, as a reader's Print command has it (emulating screen media would make the
    # PDF of the screen's styles, the interactive map in place of the drawn figure).
    page = _open(new_context, url, "dark", "print")
    pdf = page.pdf(format="A4", path=str(screenshot_dir / f"print-{slug}.pdf"))
    assert pdf.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))
    assert 8 <= pages <= 30, pages
    # Every figure is in it (lazy-loaded ones too: Chromium loads them to print): one image
    # object each, besides the soft masks of their alpha channels.
    figures = page.evaluate("document.querySelectorAll('.post-body img').length")
    images = len(re.findall(rb"/Subtype\s*/Image", pdf)) - len(re.findall(rb"/SMask\s+\d", pdf))
    assert figures > 0 and images == figures
    # What was printed, as a picture to look at: print emulation, full page.
    _open(new_context, url, "dark", "print").screenshot(
        path=str(screenshot_dir / f"print-{slug}.png"), full_page=True)


def test_the_jekyll_post_prints_without_chrome(jekyll_site_root, serve_folder, new_context):
    site, dest, pages = jekyll_site_root
    server = serve_folder(dest, "/")
    for permalink in pages.values():
        got = _open(new_context, server.origin + permalink, "dark", "print").evaluate(STYLES)
        assert {s: v for s, v in got["hidden"].items() if s != ".toc"} == {
            ".skip-link": True, ".site-header": True, ".site-nav": True, ".site-footer": True,
            ".copy-button": True, ".code-copy": True}
        assert got["ink"] == ["rgb(0, 0, 0)", "rgb(255, 255, 255)"]
        assert got["pre"] == ["pre-wrap"] and got["bibtex"] is True
