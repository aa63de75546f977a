"""Check 1: Jekyll, as GitHub Pages runs it, turns our post into a page with every math intact."""
from __future__ import annotations

import pytest

from . import handmade
from .checks import (check_jekyll_post, compare_math, extract_math_from_html, find_post_page,
                     jekyll_build, pages_config, post_permalink, url_to_file)
from .clientenv import require_client

pytestmark = pytest.mark.client


@pytest.fixture(scope="module")
def handmade_jekyll(tmp_path_factory):
    """The hand-made Jekyll tree (one good post, one per breakage), built at / and at /repo."""
    require_client("jekyll")
    root = tmp_path_factory.mktemp("handmade-jekyll")
    source = handmade.jekyll_tree(root / "src", {"good": handmade.GOOD_BODY,
                                                 **handmade.BROKEN_BODIES})
    builds = {}
    for baseurl in ("", "/repo"):
        dest = root / f"site{baseurl.replace('/', '-')}"
        code, output = jekyll_build(source, dest, baseurl=baseurl)
        assert code == 0, output
        builds[baseurl] = dest
    return source, builds


def _check(handmade_jekyll, slug: str, baseurl: str = "") -> list[str]:
    source, builds = handmade_jekyll
    return check_jekyll_post(builds[baseurl], source / "_posts" / f"2026-01-11-{slug}.md",
                             pages_config(source), baseurl)


@pytest.mark.parametrize("baseurl", ["", "/repo"])
def test_a_correct_post_passes(handmade_jekyll, baseurl):
    assert _check(handmade_jekyll, "good", baseurl) == []


def test_the_check_sees_the_pages_kramdown_settings(handmade_jekyll):
    """Our mini _config.yml says nothing about kramdown; the build still used Pages' settings."""
    source, builds = handmade_jekyll
    cfg = pages_config(source)
    assert cfg["kramdown"]["input"] == "GFM" and cfg["kramdown"]["math_engine"] == "mathjax"
    page = (builds[""] / "blog/2026/01/11/good.html").read_text(encoding="utf-8")
    assert r"\(x_1 * y_2\)" in page and r"\[Q = X W_Q, \quad \Delta W = B A\]" in page


def test_single_dollar_math_with_a_pipe_is_caught(handmade_jekyll):
    problems = _check(handmade_jekyll, "pipe")
    assert any("1 math expressions in the source, 0 intact" in p for p in problems), problems
    assert any("<table> was made out of math" in p for p in problems), problems


def test_single_dollar_math_turned_into_emphasis_is_caught(handmade_jekyll):
    problems = _check(handmade_jekyll, "emphasis")
    assert any("<em> was made out of math" in p for p in problems), problems
    assert any("2 math expressions in the source, 0 intact" in p for p in problems), problems


def test_liquid_eating_double_braces_in_math_is_caught(handmade_jekyll):
    problems = _check(handmade_jekyll, "liquid")
    assert problems == ["2026-01-11-liquid.md -> /blog/2026/01/11/liquid.html: math #1 should be "
                        "inline 'w={{x}}', the HTML has inline 'w='"], problems


def test_a_missing_image_is_caught(handmade_jekyll):
    problems = _check(handmade_jekyll, "missing-image")
    assert len(problems) == 1 and "image '/assets/images/nope.png' does not exist" in problems[0]


def test_an_image_that_ignores_the_baseurl_is_caught(handmade_jekyll):
    assert _check(handmade_jekyll, "no-baseurl", "") == []
    problems = _check(handmade_jekyll, "no-baseurl", "/repo")
    assert len(problems) == 1 and "outside the baseurl '/repo'" in problems[0], problems


def test_a_post_missing_from_its_permalink_is_caught(handmade_jekyll, tmp_path):
    source, builds = handmade_jekyll
    cfg = dict(pages_config(source), permalink="/:title/")   # where the build did not put it
    problems = check_jekyll_post(builds[""], source / "_posts/2026-01-11-good.md", cfg, "")
    assert problems and "no page at the post's permalink" in problems[0]


def test_the_permalink_follows_the_date_in_the_build_timezone(tmp_path):
    """00:30 at +05:30 on the 11th is still the 10th in UTC, where Jekyll (TZ=UTC) files it."""
    require_client("jekyll")
    source = handmade.jekyll_tree(tmp_path / "src", {"early": "$$x$$\n"})
    post = source / "_posts" / "2026-01-11-early.md"
    post.write_text(post.read_text(encoding="utf-8").replace("10:00:00", "00:30:00"),
                    encoding="utf-8")
    code, output = jekyll_build(source, tmp_path / "site")
    assert code == 0, output
    assert post_permalink(post, pages_config(source)) == "/blog/2026/01/10/early.html"
    assert check_jekyll_post(tmp_path / "site", post, pages_config(source), "") == []


def test_a_stray_liquid_tag_fails_the_build(tmp_path):
    require_client("jekyll")
    source = handmade.jekyll_tree(tmp_path / "src", {"tag": "Math $$\\{% x \\}$$ here.\n"})
    code, output = jekyll_build(source, tmp_path / "site")
    assert code != 0 and "Liquid" in output, output


# ---------------------------------------------------------------------------------------------
# The real article

def test_jekyll_builds_the_post_with_every_math_intact(jekyll_site):
    site, dest, pages = jekyll_site
    config = pages_config(site.jekyll)
    assert pages, "no posts"
    for slug in pages:
        post = site.jekyll_post(slug)
        assert check_jekyll_post(dest, post, config, site.baseurl) == []


def test_jekyll_and_the_html_site_show_the_same_math(jekyll_site):
    """The math of the Jekyll page equals, expression by expression, the math of the HTML site's
    page: two writers and two Markdown engines agree on every expression."""
    site, dest, pages = jekyll_site
    for slug, permalink in pages.items():
        jekyll_math = extract_math_from_html(
            url_to_file(dest, permalink).read_text(encoding="utf-8"))
        html_math = extract_math_from_html(
            find_post_page(site.html, slug).read_text(encoding="utf-8"))
        assert len(jekyll_math) > 0
        assert compare_math(html_math, jekyll_math, slug) == []
