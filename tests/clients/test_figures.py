"""Figures in Chromium, in both outputs: a click opens the full-resolution drawing over the page
(and Escape gives the page back, focus where it was); without JavaScript the same click opens
the file itself; every data link downloads."""
from __future__ import annotations

import pytest

from .checks import find_post_page, url_to_file

pytestmark = pytest.mark.client

_OPENED = """() => {
  const d = document.querySelector('dialog.figure-lightbox');
  const img = d && d.querySelector('img');
  return d && {open: d.open, src: img.getAttribute('src'), natural: img.naturalWidth,
               width: img.getBoundingClientRect().width,
               focused: document.activeElement && document.activeElement.className};
}"""


def _zoom_checks(page, link_selector: str, viewport: int) -> None:
    links = page.locator(link_selector)
    assert links.count() > 0
    link = links.first
    href = link.get_attribute("href")
    small = link.locator("img")
    shown = small.bounding_box()["width"]
    link.scroll_into_view_if_needed()
    link.click()
    page.wait_for_function("() => { const i = document.querySelector('dialog.figure-lightbox "
                           "img'); return i && i.complete && i.naturalWidth > 0; }")
    state = page.evaluate(_OPENED)
    assert state["open"] and state["src"] == href and state["focused"] == "lightbox-close"
    one_x = small.evaluate("i => new URL(i.getAttribute('src'), location.href).href")
    natural_1x = page.evaluate("src => new Promise(done => { const i = new Image(); "
                               "i.onload = () => done(i.naturalWidth); i.src = src; })", one_x)
    assert state["natural"] == 2 * natural_1x             # the 2x file, not the 1x one
    assert state["width"] > shown * 1.3                  # larger than in the page
    if viewport > 700:
        assert state["width"] <= viewport                # and, on a desktop, inside the window
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.querySelector('dialog.figure-lightbox').open")
    assert page.evaluate("() => document.activeElement.getAttribute('href')") == href


@pytest.mark.parametrize("width", [1280, 375])
def test_a_figure_opens_at_full_size_over_the_html_page(built_site, serve_folder, new_context,
                                                        width):
    server = serve_folder(built_site.html)
    context, _ = new_context(width=width, mobile=width < 500)
    page = context.new_page()
    for slug in built_site.slugs:
        path = find_post_page(built_site.html, slug).relative_to(built_site.html).as_posix()
        page.goto(f"{server.url}{path}")
        _zoom_checks(page, "a.figure-zoom", width)


def test_a_figure_opens_at_full_size_over_the_jekyll_page(jekyll_site, serve_folder,
                                                          new_context):
    site, dest, pages = jekyll_site
    server = serve_folder(dest, site.baseurl + "/")
    context, _ = new_context(width=1280)
    page = context.new_page()
    for permalink in pages.values():
        page.goto(f"{server.url}{permalink.lstrip('/')}")
        _zoom_checks(page, "p.figure-image > a", 1280)


def test_without_javascript_a_figure_links_to_its_file_and_its_data(built_site, serve_folder,
                                                                    new_context):
    server = serve_folder(built_site.html)
    context, _ = new_context(width=375, mobile=True, javascript=False)
    page = context.new_page()
    slug = built_site.slugs[0]
    path = find_post_page(built_site.html, slug).relative_to(built_site.html).as_posix()
    page.goto(f"{server.url}{path}")
    link = page.locator("a.figure-zoom").first
    href = link.get_attribute("href")
    link.click()
    page.wait_for_url(f"**{href}")
    assert page.evaluate("() => document.contentType") == "image/png"
    page.goto(f"{server.url}{path}")
    data = page.eval_on_selector_all(".figure-data a[download]", "as => as.map(a => a.href)")
    assert data
    for url in sorted(set(data)):
        response = page.request.get(url)
        assert response.status == 200, url
        local = url_to_file(built_site.html, url.split(server.url.rstrip("/"), 1)[1])
        assert response.body() == local.read_bytes()


# ---------------------------------------------------------------------------------------------
# The interactive attention map

def _trace(site_root, base: str = ""):
    import json

    return json.loads((site_root / "assets/data/main/attention_steps.json").read_text())


def _cell_colour(page, i: int, j: int) -> str:
    return page.eval_on_selector(
        f'.explorer-map td[data-row="{i}"][data-col="{j}"]', "td => td.style.background")


@pytest.mark.parametrize("width, scheme", [(1280, "light"), (375, "dark")])
def test_the_slider_steps_the_attention_map_through_training(built_site, serve_folder,
                                                             new_context, width, scheme):
    doc = _trace(built_site.html)
    n, q, k = doc["n"], doc["query"], doc["key"]
    server = serve_folder(built_site.html)
    context, _ = new_context(width=width, mobile=width < 500, color_scheme=scheme)
    page = context.new_page()
    path = find_post_page(built_site.html, "lora-attention-geometry").relative_to(
        built_site.html).as_posix()
    page.goto(f"{server.url}{path}")
    page.wait_for_selector("#fig-after_lora .explorer-map")
    assert page.locator("#fig-after_lora a.figure-zoom").is_hidden()   # replaced, not doubled
    readout = page.locator("#fig-after_lora .explorer-readout")
    slider = page.locator("#fig-after_lora input[type=range]")
    assert slider.get_attribute("max") == str(doc["steps"])
    assert page.locator("#fig-after_lora .explorer-map td").count() == n * n

    def target_text(step: int) -> str:
        return (f"query {q} \u2192 key {k}: attention weight "
                f"{doc['weights'][step][q * n + k]:.3f} at step {step} (the target)")

    assert readout.text_content() == target_text(doc["steps"])
    after = _cell_colour(page, q, k)
    slider.fill("0")                                    # fires input, as dragging does
    assert readout.text_content() == target_text(0)
    assert page.locator("#fig-after_lora .explorer-step").text_content() == \
        f"step 0 of {doc['steps']} (before training)"
    assert _cell_colour(page, q, k) != after             # the map itself changed
    # Pointing at a cell reads it at the chosen step; the arrow keys move from there.
    page.locator('#fig-after_lora td[data-row="2"][data-col="3"]').hover()
    assert readout.text_content() == (f"query 2 \u2192 key 3: attention weight "
                                      f"{doc['weights'][0][2 * n + 3]:.3f} at step 0")
    page.mouse.move(0, 0)                               # a pointer left on the map would read
    page.locator("#fig-after_lora .explorer-map").focus()
    page.keyboard.press("ArrowRight")
    assert readout.text_content().startswith("query 2 \u2192 key 4: ")
    box = page.locator("#fig-after_lora .explorer").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width


def test_without_javascript_the_drawn_attention_map_stays(built_site, serve_folder,
                                                          new_context):
    server = serve_folder(built_site.html)
    context, _ = new_context(width=375, mobile=True, javascript=False)
    page = context.new_page()
    path = find_post_page(built_site.html, "lora-attention-geometry").relative_to(
        built_site.html).as_posix()
    page.goto(f"{server.url}{path}")
    assert page.locator("#fig-after_lora img").is_visible()
    assert page.locator(".explorer").count() == 0


def test_the_jekyll_post_steps_its_attention_map_too(jekyll_site, serve_folder, new_context):
    site, dest, pages = jekyll_site
    doc = _trace(dest)
    server = serve_folder(dest, site.baseurl + "/")
    context, _ = new_context(width=1280)
    page = context.new_page()
    page.goto(f"{server.url}{pages['lora-attention-geometry'].lstrip('/')}")
    page.wait_for_selector(".explorer-map")
    page.locator(".explorer input[type=range]").fill("0")
    n, q, k = doc["n"], doc["query"], doc["key"]
    assert page.locator(".explorer-readout").text_content().endswith(
        f"{doc['weights'][0][q * n + k]:.3f} at step 0 (the target)")
    assert page.locator("p.figure-image.explorer-ready > a").is_hidden()
