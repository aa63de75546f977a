"""Math rendered at build time: the HTML page's TeX becomes SVG with an assistive MathML copy
(render/mathjax.mjs, MathJax in Node), so formulas read with JavaScript off, in reader mode and
in the feed, which carries the MathML.

Measured before choosing (every expression of both articles in Chromium, against client-side
MathJax 3.2.2): MathJax's own SVG output is pixel-identical to what readers saw before, needs
no fonts, survives kramdown and follows the text colour; MathML renderers drew brackets and
double-struck letters wrongly with the fonts a reader is likely to have; CHTML needs fonts.

Rendered expressions are cached by (MathJax's version, display, TeX) in
.cache/lora-site/math.json, so a prose edit starts no Node process; the misses of a page go to
one Node process together.
"""
from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

from ..core.errors import ContentError
from ..core.fsio import write_bytes_atomic

SCRIPT = Path(__file__).resolve().parent / "mathjax.mjs"
CACHE_FILE = "math.json"
# Where `npm ci` put mathjax-full, if not in the project or beside the package (a copy of the
# project elsewhere, as the tests and benchmarks make, names the repository's).
ENV_NODE_MODULES = "LORA_SITE_NODE_MODULES"
CACHE_FORMAT = 1
# What render/mdext.py writes for math, and the TeX inside.
_SPAN = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
_DIV = re.compile(r'<div class="arithmatex"( [^>]*)?>\\\[\n(.*?)\n\\\]</div>', re.S)
_MATHML = re.compile(r"<math\b.*?</math>", re.S)
# Once per page: the SVG engine's layout, and the assistive copy kept for screen readers only.
CSS = """mjx-container[jax="SVG"]{direction:ltr}
mjx-container[jax="SVG"]>svg{overflow:visible;min-height:1px;min-width:1px}
mjx-container[jax="SVG"][display="true"]{display:block;text-align:center;margin:1em 0}
mjx-container[jax="SVG"][display="true"][width="full"]{display:flex}
mjx-container[jax="SVG"] path[data-c],mjx-container[jax="SVG"] use[data-c]{stroke-width:3}
mjx-assistive-mml{position:absolute!important;top:0;left:0;clip:rect(1px,1px,1px,1px);
padding:1px 0 0 0!important;border:0!important;display:block!important;width:auto!important;
overflow:hidden!important;user-select:none}
mjx-assistive-mml[display="block"]{width:100%!important}
"""


class MathRenderer:
    """TeX -> SVG through a cache, for one build context (ctx.state("math", MathRenderer))."""

    def __init__(self, ctx=None, *, cache_file: Path | None = None) -> None:
        if ctx is not None and cache_file is None:
            cache_file = ctx.project.cache / CACHE_FILE
        self.cache_file = cache_file
        self.project_root = ctx.project.root if ctx is not None else None
        self.entries: dict[str, str] = {}
        self.changed = False
        self._version: str | None = None
        if cache_file is not None:
            try:
                doc = json.loads(Path(cache_file).read_text(encoding="utf-8"))
                if doc.get("format") == CACHE_FORMAT and isinstance(doc.get("entries"), dict):
                    self.entries = doc["entries"]
            except (OSError, ValueError, AttributeError):
                self.entries = {}

    @staticmethod
    def node() -> str | None:
        return shutil.which("node")

    def node_modules(self) -> Path | None:
        """The node_modules folder that holds mathjax-full: the project's, the one beside the
        package, or $LORA_SITE_NODE_MODULES."""
        import os

        candidates = [Path(p) for p in (os.environ.get(ENV_NODE_MODULES),) if p]
        if self.project_root is not None:
            candidates.append(Path(self.project_root) / "node_modules")
        candidates.append(SCRIPT.parents[2] / "node_modules")
        return next((c for c in candidates if (c / "mathjax-full" / "package.json").is_file()),
                    None)

    def version(self) -> str:
        """The renderer's version line: a new MathJax makes every cached SVG stale."""
        if self._version is None:
            folder = self.node_modules()
            try:
                package = (folder / "mathjax-full" / "package.json") if folder else None
                self._version = "mathjax-full@" + json.loads(package.read_text())["version"]
            except (OSError, ValueError, KeyError, AttributeError):
                self._version = "unknown"
        return self._version

    def _key(self, tex: str, display: bool) -> str:
        return hashlib.sha256(json.dumps([self.version(), display, tex]).encode()).hexdigest()

    def render(self, items: list[tuple[str, bool]]) -> list[str]:
        """SVG containers for (TeX, display) items, rendering the cache misses in one call."""
        keys = [self._key(t, d) for t, d in items]
        missing = sorted({(k, t, d) for k, (t, d) in zip(keys, items) if k not in self.entries})
        if missing:
            answers = self._run([{"tex": t, "display": d} for _, t, d in missing])
            for (key, tex, _), answer in zip(missing, answers):
                if "error" in answer:
                    raise ContentError(f"MathJax cannot typeset ${tex}$: {answer['error']}",
                                       hint="fix the TeX (MathJax's TeX with the ams package)")
                self.entries[key] = answer["html"]
            self.changed = True
        return [self.entries[k] for k in keys]

    def _run(self, jobs: list[dict]) -> list[dict]:
        import os

        node = self.node()
        if node is None:
            raise ContentError("cannot pre-render math: Node.js is not installed",
                               hint="install Node.js and run `npm ci` (make site does)")
        modules = self.node_modules()
        if modules is None:
            raise ContentError("cannot pre-render math: mathjax-full is not installed",
                               path=self.project_root,
                               hint="run `npm ci` in the project folder (make site does)")
        env = dict(os.environ, NODE_PATH=str(modules))
        try:
            proc = subprocess.run([node, str(SCRIPT)], input=json.dumps(jobs).encode(),
                                  capture_output=True, timeout=600, check=False, env=env)
        except OSError as exc:
            raise ContentError(f"cannot run Node.js for the math: {exc.strerror or exc}",
                               path=node, hint="check the Node.js install") from None
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines() or ["?"]
            line = next((x for x in lines if "Error" in x), lines[-1])
            raise ContentError(f"math pre-rendering failed: {line.strip()}", path=SCRIPT,
                               hint="check the Node.js and mathjax-full installs (npm ci)")
        return json.loads(proc.stdout)

    def save(self) -> None:
        if self.changed and self.cache_file is not None:
            text = json.dumps({"format": CACHE_FORMAT, "entries": dict(sorted(self.entries.items()))},
                              sort_keys=True)
            write_bytes_atomic(Path(self.cache_file), text.encode("utf-8"))
            self.changed = False


def math_renderer(ctx) -> MathRenderer:
    renderer = ctx.state("math", MathRenderer)
    if not ctx.has_state("math-saved"):
        ctx.state("math-saved", lambda c: True)
        ctx.on_close(renderer.save)
    return renderer


def prerender(page_html: str, renderer: MathRenderer) -> tuple[str, str]:
    """(the HTML with its math as SVG, the same with its math as MathML for the feed)."""
    inline = [(m.start(), m.end(), html.unescape(m.group(1)), False, "")
              for m in _SPAN.finditer(page_html)]
    blocks = [(m.start(), m.end(), html.unescape(m.group(2)), True, m.group(1) or "")
              for m in _DIV.finditer(page_html)]
    found = sorted(inline + blocks)
    if not found:
        return page_html, page_html
    rendered = renderer.render([(tex, display) for _, _, tex, display, _ in found])
    svg_parts, mml_parts, last = [], [], 0
    for (start, end, tex, display, attrs), svg in zip(found, rendered):
        svg_parts.append(page_html[last:start])
        mml_parts.append(page_html[last:start])
        # The TeX stays on the element: to copy, to index, and for the tests to read back.
        svg = svg.replace("<mjx-container ", f'<mjx-container data-tex="'
                          f'{html.escape(tex, quote=True)}" ', 1)
        mathml = _MATHML.search(svg)
        mml = mathml.group(0) if mathml else ""
        if display:
            # The display's wrapper keeps its id (a labelled equation) and stays focusable, so a
            # wide formula can be scrolled from the keyboard.
            svg_parts.append(f'<div class="math-display"{attrs}>{svg}</div>')
            mml_parts.append(f'<div class="math-display"{attrs}>{mml}</div>')
        else:
            svg_parts.append(svg)
            mml_parts.append(mml)
        last = end
    svg_parts.append(page_html[last:])
    mml_parts.append(page_html[last:])
    return "".join(svg_parts), "".join(mml_parts)
