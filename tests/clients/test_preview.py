"""The live preview in a real browser (headless Chromium): an edit reloads the open page where
the reader was scrolled to, a broken edit shows its one-line error on the page without
reloading it, and the fix takes the error away."""
from __future__ import annotations

import pytest

from preview import POST, Server, make_site

pytestmark = pytest.mark.client

PARAGRAPHS = "\n\n".join(f"Paragraph {i}: the attention head and $x_{{{i}}}^2$ of it, said at "
                         f"length so the page is long enough to scroll. " * 3
                         for i in range(60))


def body(first: str) -> str:
    return f"{first}\n\n{PARAGRAPHS}"


def open_scrolled(server, new_context):
    """The post open in the browser, scrolled to 2400 px with the browser's own restoring off
    (a position kept across a reload must be the preview's doing)."""
    context, _traffic = new_context(width=1000, height=700)
    page = context.new_page()
    page.goto(server.url + "first/")
    page.wait_for_function("document.body.innerText.includes('Original opening.')")
    page.wait_for_load_state("load")
    page.evaluate("history.scrollRestoration = 'manual'; window.scrollTo(0, 2400)")
    page.wait_for_function("Math.abs(window.scrollY - 2400) < 2")
    return page


def test_an_edit_reloads_the_page_where_the_reader_was(tmp_path, new_context):
    post = make_site(tmp_path, body=body("Original opening."))
    server = Server(tmp_path)
    try:
        page = open_scrolled(server, new_context)

        post.write_text(POST.format(body=body("Edited opening.")))
        page.wait_for_function("document.body.innerText.includes('Edited opening.')",
                               timeout=30_000)
        page.wait_for_load_state("load")
        # The script puts the reader back once the page (and its math) has laid out.
        page.wait_for_function("sessionStorage.getItem('lora-site-scroll') === null",
                               timeout=30_000)
        assert abs(page.evaluate("window.scrollY") - 2400) < 2

        # A broken edit: the error is shown on the page, which is not reloaded.
        page.evaluate("window.__same_page = true")
        post.write_text(POST.format(body=body("{{ no_such_value }}")))
        bar = page.locator("#lora-site-error")
        bar.wait_for(state="visible", timeout=30_000)
        text = bar.inner_text()
        assert text.startswith(f"lora-site build failed: {post}:6: undefined value"), text
        assert page.evaluate("window.__same_page") is True
        assert "Edited opening." in page.inner_text("body")

        post.write_text(POST.format(body=body("Fixed opening.")))
        page.wait_for_function("document.body.innerText.includes('Fixed opening.')",
                               timeout=30_000)
        assert page.locator("#lora-site-error").count() == 0
    finally:
        server.stop()


def test_a_page_shown_early_goes_back_when_its_build_then_fails(tmp_path, new_context):
    """The edited post's page is served before the rest of the build; when that build then
    fails (a link served by the HTML site but not by the Jekyll tree), the open page goes back
    to the last good site and shows the error there."""
    post = make_site(tmp_path, body=body("Original opening."))
    server = Server(tmp_path)
    try:
        page = open_scrolled(server, new_context)
        page.evaluate("window.__same_page = true")
        post.write_text(POST.format(body=body(
            "Early opening, see [here]({{ site.baseurl }}/first/).")))
        bar = page.locator("#lora-site-error")
        bar.wait_for(state="visible", timeout=30_000)
        # Back where the reader was, after both reloads.
        page.wait_for_function("sessionStorage.getItem('lora-site-scroll') === null",
                               timeout=30_000)
        assert abs(page.evaluate("window.scrollY") - 2400) < 2
        assert "in the jekyll output" in bar.inner_text(), bar.inner_text()
        text = page.inner_text("body")
        assert "Original opening." in text and "Early opening" not in text
        # Reloaded (twice: to the early page, then back), which a failure alone never does.
        assert page.evaluate("window.__same_page") is None
    finally:
        server.stop()
