"""Callouts: GitHub's alert syntax, turned into a box both outputs keep.

  > [!NOTE]                  one of NOTE, TIP, IMPORTANT, WARNING, CAUTION (GitHub's five)
  > The text, in Markdown:   or SUMMARY; an optional title may follow the marker:
  > lists, math, code.       > [!WARNING] Seeds matter

GitHub renders the syntax itself, but kramdown (GitHub Pages) and Python-Markdown would show a
plain quotation starting "[!NOTE]", so before either sees the Markdown each callout becomes

  <div class="callout callout-note" role="note" markdown="1">
  <p class="callout-title" markdown="span">Note</p>
  ...the text, unquoted...
  </div>

which both parse inside (``markdown="1"``: Python-Markdown's md_in_html extension, kramdown's
own rule). Fenced code and display math outside a quotation are never read; an unknown kind is
an error naming the post's line.
"""
from __future__ import annotations

import html
import re
from typing import Callable

from ..core.errors import ContentError
from .dialect import iter_blocks

KINDS = {"note": "Note", "tip": "Tip", "important": "Important", "warning": "Warning",
         "caution": "Caution", "summary": "Summary"}
_MARKER = re.compile(r"^(?P<indent> {0,3})>[ \t]?\[!(?P<kind>[A-Za-z]+)\][ \t]*(?P<title>.*)$")
_QUOTED = re.compile(r"^ {0,3}>[ \t]?(?P<rest>.*)$")


def expand(text: str, *, line_of: Callable[[str], int | None] | None = None,
           path=None) -> str:
    """``text`` with every callout turned into its box (see the module's docstring)."""
    if "[!" not in text:
        return text
    out = []
    for kind, block in iter_blocks(text):
        if kind == "text" and "[!" in block:
            block = _expand_text(block, line_of, path)
        elif kind == "math":
            block = f"$$\n{block}\n$$"
        out.append(block)
    return "\n".join(out)


def _expand_text(block: str, line_of, path) -> str:
    lines = block.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MARKER.match(lines[i])
        # The marker opens a callout only as a quotation's first line, as on GitHub.
        if not m or (out and _QUOTED.match(out[-1])):
            out.append(lines[i])
            i += 1
            continue
        kind = m.group("kind").lower()
        if kind not in KINDS:
            raise ContentError(
                f"unknown callout [!{m.group('kind')}]",
                path=path, line=line_of(lines[i]) if line_of else None,
                hint="use one of " + ", ".join(f"[!{k.upper()}]" for k in KINDS))
        title = m.group("title").strip() or KINDS[kind]
        body = []
        i += 1
        while i < len(lines) and (q := _QUOTED.match(lines[i])):
            body.append(q.group("rest"))
            i += 1
        out.extend([
            "",
            f'<div class="callout callout-{kind}" role="note" markdown="1">',
            f'<p class="callout-title" markdown="span">{_title(title)}</p>',
            "",
            *body,
            "",
            "</div>",
            "",
        ])
    return "\n".join(out)


def _title(title: str) -> str:
    # Markdown inside the title stays (markdown="span"); a bare < or & must not open a tag.
    return html.escape(title, quote=False).replace("&amp;", "&")
