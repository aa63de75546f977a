"""Markdown -> HTML for the HTML output: Python-Markdown with our dialect's extension (mdext),
a table of contents, tables and attribute lists; code highlighted by Pygments through a cache.

``Markdowner`` holds the converter and the highlight cache of a build context
(``markdowner(ctx)``), so a preview server converts with the same instance across rebuilds.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.context import BuildContext
from ..core.fsio import write_bytes_atomic
from ..core.keys import installed_version
from .dialect import FENCE, display_closer

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
    than converting a caption), and the highlight cache it looks code up in.

    It remembers its last few whole conversions (HISTORY), so that ``to_html(splice=True)`` can
    convert an edit of one of them by converting only the paragraph that changed (splice)."""

    HISTORY = 8                 # documents: a build converts one per post
    INLINE_MEMO = 4096          # captions and other one-liners, by their source

    def __init__(self, ctx: BuildContext | None = None, *, cache_file: Path | None = None) -> None:
        if ctx is not None and cache_file is None:
            cache_file = ctx.project.cache / "highlight.json"
        self.highlights = HighlightCache(cache_file)
        self._md: Any = None
        # source -> (its conversion, whether it defines reference links), oldest first
        self._docs: dict[str, tuple[HtmlDoc, bool]] = {}
        self._inline: dict[str, str] = {}

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

    def to_html(self, source: str, *, splice: bool = False) -> HtmlDoc:
        """The document ``source`` as HTML. splice: when it is one of the last documents
        converted with one paragraph edited, convert only that paragraph (see splice()); a
        preview's early page uses it, builds never do."""
        if splice:
            doc = self.splice(source)
            if doc is not None:
                return doc
        md = self._markdown()
        html = _polish(md.convert(source))
        doc = HtmlDoc(html=html, toc=list(getattr(md, "toc_tokens", [])))
        self._docs.pop(source, None)
        self._docs[source] = (doc, bool(md.references))
        while len(self._docs) > self.HISTORY:
            del self._docs[next(iter(self._docs))]
        return doc

    def splice(self, source: str) -> HtmlDoc | None:
        """``source`` converted by editing a remembered conversion: the document remembered
        that shares the most text with it, when the two differ inside one plain paragraph or
        one plain list (no footnote, math block, heading, table or HTML block, no list inside,
        no HTML but whole inline tags, no attribute list giving an id, no reference link in a
        document that defines some, no list next to it, not inside a fence or an HTML block:
        nothing whose rendering depends on the rest of the document). That block's old text, converted
        alone, must be found exactly once in the old HTML, as a block of its own: it is
        replaced by the new text converted alone. None when any of this does not hold."""
        best = None
        for old, (doc, refs) in self._docs.items():
            if old == source:
                return doc
            p = _common_prefix(old, source)
            s = _common_suffix(old, source, min(len(old), len(source)) - p)
            if best is None or p + s > best[0]:
                best = (p + s, old, doc, refs, p, s)
        if best is None:
            return None
        _, old, doc, refs, p, s = best
        start = old.rfind("\n\n", 0, p)
        start = 0 if start < 0 else start + 2
        while start < p and old[start] == "\n":      # more than one blank line before it
            start += 1
        end = old.find("\n\n", len(old) - s)
        end = len(old) if end < 0 else end
        while end > max(start, len(old) - s) and old[end - 1] == "\n":
            end -= 1                                # the document's last newline
        tail = len(old) - end
        before, after = old[start:end], source[start:len(source) - tail]
        kind = _block_kind(before, refs)
        if kind is None or _block_kind(after, refs) != kind:
            return None
        if kind == "list" and not _apart_from_lists(old[:start], old[end:], refs):
            return None         # next to another list, it would be one loose list with it
        if not (_html_plain(old) and _html_plain(source)):
            return None         # HTML that Markdown may read across blocks
        block_tags = self._markdown().block_level_elements
        if _open_block(old[:start], block_tags) or old.count(before) != 1:
            return None         # inside a fence or an HTML block: the same words elsewhere
        old_html, new_html = self._fragment(before, kind), self._fragment(after, kind)
        if old_html is None or new_html is None:
            return None
        at = doc.html.find(old_html)
        stop = at + len(old_html)
        if (at < 0 or doc.html.find(old_html, at + 1) >= 0
                or (at > 0 and doc.html[at - 1] != "\n")
                or (stop < len(doc.html) and doc.html[stop] != "\n")):
            return None
        return HtmlDoc(html=doc.html[:at] + new_html + doc.html[stop:], toc=doc.toc)

    def _fragment(self, block: str, kind: str = "p") -> str | None:
        """One block converted alone: its one element (a <p>, or a <ul> or <ol> of items
        without a list inside), or None if it is not that."""
        html = _polish(self._markdown().convert(block))
        if kind == "p":
            tags = [("<p>", "</p>")]
        else:
            tags = [("<ul>", "</ul>"), ("<ol>", "</ol>"), ("<ol start=", "</ol>")]
        if not any(html.startswith(a) and html.endswith(b) for a, b in tags):
            return None
        opened = html.count("<p") if kind == "p" else html.count("<ul") + html.count("<ol")
        closed = html.count("</p>") if kind == "p" else html.count("</ul>") + html.count("</ol>")
        return html if opened == closed == 1 else None

    def inline(self, source: str) -> str:
        """One line of Markdown (a caption) as inline HTML, math included, without the <p>."""
        memo = self._inline.get(source)
        if memo is not None:
            return memo
        html = self._markdown().convert(source).strip()
        if html.startswith("<p>") and html.endswith("</p>") and html.count("<p>") == 1:
            html = html[3:-4]
        if len(self._inline) >= self.INLINE_MEMO:
            self._inline.clear()
        self._inline[source] = html
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


def _polish(html: str) -> str:
    # A block that can scroll sideways (code, wide display math) must be reachable from the
    # keyboard, or keyboard users cannot scroll it (axe: scrollable-region-focusable).
    html = html.replace('<div class="highlight"><pre>',
                        '<div class="highlight"><pre tabindex="0">')
    html = html.replace('<div class="arithmatex">', '<div class="arithmatex" tabindex="0">')
    return html.replace('<table>', '<table tabindex="0">')      # tables scroll sideways too


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix, by halving (string comparison runs in C)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    """The length of the longest common suffix, at most ``limit``."""
    lo, hi = 0, max(0, limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:len(a) - lo] == b[len(b) - mid:len(b) - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


# What may start a line of a plain paragraph: not a heading, quote, table, HTML, list item,
# rule, fence, setext underline, attribute list, reference definition or indented code.
_NOT_A_PARAGRAPH_LINE = re.compile(
    r"^(?:[ \t#>|<:{=~]|[*+-][ \t]|[*_-](?:[ \t]*[*_-]){2,}[ \t]*$|-+[ \t]*$|\d+[.)](?:\s|$)"
    r"|\[[^\]]*\]:|\\\[|\\begin)")
# A list item's first line, bulleted or numbered.
_ITEM = re.compile(r"^(?:([*+-])|\d+([.)]))[ \t]+\S")
# A line a list item may go on with: indented by one to three spaces (four would be code), or
# not at all (a lazy continuation), and not an item of a list inside.
_CONTINUED = re.compile(r"^ {0,3}(?![ \t]|[*+-][ \t]|\d+[.)][ \t])")
# Anywhere in it: a footnote (or the footnotes' place marker), a fence, a math block, an HTML
# comment, a blank line, Markdown's own placeholders.
_CONTEXTUAL = re.compile(r"\[\^|```|~~~|\$\$|<!--|\n[ \t]*\n|^\s|\s$|///Footnotes|[\x02\x03]")
# A ] that does not open a (url): a reference-style link, if the document defines references.
_REFERENCE = re.compile(r"\](?!\()")
# An attribute list that may give an id (Markdown's table of contents keeps ids unique across
# the document, so a new one can rename a heading's).
_SETS_ID = re.compile(r"\{[^}\n]*(?:#|\bid\s*=)")
# The only HTML a plain block may hold: whole inline tags. Markdown reads raw HTML over the whole
# document, so any other "<" (n<d, a half-typed tag, an open quote, an autolink) may change how
# a later HTML block is read.
_INLINE_TAGS = ("a", "abbr", "b", "bdi", "br", "cite", "code", "del", "dfn", "em", "i", "img",
                "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strong", "sub",
                "sup", "time", "u", "var", "wbr")
# A whole tag, its attributes' quotes closed; and what the HTML parser may take for the start
# of markup (a "<" before a letter, "/", "!" or "?": "p < 0.05" is text).
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^\s\"'>/=]+(?:\s*=\s*(?:\"[^\"]*\"|"
                  r"'[^']*'|[^\s\"'=<>`]+))?)*)\s*/?>")
_MARKUP = re.compile(r"<(?=[A-Za-z/!?])")
_VOID = frozenset({"br", "img", "wbr"})
# A character reference Markdown's HTML parser reads as one; a "&#" that is not one makes it
# read the rest of the document as text.
_BAD_CHARREF = re.compile(r"&#(?![0-9]+;|[xX][0-9a-fA-F]+;)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)*?\1")
_ANY_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)\b[^>]*?(/?)>")


def _inline_html_only(text: str) -> bool:
    """Every start of markup in ``text`` is a whole inline tag, and each tag opened is
    closed."""
    tags = _TAG.findall(text)
    if len(_MARKUP.findall(text)) != len(tags):
        return False
    depth: dict[str, int] = {}
    for close, name, _attrs in tags:
        name = name.lower()
        if name not in _INLINE_TAGS:
            return False
        if name in _VOID:
            continue
        depth[name] = depth.get(name, 0) + (-1 if close else 1)
        if depth[name] < 0:
            return False
    return not any(depth.values())


def _html_plain(document: str) -> bool:
    """Whether every start of markup in the whole document is a whole tag, with no comment,
    declaration, processing instruction or CDATA, no "&#" that is no character reference and
    no carriage return: what Markdown's HTML reading could carry from one block into the
    next."""
    if ("<!" in document or "<?" in document or "\r" in document
            or _BAD_CHARREF.search(document)):
        return False                # (a post's text has no \r: posts.py reads it so)
    return len(_MARKUP.findall(document)) == len(_TAG.findall(document))


def _open_block(before: str, block_tags) -> bool:
    """Whether the text ``before`` a block leaves a fence, a display-math block (as
    render.dialect reads them) or a raw HTML block (a block-level tag of Markdown's) open:
    the block is then inside it. Tags in fences and code spans are not counted."""
    fence = None
    math = None
    outside: list[str] = []                 # the lines neither fenced nor math
    for line in before.split("\n"):
        stripped = line.strip()
        if fence is not None:
            if stripped.startswith(fence) and set(stripped) <= {fence[0]}:
                fence = None
            continue
        if math is not None:
            if line.rstrip().endswith(math):
                math = None
            continue
        opened = FENCE.match(line)
        if opened:
            fence = opened.group(2)
            continue
        closer = display_closer(line)
        if closer is not None:
            rest = stripped[len("$$" if closer == "$$" else "\\["):]
            if not (rest.rstrip().endswith(closer) and rest.strip()):
                math = closer           # not opened and closed on this line
            continue
        outside.append(line)
    if fence is not None or math is not None:
        return True
    depth: dict[str, int] = {}
    blocks = set(block_tags)
    for close, name, selfclosing in _ANY_TAG.findall(_CODE_SPAN.sub("", "\n".join(outside))):
        name = name.lower()
        if name not in blocks or selfclosing or name == "hr":
            continue
        depth[name] = depth.get(name, 0) + (-1 if close else 1)
    return any(v > 0 for v in depth.values())


def _block_kind(text: str, references: bool = True) -> str | None:
    """"p" for a plain paragraph, "list" for a plain list (items of one kind, no list inside),
    whose HTML does not depend on the rest of the document (but for a list's neighbours:
    _apart_from_lists); None for anything else. references: the document defines
    reference-style links (then a [name] may be one)."""
    if (not text or _CONTEXTUAL.search(text) or (references and _REFERENCE.search(text))
            or _SETS_ID.search(text) or ("<" in text and not _inline_html_only(text))):
        return None
    lines = text.split("\n")
    first = _ITEM.match(lines[0])
    if first is None:
        if any(_NOT_A_PARAGRAPH_LINE.match(line) for line in lines):
            return None
        return "p"
    marker = first.group(1) or first.group(2)
    for line in lines[1:]:
        item = _ITEM.match(line)
        if item is not None:
            if (item.group(1) or item.group(2)) != marker:
                return None             # another kind of item: another list
            continue
        body = line.lstrip(" ")
        if (not _CONTINUED.match(line) or not body
                or _NOT_A_PARAGRAPH_LINE.match(body)):
            return None
    return "list"


def _apart_from_lists(before: str, after: str, references: bool) -> bool:
    """Whether the blocks around a list (the text before and after it) are plain paragraphs,
    headings or the document's ends: a list beside another list, an indented block, or a block
    that renders nothing (a definition) with a list beyond it, would be joined to it."""
    previous = before.rstrip("\n").rsplit("\n\n", 1)[-1].strip("\n")
    following = after.lstrip("\n").split("\n\n", 1)[0].strip("\n")
    return all(not block or _ATX.match(block) or _block_kind(block, references) == "p"
               for block in (previous, following))


_ATX = re.compile(r"#{1,6}[ \t][^\n]*$")


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
