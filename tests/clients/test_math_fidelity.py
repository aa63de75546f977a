"""The HTML site's pre-rendered math looks like what client-side MathJax drew before it.

Every distinct expression of every post is drawn twice in Chromium, in the same font and size:
once as the page carries it (SVG made at build time, JavaScript off) and once as TeX typeset in
the browser by MathJax 3 (tex-mml-chtml, the site's former script, from node_modules). Their
ink boxes must have the same width and height (within 3 %, or 1.5 CSS px for a small one), and
the ink, scaled onto the reference's box, must differ little: the same glyphs drawn as paths
instead of a web font differ by about 0.05 of full scale (0.11 at worst, for the smallest
expressions); MathML renderers, measured when the renderer was chosen, were 0.17 with stretched
brackets missing and letters in the wrong style.
"""
from __future__ import annotations

import html
import io

import numpy as np
import pytest

from generator.render.prerender import CSS

from .browser import wait_for_mathjax
from .checks import find_post_page

SIZE_TOLERANCE = 0.03
DIFF_LIMIT = 0.15
SLACK_PX = 3
SCALE = 2

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>math</title>
<style>body{{margin:0;background:#fff;color:#000;font:17px/1.65 "DejaVu Sans",sans-serif}}
.cell{{width:760px;padding:14px 20px;box-sizing:border-box}}.cell.display{{text-align:center}}
{css}</style>{head}</head><body class="tex2jax_ignore">
{cells}
</body></html>"""

_MATHJAX = """<script>window.MathJax = {tex: {inlineMath: [["\\\\(", "\\\\)"]],
  displayMath: [["\\\\[", "\\\\]"]], processEscapes: false},
  options: {ignoreHtmlClass: "tex2jax_ignore", processHtmlClass: "arithmatex"}};</script>
<script defer src="https://cdn.jsdelivr.net/npm/mathjax@3.2.2/es5/tex-mml-chtml.js"></script>"""

_COLLECT = """() => Array.from(document.querySelectorAll('mjx-container[data-tex]')).map(e => ({
  tex: e.getAttribute('data-tex'), display: e.getAttribute('display') === 'true',
  html: e.outerHTML}))"""


def _ink(gray: np.ndarray):
    ys, xs = np.nonzero(gray < 200)
    if len(xs) == 0:
        return None
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def _cells(page, count: int) -> list[np.ndarray]:
    from PIL import Image

    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L"))
    out = []
    for i in range(count):
        box = page.locator(f"#c{i}").bounding_box()
        x0, y0 = int(box["x"] * SCALE), int(box["y"] * SCALE)
        out.append(shot[y0:y0 + int(box["height"] * SCALE), x0:x0 + int(box["width"] * SCALE)])
    return out


def _size_ok(delta: int, size: int) -> bool:
    """Within 3 %, or 3 device pixels (1.5 CSS px) for small expressions: font hinting moves
    an edge of a web-font glyph that the SVG path does not have."""
    return abs(delta) <= max(SLACK_PX, SIZE_TOLERANCE * size)


def _compare(ref: np.ndarray, cand: np.ndarray) -> tuple[bool, str, float]:
    """(same size?, the sizes, the mean absolute difference of the ink scaled onto the
    reference's box, 0..1)."""
    from PIL import Image

    rb, cb = _ink(ref), _ink(cand)
    assert rb is not None and cb is not None
    r = ref[rb[1]:rb[3], rb[0]:rb[2]]
    c = np.asarray(Image.fromarray(cand[cb[1]:cb[3], cb[0]:cb[2]]).resize(
        (r.shape[1], r.shape[0]), Image.LANCZOS))
    diff = float(np.abs(r.astype(float) - c.astype(float)).mean() / 255)
    (rw, rh), (cw, ch) = (rb[2] - rb[0], rb[3] - rb[1]), (cb[2] - cb[0], cb[3] - cb[1])
    same = _size_ok(cw - rw, rw) and _size_ok(ch - rh, rh)
    return same, f"{cw}x{ch} px against {rw}x{rh}", diff


def test_prerendered_math_matches_client_side_mathjax(built_site, serve_folder, browser,
                                                      tmp_path):
    from .browser import Traffic, route_offline

    server = serve_folder(built_site.html)
    exprs: dict[tuple[str, bool], str] = {}
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    for slug in built_site.slugs:
        path = find_post_page(built_site.html, slug).relative_to(built_site.html)
        page.goto(f"{server.url}{path.as_posix()}")
        for e in page.evaluate(_COLLECT):
            exprs.setdefault((e["tex"], e["display"]), e["html"])
    context.close()
    assert len(exprs) > 50, f"only {len(exprs)} expressions found on the post pages"

    items = sorted(exprs.items())
    ours = "\n".join(f'<div id="c{i}" class="cell{" display" if d else ""}">{markup}</div>'
                     for i, ((_, d), markup) in enumerate(items))
    ref = "\n".join(
        f'<div id="c{i}" class="cell{" display" if d else ""}">'
        + (f'<div class="arithmatex">\\[{html.escape(t, quote=False)}\\]</div>' if d else
           f'<span class="arithmatex">\\({html.escape(t, quote=False)}\\)</span>') + "</div>"
        for i, ((t, d), _) in enumerate(items))
    (tmp_path / "ours.html").write_text(_PAGE.format(css=CSS, head="", cells=ours))
    (tmp_path / "ref.html").write_text(_PAGE.format(css="", head=_MATHJAX, cells=ref))
    grid = serve_folder(tmp_path)

    shots = {}
    for name, javascript in (("ours", False), ("ref", True)):
        context = browser.new_context(viewport={"width": 800, "height": 900},
                                      device_scale_factor=SCALE, java_script_enabled=javascript)
        traffic = Traffic()
        route_offline(context, traffic)
        page = context.new_page()
        page.goto(f"{grid.url}{name}.html")
        if javascript:
            problem = wait_for_mathjax(page)
            assert problem is None, problem
            assert traffic.mathjax_served, "the reference page loaded no MathJax"
        page.evaluate("() => document.fonts.ready.then(() => true)")
        shots[name] = _cells(page, len(items))
        context.close()

    bad, diffs = [], []
    for ((tex, display), _), a, b in zip(items, shots["ours"], shots["ref"]):
        same, sizes, diff = _compare(b, a)
        diffs.append(diff)
        if not same or diff > DIFF_LIMIT:
            bad.append(f"{'display' if display else 'inline'} {tex!r}: {sizes}, "
                       f"difference {diff:.3f}")
    assert not bad, (f"{len(bad)} of {len(items)} expressions drawn unlike client-side MathJax:\n"
                     + "\n".join(bad))
    assert float(np.median(diffs)) < 0.075, f"median difference {np.median(diffs):.3f}"


@pytest.mark.parametrize("broken", ["missing-bracket", "scaled"])
def test_the_fidelity_comparison_catches_a_wrong_drawing(broken):
    """The comparison itself: an expression missing a glyph, or drawn 10 % wide, fails."""
    ref = np.full((60, 200), 255, np.uint8)
    ref[20:40, 20:30] = 0                          # "("
    ref[20:40, 60:140] = 0                         # body
    ref[20:40, 170:180] = 0                        # ")"
    cand = ref.copy()
    if broken == "missing-bracket":
        cand[20:40, 170:180] = 255
    else:
        cand = np.full((60, 220), 255, np.uint8)
        cand[20:40, 20:196] = ref[20:40, 20:180].repeat(11, axis=1)[:, ::10][:, :176]
    same, _, diff = _compare(ref, cand)
    assert not same or diff > DIFF_LIMIT
    assert _compare(ref, ref.copy()) == (True, "160x20 px against 160x20", 0.0)
