"""Check 6: tables and code fit (issue 14, item 5), in Chromium, at 1280 and 375 px, light and
dark: no element wider than the viewport, no table cell out of reach, no line of code behind a
sideways scroll on a desktop; the copy button copies a listing's source exactly and says so;
long listings are folded and open on a click; each listing links to its file at the commit the
page was built from; every post ends with its reproduce box. The HTML site and the real Jekyll
build of the Jekyll tree."""
from __future__ import annotations

import re

import pytest

from generator.render.listings import FOLD_LINES, find_source

from .browser import _OVERFLOW
from .checks import find_post_page, url_to_file
from .clientenv import require_client
from .conftest import project_commit

pytestmark = pytest.mark.client

SIZES = [(1280, 900, False), (375, 800, True)]
SCHEMES = ["light", "dark"]
REPOSITORY = "https://github.com/lora-site/lora-site"
# The listings of the article, as its post calls them.
LISTINGS = [("attention", "TinySelfAttention"), ("lora", "LoRALinear"), ("lora", "inject_lora"),
            ("experiment", "_run")]

# For every table cell: is it inside the visible box of its scroll container (the table itself
# when it scrolls, else the viewport)? If not, can scrolling that container bring it into view,
# and does the container say it scrolls (focusable, with its edge shadows)?
_CELLS = """() => {
  const out = [];
  const vw = document.documentElement.clientWidth;
  for (const [t, table] of Array.from(document.querySelectorAll('article table')).entries()) {
    const style = getComputedStyle(table);
    const scrolls = ['auto', 'scroll'].includes(style.overflowX)
        && table.scrollWidth > table.clientWidth + 0.5;
    const box = table.getBoundingClientRect();
    const left = Math.max(box.left, 0), right = Math.min(box.left + table.clientWidth, vw);
    let hidden = 0, unreachable = 0;
    for (const cell of table.querySelectorAll('th, td')) {
      const r = cell.getBoundingClientRect();
      const head = cell.closest('thead');
      if (r.width === 0 && r.height === 0) continue;
      if (head && head.getBoundingClientRect().height <= 1) continue;   // hidden on a card
      if (r.left >= left - 0.5 && r.right <= right + 0.5) continue;
      hidden++;
      if (!scrolls) { unreachable++; continue; }
      const offset = r.left - box.left + table.scrollLeft;  // where it sits in the scrolled box
      if (offset < -0.5 || offset + r.width > table.scrollWidth + 0.5) unreachable++;
    }
    out.push({index: t, cls: table.className, scrolls, hidden, unreachable,
              width: Math.round(box.width), scrollWidth: table.scrollWidth,
              focusable: table.tabIndex >= 0,
              shadow: style.backgroundImage.includes('radial-gradient')});
  }
  return out;
}"""

_PRES = """() => Array.from(document.querySelectorAll('article pre')).map(p => ({
  text: p.textContent.slice(0, 40), scrollWidth: p.scrollWidth, clientWidth: p.clientWidth,
  visible: p.getClientRects().length > 0}))"""


def post_urls(site, server) -> dict[str, str]:
    return {slug: server.url + find_post_page(site.html, slug).relative_to(site.html).as_posix()
            for slug in site.slugs}


def open_every_fold(page) -> None:
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")


def check_layout(page, url: str, width: int) -> list[str]:
    """What does not fit on ``url`` at this width: the page's own overflow, table cells out of
    reach, and (on a desktop) code lines behind a sideways scroll, with every fold opened."""
    problems = []
    page.goto(url, wait_until="load")
    open_every_fold(page)
    layout = page.evaluate(_OVERFLOW)
    if layout["scrollWidth"] > layout["viewport"] or layout["offenders"]:
        problems.append(f"{url} at {width}: page {layout['scrollWidth']} px wide; "
                        f"{layout['offenders']}")
    for t in page.evaluate(_CELLS):
        if t["unreachable"]:
            problems.append(f"{url} at {width}: table {t['index']} ({t['cls']}) has "
                            f"{t['unreachable']} cells clipped out of reach")
        if t["hidden"] and not (t["scrolls"] and t["focusable"] and t["shadow"]):
            problems.append(f"{url} at {width}: table {t['index']} hides {t['hidden']} cells "
                            "without a focusable scroll box that shows it scrolls")
        if width >= 1280 and t["hidden"]:
            problems.append(f"{url} at {width}: table {t['index']} ({t['width']} px, content "
                            f"{t['scrollWidth']} px) does not fit the desktop column")
        if t["cls"] == "claims" and t["hidden"]:
            problems.append(f"{url} at {width}: the claims table does not fit")
    if width >= 1280:
        for pre in page.evaluate(_PRES):
            if pre["scrollWidth"] > pre["clientWidth"]:
                problems.append(f"{url} at {width}: code {pre['text']!r} is "
                                f"{pre['scrollWidth']} px in a {pre['clientWidth']} px box")
    return problems


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width, height, mobile", SIZES, ids=["1280", "375"])
def test_tables_and_code_fit_in_the_html_site(built_site, serve_folder, new_context, scheme,
                                              width, height, mobile):
    server = serve_folder(built_site.html, "/")
    page = new_context(width=width, height=height, mobile=mobile,
                       color_scheme=scheme)[0].new_page()
    problems = []
    for url in post_urls(built_site, server).values():
        problems += check_layout(page, url, width)
    assert problems == []


@pytest.mark.parametrize("width, height, mobile", SIZES, ids=["1280", "375"])
def test_tables_and_code_fit_in_the_jekyll_site(jekyll_site_root, serve_folder, new_context,
                                                width, height, mobile):
    site, dest, pages = jekyll_site_root
    server = serve_folder(dest, "/")
    problems = []
    for scheme in SCHEMES:
        page = new_context(width=width, height=height, mobile=mobile,
                           color_scheme=scheme)[0].new_page()
        for permalink in pages.values():
            problems += check_layout(page, server.origin + permalink, width)
    assert problems == []


def test_the_claims_table_is_a_table_at_1280_and_cards_at_375(built_site, serve_folder,
                                                             new_context):
    server = serve_folder(built_site.html, "/")
    url = post_urls(built_site, server)["lora-attention-claims-audit"]
    shapes = {}
    for width, height, mobile in SIZES:
        page = new_context(width=width, height=height, mobile=mobile)[0].new_page()
        page.goto(url, wait_until="load")
        shapes[width] = page.evaluate("""() => {
          const t = document.querySelector('table.claims');
          const rows = Array.from(t.tBodies[0].rows);
          return {headers: Array.from(t.tHead.rows[0].cells).map(c => c.textContent),
                  scopes: Array.from(t.querySelectorAll('th')).map(c => c.scope),
                  first: rows.map(r => r.cells[0].textContent),
                  display: getComputedStyle(rows[0]).display,
                  headVisible: t.tHead.getBoundingClientRect().height > 1,
                  width: Math.round(t.getBoundingClientRect().width),
                  column: document.querySelector('.post-body').clientWidth,
                  height: Math.round(t.getBoundingClientRect().height)};
        }""")
    desktop, phone = shapes[1280], shapes[375]
    assert desktop["headers"] == ["Verdict", "Claim", "Held (95% interval)",
                                  "Holds when the statistic is"]
    assert desktop["scopes"] == ["col"] * 4 + ["row"] * 12
    assert set(desktop["first"]) == {"robust", "fragile", "refuted"}     # verdict first
    assert desktop["display"] == "table-row" and desktop["headVisible"]
    assert desktop["width"] <= desktop["column"]
    # The reader measured 3056 px (3.4 screens) for the seven-column table.
    assert desktop["height"] < 1400
    assert phone["display"] == "grid" and not phone["headVisible"]
    assert phone["width"] <= phone["column"]


def test_long_listings_fold_and_open_on_a_click(built_site, serve_folder, new_context):
    server = serve_folder(built_site.html, "/")
    url = post_urls(built_site, server)["lora-attention-geometry"]
    page = new_context()[0].new_page()
    page.goto(url, wait_until="load")
    figures = page.locator("figure.listing")
    assert figures.count() == len(LISTINGS)
    for i, (module, name) in enumerate(LISTINGS):
        src = find_source(module, name)
        figure = figures.nth(i)
        folds = figure.locator("details")
        assert folds.count() == (1 if src.lines > FOLD_LINES else 0), name
        if not folds.count():
            assert figure.locator("pre").is_visible()
            continue
        assert folds.first.evaluate("d => d.open") is False
        assert not figure.locator("pre").is_visible()
        summary = figure.locator("summary")
        assert summary.text_content() == f"{name} from {src.rel} ({src.lines} lines)"
        summary.click()
        assert folds.first.evaluate("d => d.open") is True
        assert figure.locator("pre").is_visible()


def _copy_and_read(page, figure) -> str:
    if figure.locator("details").count():
        figure.locator("summary").click()
    figure.locator("button.code-copy").click()
    page.wait_for_function("() => document.querySelector('[role=status]').textContent "
                           "=== 'Copied'")
    return page.evaluate("() => navigator.clipboard.readText()")


def test_the_copy_button_copies_each_listing_exactly_and_says_so(built_site, serve_folder,
                                                                 new_context):
    server = serve_folder(built_site.html, "/")
    url = post_urls(built_site, server)["lora-attention-geometry"]
    context, _ = new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(url, wait_until="load")
    status = page.locator("[role=status]")
    assert status.get_attribute("aria-live") == "polite" and status.text_content() == ""
    for i, (module, name) in enumerate(LISTINGS):
        figure = page.locator("figure.listing").nth(i)
        button = figure.locator("button.code-copy")
        assert button.get_attribute("aria-label") == f"Copy {name}"
        page.evaluate("() => navigator.clipboard.writeText('')")
        assert _copy_and_read(page, figure) == find_source(module, name).text, name
        assert button.text_content() == "Copied"
        page.evaluate("() => { document.querySelector('[role=status]').textContent = ''; }")
    # The commands of the reproduce box copy as shown, without the last newline.
    box = page.locator("aside.reproduce")
    box.locator("button.code-copy").click()
    page.wait_for_function("() => document.querySelector('[role=status]').textContent "
                           "=== 'Copied'")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == box.locator("pre").text_content().rstrip("\n")
    assert copied.splitlines()[-3:] == ["make site", "make test",
                                        ".venv/bin/lora-site run --only main --only audit"]


def test_without_javascript_the_code_reads_the_same_and_has_no_button(built_site, serve_folder,
                                                                      new_context):
    server = serve_folder(built_site.html, "/")
    url = post_urls(built_site, server)["lora-attention-geometry"]
    page = new_context(javascript=False)[0].new_page()
    page.goto(url, wait_until="load")
    # No button is shown (Cite this's Copy button is in the page, hidden until a script can
    # write the clipboard).
    assert page.locator("button").count() > 0
    assert page.locator("button:visible").count() == 0
    assert page.locator("figure.listing details").count() == sum(
        find_source(m, n).lines > FOLD_LINES for m, n in LISTINGS) == 2
    page.locator("figure.listing summary").first.click()         # <details> needs no script
    assert page.locator("figure.listing details").first.evaluate("d => d.open") is True
    assert all(p["scrollWidth"] <= p["clientWidth"] for p in page.evaluate(_PRES)
               if p["visible"])


def _source_links(html: str) -> list[str]:
    return re.findall(r'<figcaption class="listing-source">(?:<code>\w+</code>: )?<a href="([^"]+)"',
                      html)


def expected_links(commit: str) -> list[str]:
    out = []
    for module, name in LISTINGS:
        src = find_source(module, name)
        out.append(f"{REPOSITORY}/blob/{commit}/{src.rel}#L{src.first}-L{src.last}")
    return out


def test_each_listing_links_to_its_lines_at_the_build_commit_in_both_outputs(jekyll_site_root):
    require_client("git")
    site, dest, pages = jekyll_site_root
    commit = project_commit(site.project)
    assert commit and len(commit) == 40
    html = find_post_page(site.html, "lora-attention-geometry").read_text(encoding="utf-8")
    assert _source_links(html) == expected_links(commit)
    jekyll_page = url_to_file(dest, pages["lora-attention-geometry"]).read_text(encoding="utf-8")
    assert _source_links(jekyll_page) == expected_links(commit)
    # Folding, the claims table and the box came through kramdown too.
    assert jekyll_page.count('<details class="listing-fold">') == 2
    audit = url_to_file(dest, pages["lora-attention-claims-audit"]).read_text(encoding="utf-8")
    assert audit.count('<th scope="row">') == 12 and '<table class="claims">' in audit
    for text in (html, jekyll_page, audit):
        assert f'<a href="{REPOSITORY}/tree/{commit}">github.com/lora-site/lora-site</a> at ' \
               f"commit <code>{commit[:12]}</code>, the one this page was built from." in text


def test_the_copy_button_works_in_the_jekyll_site(jekyll_site_root, serve_folder, new_context):
    site, dest, pages = jekyll_site_root
    server = serve_folder(dest, "/")
    context, _ = new_context(width=375, height=800, mobile=True, color_scheme="dark")
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(server.origin + pages["lora-attention-geometry"], wait_until="load")
    for i, (module, name) in enumerate(LISTINGS):
        figure = page.locator("figure.listing").nth(i)
        assert _copy_and_read(page, figure) == find_source(module, name).text, name
        page.evaluate("() => { document.querySelector('[role=status]').textContent = ''; }")
