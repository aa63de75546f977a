"""Checks that need a real browser: MathJax typesetting, images, console, layout, axe-core.

Every function takes a Playwright page or context (sync API) and returns a list of one-line
problems; [] means the check passed. The browser never reaches the network: MathJax's CDN URLs are
answered from the pinned npm copy in node_modules/, and any other external request is blocked and
reported, because a published page must not depend on what a test machine happens to reach.
"""
from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "node_modules"
MATHJAX_ES5 = NODE_MODULES / "mathjax" / "es5"
AXE_JS = NODE_MODULES / "axe-core" / "axe.min.js"

# .../mathjax@3.2.2/es5/x.js (jsDelivr, unpkg) and .../mathjax/3.2.2/es5/x.js (cdnjs).
_MATHJAX_URL = re.compile(r"/mathjax(?:@([^/]+)|/(\d[^/]*))?/es5/(.+)$")


@dataclass
class Traffic:
    """What a browser context asked for that a static site should never need."""
    blocked: list[str] = field(default_factory=list)
    mathjax_served: list[str] = field(default_factory=list)


def route_offline(context, traffic: Traffic) -> None:
    """Answer MathJax CDN requests from node_modules; block every other external request."""
    def handle(route):
        url = route.request.url
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.hostname in ("127.0.0.1", "localhost"):
            route.continue_()
            return
        m = _MATHJAX_URL.search(parts.path)
        version = m and (m.group(1) or m.group(2))
        if m and (version is None or version.split(".")[0] == "3"):
            local = MATHJAX_ES5 / m.group(3)
            if local.is_file():
                traffic.mathjax_served.append(url)
                route.fulfill(path=str(local))
                return
        traffic.blocked.append(url)
        route.abort("blockedbyclient")
    context.route("**/*", handle)


@dataclass
class PageLog:
    """Console errors, uncaught exceptions and failed requests of one page."""
    errors: list[str] = field(default_factory=list)

    def attach(self, page) -> "PageLog":
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught exception: {exc}"))
        page.on("requestfailed", lambda r: self.errors.append(
            f"request failed: {r.url} ({r.failure})"))
        page.on("response", lambda r: self.errors.append(f"HTTP {r.status}: {r.url}")
                if r.status >= 400 else None)
        return self


def wait_for_mathjax(page, timeout_ms: int = 30_000) -> str | None:
    """Wait until MathJax has typeset the page; a problem string when it never does."""
    from playwright.sync_api import Error, TimeoutError as PlaywrightTimeout
    try:
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
            " && typeof MathJax.startup.promise.then === 'function'", timeout=timeout_ms)
        page.evaluate("() => MathJax.startup.promise.then(() => true)")
    except PlaywrightTimeout:
        return f"MathJax did not finish within {timeout_ms // 1000} s (not loaded?)"
    except Error as exc:
        return f"MathJax failed: {str(exc).splitlines()[0]}"
    return None


_LOAD_IMAGES = """async () => {
  const images = Array.from(document.images);
  for (const img of images) {
    img.scrollIntoView();            // lazy images load only near the viewport
    if (!img.complete) {
      await new Promise(done => {
        img.addEventListener('load', done, {once: true});
        img.addEventListener('error', done, {once: true});
        setTimeout(done, 10000);
      });
    }
  }
  window.scrollTo(0, 0);
  return images.map(i => ({src: i.getAttribute('src'), current: i.currentSrc,
                           ok: i.complete && i.naturalWidth > 0}));
}"""

# Elements sticking out past the right edge of the viewport that no scrolling or clipping box
# of their own contains. Only the outermost offender of a subtree is named.
_OVERFLOW = """() => {
  const vw = document.documentElement.clientWidth;
  const clips = el => ['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(el).overflowX);
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      Array.from(el.classList).map(c => '.' + c).join('');
  const sticksOut = el => {
    const r = el.getBoundingClientRect();
    return (r.width > 0 || r.height > 0) && r.right > vw + 0.5;
  };
  const contained = el => {
    for (let a = el.parentElement; a && a !== document.body && a !== document.documentElement;
         a = a.parentElement) {
      if (clips(a)) return !sticksOut(a);
    }
    return false;
  };
  const offenders = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (!sticksOut(el) || contained(el)) continue;
    if (el.parentElement && el.parentElement !== document.body && sticksOut(el.parentElement)
        && !contained(el.parentElement)) continue;
    const r = el.getBoundingClientRect();
    offenders.push(`${name(el)} reaches x=${Math.round(r.right)}`);
  }
  return {viewport: vw, scrollWidth: document.documentElement.scrollWidth,
          bodyScrollWidth: document.body.scrollWidth, offenders: offenders.slice(0, 10)};
}"""


def check_post_page(page, url: str, expected_math: int, screenshot: Path | None = None,
                    min_images: int = 0, mathjax_timeout_ms: int = 30_000) -> list[str]:
    """Load a post page and check what a reader gets (issue 4, check 2).

    MathJax finishes; the page has exactly ``expected_math`` typeset expressions and none in
    error; every image loads; no console error and no failed request; nothing is wider than the
    viewport. Saves a full-page screenshot when ``screenshot`` is given.
    """
    log = PageLog().attach(page)
    problems = []
    response = page.goto(url, wait_until="load")
    if response is None or response.status != 200:
        return [f"{url}: HTTP {response.status if response else 'no response'}"]
    # A page that loads MathJax typesets in the browser; one whose math was rendered at build
    # time has its <mjx-container> elements already.
    if page.evaluate("() => !!document.querySelector('script[src*=\"mathjax\" i]')"):
        failure = wait_for_mathjax(page, mathjax_timeout_ms)
        if failure:
            problems.append(f"{url}: {failure}")
    typeset = page.locator("mjx-container").count()
    if typeset != expected_math:
        problems.append(f"{url}: {typeset} typeset math elements, the source has "
                        f"{expected_math} math expressions")
    for err in page.locator("mjx-merror").all():
        problems.append(f"{url}: MathJax error: {err.get_attribute('data-mjx-error') or ''} "
                        f"in {err.text_content()!r}"[:200])
    images = page.evaluate(_LOAD_IMAGES)
    for img in images:
        if not img["ok"]:
            problems.append(f"{url}: image did not load: {img['current'] or img['src']}")
    if len(images) < min_images:
        problems.append(f"{url}: {len(images)} images, expected at least {min_images}")
    layout = page.evaluate(_OVERFLOW)
    if layout["scrollWidth"] > layout["viewport"] or layout["offenders"]:
        problems.append(f"{url}: the page is {layout['scrollWidth']} px wide at a "
                        f"{layout['viewport']} px viewport; sticking out: "
                        f"{', '.join(layout['offenders']) or '(none named)'}")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    page.wait_for_timeout(100)                        # let late console messages arrive
    problems += [f"{url}: {e}" for e in log.errors]
    return problems


_AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 4).map(n => n.target.join(' '))}));
}"""


def axe_violations(page, url: str, color_scheme: str,
                   impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core's violations of the given impacts on ``url`` in a light or dark color scheme."""
    page.emulate_media(color_scheme=color_scheme)
    page.goto(url, wait_until="load")
    if page.evaluate("() => !!document.querySelector('script[src*=\"mathjax\" i]')"):
        failure = wait_for_mathjax(page)
        if failure:
            return [f"{url} ({color_scheme}): {failure}"]
    page.add_script_tag(path=str(AXE_JS))
    found = page.evaluate(_AXE_RUN)
    return [f"{url} ({color_scheme}): {v['id']} ({v['impact']}): {v['help']} at "
            f"{'; '.join(v['nodes'])}" for v in found if v["impact"] in impacts]
