"""Check 5: axe-core finds no serious or critical violation, in light and in dark mode."""
from __future__ import annotations

import pytest

from . import handmade
from .browser import axe_violations
from .checks import find_post_page
from .clientenv import require_client

pytestmark = pytest.mark.client

# Readable in light mode; in dark mode the text turns almost as dark as the background.
DARK_ONLY_CONTRAST = ("<style>body { color: #222; background: #fff; }\n"
                      "@media (prefers-color-scheme: dark) { body { color: #333; "
                      "background: #111; } }</style>\n")


@pytest.fixture(scope="module")
def handmade_pages(tmp_path_factory, serve_folder):
    root = tmp_path_factory.mktemp("handmade-a11y")
    page = handmade.html_page
    handmade.write(root, {
        "fig.png": handmade.tiny_png(40, 30),
        "good.html": page(handmade.GOOD_ARTICLE),
        "no-alt.html": page('<h1>Figures</h1><p><img src="fig.png" width="40" height="30"></p>',
                            mathjax=False),
        "dark-contrast.html": page("<h1>Dark</h1><p>Text that fades at night.</p>",
                                   head=DARK_ONLY_CONTRAST, mathjax=False),
    })
    return serve_folder(root, "/")


@pytest.fixture
def page(new_context):
    require_client("axe-core")
    return new_context()[0].new_page()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_good_page_has_no_serious_violation(handmade_pages, page, scheme):
    assert axe_violations(page, handmade_pages.url + "good.html", scheme) == []


def test_an_image_without_alt_text_is_caught(handmade_pages, page):
    problems = axe_violations(page, handmade_pages.url + "no-alt.html", "light")
    assert len(problems) == 1 and "image-alt (critical)" in problems[0], problems


def test_text_unreadable_only_in_dark_mode_is_caught_in_dark_mode(handmade_pages, page):
    url = handmade_pages.url + "dark-contrast.html"
    assert axe_violations(page, url, "light") == []
    problems = axe_violations(page, url, "dark")
    assert problems and all("color-contrast (serious)" in p for p in problems), problems


# ---------------------------------------------------------------------------------------------
# The real site

@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_index_and_every_post_page_have_no_serious_violation(built_site, serve_folder,
                                                                 new_context, scheme):
    """On a desktop and on a phone: which blocks scroll sideways depends on the width."""
    require_client("axe-core")
    server = serve_folder(built_site.html, "/")
    urls = [server.url] + [
        server.url + find_post_page(built_site.html, slug).relative_to(built_site.html).as_posix()
        for slug in built_site.slugs]
    problems = []
    for width, mobile in ((1280, False), (375, True)):
        page = new_context(width=width, mobile=mobile)[0].new_page()
        for url in urls:
            problems += [f"{width} px: {p}" for p in axe_violations(page, url, scheme)]
    assert problems == []


def test_the_jekyll_post_has_no_serious_violation(jekyll_site_root, serve_folder, new_context):
    require_client("axe-core")
    site, dest, pages = jekyll_site_root
    server = serve_folder(dest, "/")
    problems = []
    for width, mobile in ((1280, False), (375, True)):
        page = new_context(width=width, mobile=mobile)[0].new_page()
        for scheme in ("light", "dark"):
            for permalink in ["/", *pages.values()]:
                problems += [f"{width} px: {p}"
                             for p in axe_violations(page, server.origin + permalink, scheme)]
    assert problems == []
