"""A Python-Markdown extension for this project's dialect: TeX math and fenced code.

What counts as math and as a fence is decided by the same two functions the Jekyll writer
uses (dialect.iter_blocks for fences and display math, dialect.inline_math_spans for inline
math), so the HTML page and the Jekyll post always agree on it.

HTML produced, the form MathJax is configured to read (processHtmlClass: "arithmatex"):
  inline math    <span class="arithmatex">\\(TeX\\)</span>
  display math   <div class="arithmatex">\\[\\nTeX\\n\\]</div>
  fenced code    Pygments' HTML: <div class="highlight"><pre><span></span><code>...</code>, each
                 line of code in <span class="line"> (with style="--indent:N" when it starts
                 with N columns of whitespace): the stylesheet wraps a long line with a
                 hanging indent under its own indentation instead of hiding it behind a
                 sideways scroll. The newline after each line stays outside its span, so the
                 text of <code> (what the copy button and a selection copy) is the code.

Why not pymdown-extensions: its arithmatex and superfences modules import urllib.request
(http.client, email, ...) and Pygments at start-up, ~50 ms of every rebuild after a prose edit,
and a rebuild after a prose edit highlights nothing (the highlighted listings are cached).
Pygments is imported here only when a block is not in the cache.
"""
from __future__ import annotations

import html
import re
import xml.etree.ElementTree as etree
from typing import Any, Callable

from markdown import Extension
from markdown.inlinepatterns import InlineProcessor
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from markdown.util import AtomicString

MATH_CLASS = "arithmatex"
CODE_CLASS = "highlight"

# An attribute list giving the block above an id, as kramdown writes it: {: #eq-scores}
_BLOCK_ID = re.compile(r"^\{:\s*#([A-Za-z][\w:.-]*)\s*\}[ \t]*$")
# A fenced block's info string: a language name, or an attribute list such as {.python}.
_INFO_WORD = re.compile(r"^\{?\s*\.?([\w+#.-]+)")


def _escape(tex: str) -> str:
    return html.escape(tex, quote=False)


def display_math_html(tex: str, element_id: str | None = None) -> str:
    at = f' id="{html.escape(element_id, quote=True)}"' if element_id else ""
    return f'<div class="{MATH_CLASS}"{at}>\\[\n{_escape(tex)}\n\\]</div>'


def fence_parts(block: str) -> tuple[str, str]:
    """A fenced block as written (opening line, code, closing line) -> (language, code).
    The opening fence's indentation is removed from the code lines, as CommonMark does."""
    lines = block.split("\n")
    opening = lines[0]
    indent = len(opening) - len(opening.lstrip(" "))
    marker = opening.strip()[0]
    info = opening.strip().lstrip(marker).strip()
    body = lines[1:]
    if body and set(body[-1].strip()) <= {marker} and body[-1].strip():
        body = body[:-1]                        # the closing fence (absent if never closed)
    code = "\n".join(line[min(indent, len(line) - len(line.lstrip(" "))):] for line in body)
    m = _INFO_WORD.match(info)
    return (m.group(1) if m else ""), code


LINE_CLASS = "line"


def line_indents(code: str, tab_size: int = 8) -> list[int]:
    """The columns of leading whitespace of each line of ``code`` (a tab counts to the next
    multiple of ``tab_size``, as the browser shows it)."""
    out = []
    for line in code.split("\n"):
        expanded = line.expandtabs(tab_size)
        out.append(len(expanded) - len(expanded.lstrip(" ")))
    return out


def _line_formatter(indents: list[int]):
    """A Pygments HtmlFormatter that puts each line of code in its own span."""
    from pygments.formatters import HtmlFormatter

    class LineFormatter(HtmlFormatter):
        def wrap(self, source):
            return super().wrap(self._lines(source))

        def _lines(self, source):
            i = 0
            for is_code, line in source:
                if not is_code:
                    yield is_code, line
                    continue
                body, newline = (line[:-1], "\n") if line.endswith("\n") else (line, "")
                indent = indents[i] if i < len(indents) else 0
                style = f' style="--indent:{indent}"' if indent else ""
                yield 1, f'<span class="{LINE_CLASS}"{style}>{body}</span>{newline}'
                i += 1

    return LineFormatter(cssclass=CODE_CLASS, wrapcode=True)


def highlight(code: str, language: str) -> str:
    """Pygments' block HTML for ``code``, one span per line; an unknown or empty language is
    plain text."""
    from pygments import highlight as pygments_highlight
    from pygments.lexers import TextLexer, get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(language, stripnl=True) if language else TextLexer(stripnl=True)
    except ClassNotFound:
        lexer = TextLexer(stripnl=True)
    # stripnl drops the code's leading and trailing blank lines; the indents must line up
    # with the lines Pygments formats.
    return pygments_highlight(code, lexer, _line_formatter(line_indents(code.strip("\n"))))


class _BlocksPreprocessor(Preprocessor):
    """Fenced code and display math leave the Markdown text before it is parsed: each becomes
    its finished HTML in the stash, so nothing inside is read as Markdown."""

    def __init__(self, md: Any, highlighter: Callable[[str, str], str]) -> None:
        super().__init__(md)
        self.highlighter = highlighter

    def run(self, lines: list[str]) -> list[str]:
        from .dialect import iter_blocks

        out: list[str] = []
        blocks = iter_blocks("\n".join(lines))
        for i, (kind, text) in enumerate(blocks):
            if kind == "text":
                out.append(text)
                continue
            if kind == "fence":
                language, code = fence_parts(text)
                html_block = self.highlighter(code, language).rstrip("\n")
            else:
                # `{: #eq-x}` on the line after the block (render.refs writes it for a
                # labelled equation, as kramdown reads it) is the block's id.
                element_id = None
                if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
                    first, _, rest = blocks[i + 1][1].lstrip("\n").partition("\n")
                    m = _BLOCK_ID.match(first)
                    if m:
                        element_id = m.group(1)
                        blocks[i + 1] = ("text", rest)
                html_block = display_math_html(text, element_id)
            # Blank lines around: the placeholder is a block of its own, never inside a
            # paragraph (the Jekyll writer sets display blocks apart the same way).
            out.append("\n" + self.md.htmlStash.store(html_block) + "\n")
        return "\n".join(out).split("\n")


class _InlineMathProcessor(InlineProcessor):
    """$...$ and \\(...\\) inside paragraphs, headings, list items and table cells. The span is
    found by dialect.inline_math_spans from the match on; its TeX is kept as written."""

    def handleMatch(self, m: re.Match, data: str):   # noqa: N802 (Markdown's API)
        from .dialect import inline_math_spans

        start = m.start(0)
        backslashes = len(data[:start]) - len(data[:start].rstrip("\\"))
        if backslashes % 2:
            return None, None, None                     # an escaped \$ or \\(
        for begin, end, tex in inline_math_spans(data[start:], allow_display=True):
            if begin != 0:
                break
            if "\x02" in tex or "\x03" in tex:          # it would swallow a code span
                break
            el = etree.Element("span", {"class": MATH_CLASS})
            el.text = AtomicString(f"\\({_escape(tex)}\\)")
            return el, start, start + end
        return None, None, None


class _IndentedCodeTreeprocessor(Treeprocessor):
    """Indented code blocks get the same highlighted form (as plain text) as fenced ones, so
    they look alike and can be scrolled from the keyboard like the rest."""

    def __init__(self, md: Any, highlighter: Callable[[str, str], str]) -> None:
        super().__init__(md)
        self.highlighter = highlighter

    def run(self, root: etree.Element) -> None:
        for parent in root.iter():
            for i, child in enumerate(list(parent)):
                code = child[0] if child.tag == "pre" and len(child) == 1 else None
                if code is None or code.tag != "code" or code.get("class"):
                    continue
                # Markdown escaped the text for HTML (& < > only); highlighting escapes again.
                html_block = self.highlighter(html.unescape(code.text or ""), "").rstrip("\n")
                placeholder = etree.Element("p")
                placeholder.text = self.md.htmlStash.store(html_block)
                parent.remove(child)
                parent.insert(i, placeholder)


class MathAndCodeExtension(Extension):
    """Register with ``Markdown(extensions=[MathAndCodeExtension(highlighter)])``.

    highlighter(code, language) -> HTML for a fenced block (default: ``highlight``)."""

    def __init__(self, highlighter: Callable[[str, str], str] | None = None, **kwargs: Any):
        self.highlighter = highlighter or highlight
        super().__init__(**kwargs)

    def extendMarkdown(self, md: Any) -> None:      # noqa: N802 (Markdown's API)
        md.registerExtension(self)
        if "$" not in md.ESCAPED_CHARS:
            md.ESCAPED_CHARS.append("$")              # \$ is a literal dollar sign
        # Before the raw-HTML and reference preprocessors (priorities 20 and below), after
        # whitespace normalisation (30).
        md.preprocessors.register(_BlocksPreprocessor(md, self.highlighter), "math_and_code", 25)
        # Right after code spans (190), before escapes (180) and everything else: code is
        # never math, and math is never emphasis or a link.
        md.inlinePatterns.register(_InlineMathProcessor(r"\$|\\\(", md), "inline_math", 189.9)
        # Before inline processing (20), which must not see the placeholders' neighbours.
        md.treeprocessors.register(_IndentedCodeTreeprocessor(md, self.highlighter),
                                   "indented_code", 25)
