"""Check 2: headless Chromium with MathJax shows every page as a reader would get it."""
from __future__ import annotations

import pytest

from . import handmade
from .browser import check_post_page
from .checks import find_post_page

pytestmark = pytest.mark.client

WIDE = "W = " + " + ".join(f"a_{{{k}}} b_{{{k}}}" for k in range(40))


@pytest.fixture(scope="module")
def handmade_site(tmp_path_factory, serve_folder):
    """Hand-made pages: one good, one per way a page can fail a reader."""
    root = tmp_path_factory.mktemp("handmade-browser")
    page = handmade.html_page
    handmade.write(root, {
        "fig.png": handmade.tiny_png(40, 30),
        "good.html": page(handmade.GOOD_ARTICLE),
        # a single-$ math with | is left as text: one expression short
        "single-dollar.html": page("<p>$|x|$ is a norm and \\(y\\) is not.</p>"),
        "merror.html": page("<p>Broken: \\(\\frac{1}\\) here.</p>"),
        "missing-image.html": page('<p>\\(x\\)</p><p><img src="nope.png" alt="Gone" '
                                   'width="40" height="30"></p>'),
        "console-error.html": page("<p>\\(x\\)</p><script>console.error('boom')</script>"),
        "external.html": page("<p>\\(x\\)</p>", head='<link rel="stylesheet" '
                              'href="https://fonts.example.com/serif.css">\n'),
        "wide-box.html": page('<p>\\(x\\)</p><div style="width: 600px">wide</div>'),
        "wide-math.html": page(f"<div>\\[{WIDE}\\]</div>"),
        # the same wide math, with the CSS a site needs: the display scrolls in its own box
        "wide-math-scrolls.html": page(
            f"<div>\\[{WIDE}\\]</div>",
            head="<style>mjx-container[display='true'] { overflow-x: auto; "
                 "overflow-y: hidden; max-width: 100%; }</style>\n"),
        "no-mathjax.html": page("<p>\\(x\\)</p>", mathjax=False),
    })
    return serve_folder(root, "/hand/")


@pytest.fixture
def phone(new_context):
    """A fresh page in a 375 px wide phone-like context."""
    context, _ = new_context(width=375, height=800, mobile=True)
    return context.new_page()


def test_a_good_page_passes(handmade_site, phone, tmp_path):
    shot = tmp_path / "good.png"
    assert check_post_page(phone, handmade_site.url + "good.html", 3, shot, min_images=1) == []
    assert shot.stat().st_size > 1000


def test_math_left_as_text_is_caught(handmade_site, phone):
    problems = check_post_page(phone, handmade_site.url + "single-dollar.html", 2)
    assert problems == [f"{handmade_site.url}single-dollar.html: 1 typeset math elements, "
                        "the source has 2 math expressions"]


def test_a_tex_error_is_caught(handmade_site, phone):
    problems = check_post_page(phone, handmade_site.url + "merror.html", 1)
    assert len(problems) == 1 and "MathJax error" in problems[0], problems


def test_a_missing_image_is_caught(handmade_site, phone):
    problems = check_post_page(phone, handmade_site.url + "missing-image.html", 1)
    assert any("image did not load" in p and "nope.png" in p for p in problems), problems
    assert any("HTTP 404" in p and "nope.png" in p for p in problems), problems


def test_a_console_error_is_caught(handmade_site, phone):
    problems = check_post_page(phone, handmade_site.url + "console-error.html", 1)
    assert problems == [f"{handmade_site.url}console-error.html: console.error: boom"]


def test_an_external_request_is_caught(handmade_site, phone):
    problems = check_post_page(phone, handmade_site.url + "external.html", 1)
    assert any("request failed: https://fonts.example.com/serif.css" in p for p in problems)


def test_a_box_wider_than_the_phone_is_caught(handmade_site, phone):
    problems = check_post_page(phone, handmade_site.url + "wide-box.html", 1)
    assert len(problems) == 1 and "at a 375 px viewport" in problems[0], problems
    assert "div reaches x=" in problems[0]


def test_wide_display_math_must_scroll_in_its_own_box(handmade_site, phone, new_context):
    problems = check_post_page(phone, handmade_site.url + "wide-math.html", 1)
    assert len(problems) == 1 and "mjx-math" in problems[0], problems
    other = new_context(width=375, height=800, mobile=True)[0].new_page()
    assert check_post_page(other, handmade_site.url + "wide-math-scrolls.html", 1) == []


def test_a_page_whose_math_nobody_typesets_is_caught(handmade_site, phone):
    # No MathJax and no math rendered at build time: the TeX would show as text.
    problems = check_post_page(phone, handmade_site.url + "no-mathjax.html", 1,
                               mathjax_timeout_ms=2000)
    assert any("0 typeset math elements, the source has 1" in p for p in problems), problems
    assert any("0 typeset math elements" in p for p in problems), problems


# ---------------------------------------------------------------------------------------------
# The real article, in both outputs

def test_every_post_page_of_the_html_site_reads_right_on_a_phone(
        any_built_site, serve_folder, new_context, screenshot_dir):
    site = any_built_site
    server = serve_folder(site.html, site.baseurl or "/")
    tag = "repo" if site.baseurl else "root"
    for slug in site.slugs:
        url = server.url + find_post_page(site.html, slug).relative_to(site.html).as_posix()
        math, images = len(site.expected_math(slug)), site.expected_images(slug)
        assert math > 0 and images > 0
        context, _ = new_context(width=375, height=800, mobile=True)
        shot = screenshot_dir / f"html-{tag}-{slug}-375.png"
        assert check_post_page(context.new_page(), url, math, shot, min_images=images) == []
        # the same on a desktop, and in dark mode, for screenshots to look at
        context, _ = new_context(width=1280, height=900)
        shot = screenshot_dir / f"html-{tag}-{slug}-1280.png"
        assert check_post_page(context.new_page(), url, math, shot, min_images=images) == []
        context, _ = new_context(width=375, height=800, mobile=True, color_scheme="dark")
        shot = screenshot_dir / f"html-{tag}-{slug}-375-dark.png"
        assert check_post_page(context.new_page(), url, math, shot, min_images=images) == []


_DRAWN_MATH = """() => Array.from(document.querySelectorAll('mjx-container')).map(m => {
  const svg = m.querySelector('svg'), box = svg ? svg.getBoundingClientRect() : null;
  return {svg: !!svg, mathml: !!m.querySelector('math'), w: box ? box.width : 0,
          h: box ? box.height : 0};
})"""


def test_every_post_shows_its_math_with_javascript_off(any_built_site, serve_folder,
                                                        new_context, screenshot_dir):
    """Math rendered at build time: with JavaScript disabled every formula is drawn (an SVG of
    real size) and carries MathML for screen readers; no page loads a math script."""
    site = any_built_site
    server = serve_folder(site.html, site.baseurl or "/")
    for slug in site.slugs:
        url = server.url + find_post_page(site.html, slug).relative_to(site.html).as_posix()
        context, traffic = new_context(width=375, height=800, mobile=True, javascript=False)
        page = context.new_page()
        page.goto(url, wait_until="load")
        drawn = page.evaluate(_DRAWN_MATH)
        assert len(drawn) == len(site.expected_math(slug)) > 0
        assert all(m["svg"] and m["mathml"] and m["w"] > 0 and m["h"] > 0 for m in drawn)
        assert traffic.mathjax_served == [] and traffic.blocked == []
        page.screenshot(path=str(screenshot_dir / f"html-nojs-{slug}-375.png"), full_page=True)


def test_the_jekyll_post_reads_right_in_the_browser(jekyll_site, serve_folder, new_context,
                                                    screenshot_dir):
    site, dest, pages = jekyll_site
    server = serve_folder(dest, site.baseurl or "/")
    tag = "repo" if site.baseurl else "root"
    for slug, permalink in pages.items():
        context, _ = new_context(width=375, height=800, mobile=True)
        shot = screenshot_dir / f"jekyll-{tag}-{slug}-375.png"
        url = server.origin + site.baseurl + permalink
        assert check_post_page(context.new_page(), url, len(site.expected_math(slug)), shot,
                               min_images=site.expected_images(slug)) == []
