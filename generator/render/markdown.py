"""Markdown -> HTML for the HTML output: Python-Markdown with our dialect's extension (mdext),
a table of contents, tables and attribute lists; code highlighted by Pygments through a cache.

``Markdowner`` holds the converter and the highlight cache of a build context
(``markdowner(ctx)``), so a preview server converts with the same instance across rebuilds.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.context import BuildContext
from ..core.fsio import write_bytes_atomic
from ..core.keys import installed_version

PYGMENTS_LIGHT = "default"
PYGMENTS_DARK = "github-dark"


@dataclass(frozen=True)
class HtmlDoc:
    html: str
    toc: list[dict]     # [{'level', 'id', 'name', 'html', 'children': [...]}], from Python-Markdown


class HighlightCache:
    """Highlighted code blocks kept between builds in a JSON file, keyed by the hash of
    everything that decides one: the code, its language and the Pygments version.

    Pygments' import and a lexer's first use cost more than the rest of a prose-edit rebuild;
    the listings rarely change, so they are looked up instead. The stylesheet's Pygments rules
    are kept here too. The newest MAX_ENTRIES entries are kept (a post reused from the post
    cache highlights nothing, yet its blocks will be wanted again).
    """

    MAX_ENTRIES = 400
    FORMAT = 3                  # 3: one span per line of code (mdext.highlight)

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, str] = {}
        if self.path is not None:
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
                if not isinstance(self.entries, dict):
                    self.entries = {}
            except (OSError, ValueError):
                self.entries = {}
        self.used: dict[str, str] = {}

    def save(self) -> None:
        new = {k: v for k, v in self.used.items() if k not in self.entries}
        if new and self.path is not None:
            # Oldest first, so the cap drops what has not been used for longest.
            kept = {k: v for k, v in self.entries.items() if k not in self.used}
            merged = list(kept.items()) + list(self.used.items())
            self.entries = dict(merged[-self.MAX_ENTRIES:])
            text = json.dumps(self.entries, indent=0)
            write_bytes_atomic(self.path, text.encode("utf-8"))
        self.used = {}


def _pygments_version() -> str:
    """Read from the installed distribution's metadata folder: importing Pygments to ask it
    costs what the cache saves."""
    return installed_version("pygments") or "unknown"


class Markdowner:
    """One Markdown converter, reused (building one loads eight extensions, which costs more
    than converting a caption), and the highlight cache it looks code up in."""

    def __init__(self, ctx: BuildContext | None = None, *, cache_file: Path | None = None) -> None:
        if ctx is not None and cache_file is None:
            cache_file = ctx.project.cache / "highlight.json"
        self.highlights = HighlightCache(cache_file)
        self._md: Any = None

    def _markdown(self):
        if self._md is None:
            self._md = _new_markdown(self._highlight_fence)
        self._md.reset()
        return self._md

    def _highlight_fence(self, code: str, language: str) -> str:
        from .mdext import highlight

        key = hashlib.sha256(json.dumps([HighlightCache.FORMAT, _pygments_version(), language,
                                         code]).encode("utf-8")).hexdigest()
        html = self.highlights.entries.get(key)
        if html is None:
            html = highlight(code, language)
        self.highlights.used[key] = html
        return html

    def to_html(self, source: str) -> HtmlDoc:
        md = self._markdown()
        html = md.convert(source)
        # A block that can scroll sideways (code, wide display math) must be reachable from the
        # keyboard, or keyboard users cannot scroll it (axe: scrollable-region-focusable).
        html = html.replace('<div class="highlight"><pre>',
                            '<div class="highlight"><pre tabindex="0">')
        html = html.replace('<div class="arithmatex">', '<div class="arithmatex" tabindex="0">')
        html = html.replace('<table>', '<table tabindex="0">')      # tables scroll sideways too
        return HtmlDoc(html=html, toc=list(getattr(md, "toc_tokens", [])))

    def inline(self, source: str) -> str:
        """One line of Markdown (a caption) as inline HTML, math included, without the <p>."""
        html = self._markdown().convert(source).strip()
        if html.startswith("<p>") and html.endswith("</p>") and html.count("<p>") == 1:
            html = html[3:-4]
        return html

    def pygments_css(self, light: str = PYGMENTS_LIGHT, dark: str = PYGMENTS_DARK) -> str:
        """Highlighting rules for both colour schemes, each inside its own media query so no
        rule of one scheme leaks into the other. Print takes the light scheme whatever the
        reader's preference: ink on paper."""
        key = f"css-print:{_pygments_version()}:{light}:{dark}"
        if key in self.highlights.entries:
            self.highlights.used[key] = self.highlights.entries[key]
            return self.highlights.entries[key]
        from pygments.formatters import HtmlFormatter

        def rules(style: str) -> str:
            css = HtmlFormatter(style=style).get_style_defs(".highlight")
            return "\n".join("  " + line for line in css.splitlines() if line.strip())

        css = (f"/* Pygments '{light}' */\n@media print, (prefers-color-scheme: light) {{\n"
               f"{rules(light)}\n}}\n/* Pygments '{dark}' */\n"
               f"@media screen and (prefers-color-scheme: dark) {{\n{rules(dark)}\n}}\n")
        self.highlights.used[key] = css
        return css

    def save(self) -> None:
        self.highlights.save()


def markdowner(ctx: BuildContext) -> Markdowner:
    return ctx.state("markdown", Markdowner)


def _new_markdown(highlighter):
    # Extensions as objects, not names: by name, Markdown first reads every installed
    # package's entry points to find them, which costs more than a prose-edit render.
    import markdown
    from markdown.extensions.attr_list import AttrListExtension
    from markdown.extensions.footnotes import FootnoteExtension
    from markdown.extensions.md_in_html import MarkdownInHtmlExtension
    from markdown.extensions.tables import TableExtension
    from markdown.extensions.toc import TocExtension

    from .mdext import MathAndCodeExtension

    return markdown.Markdown(
        extensions=[
            # $...$, \\(...\\), $$ blocks and ``` fences, as the Jekyll writer reads them.
            MathAndCodeExtension(highlighter=highlighter),
            TocExtension(permalink=False, toc_depth="2-3"),
            TableExtension(),
            AttrListExtension(),
            MarkdownInHtmlExtension(),
            # [^name] and "[^name]: text", numbered in the order cited, as kramdown does.
            FootnoteExtension(BACKLINK_TITLE="Back to the text of note %d"),
        ],
        output_format="html",
    )
