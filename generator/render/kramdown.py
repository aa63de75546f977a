"""Markdown -> kramdown-safe Markdown, for the Jekyll post (DESIGN.md: math in two dialects).

kramdown only knows $$: a single $ is plain text to it, so _ and * inside inline math become
emphasis, a | on a paragraph's first line makes a table, and \\{, \\|, \\# lose their backslash.
Jekyll also runs Liquid first: {{ }} vanishes and a stray {% fails the build. So inline math
becomes $$..$$, | becomes \\vert inside inline math, display math goes on its own lines between
blank lines, and {{ / {% are guarded with {% raw %}.
"""
from __future__ import annotations

import re

from .dialect import inline_math_spans, iter_blocks

FOCUSABLE_IAL = '{: tabindex="0"}'
_LIQUID = re.compile(r"\{[{%]")
_BLOCK_IAL = re.compile(r"^\{:\s*#[A-Za-z][\w:.-]*\s*\}[ \t]*$")


def kramdown_inline_tex(tex: str) -> str:
    """Inline TeX kramdown will not misread: | would start a table cell, so it becomes \\vert
    (and \\| becomes \\Vert). A trailing space ends the control word before a following letter."""
    tex = tex.replace("\\|", "\\Vert ")
    return re.sub(r"(?<!\\)\|", r"\\vert ", tex)


def guard_liquid(text: str) -> str:
    """Hide every {{ and {% from Liquid, which runs before kramdown. One raw tag per occurrence
    keeps the guard correct even when the text itself mentions endraw."""
    return _LIQUID.sub(lambda m: "{% raw %}" + m.group(0) + "{% endraw %}", text)


_OL_START = re.compile(r"^(\s*)(\d+)\.(?=\s)")
_DL_START = re.compile(r"^(\s*):(?=\s)")
_LIST_ITEM = re.compile(r"^(\s*)(?:\d+\.|[-*+])(\s+)")


def _guard_block_starts(text: str) -> str:
    """Escape '5. ' and ': ' at the start of a line that continues a paragraph.

    kramdown's GFM parser lets an ordered list interrupt a paragraph and reads ': ' as a
    definition, so a number filled in by Jinja at the start of a wrapped line ('... on key\n5.
    Measured ...') would split the paragraph; Python-Markdown keeps it in the paragraph. A line
    at least as indented as the line before it continues it (a new list item is less indented
    than the text of the item above)."""
    lines = text.split("\n")
    for i in range(1, len(lines)):
        prev, line = lines[i - 1], lines[i]
        if not prev.strip():
            continue
        m = _OL_START.match(line) or _DL_START.match(line)
        if not m:
            continue
        indent = len(m.group(1))
        pm = _LIST_ITEM.match(prev)
        prev_indent = (len(pm.group(0)) if pm else len(prev) - len(prev.lstrip()))
        if indent >= prev_indent:
            cut = m.end()
            lines[i] = line[: cut - 1] + "\\" + line[cut - 1:]
    return "\n".join(lines)


def to_kramdown(source: str) -> str:
    """Rewrite author Markdown into kramdown-safe Markdown for a Jekyll post (see DESIGN.md)."""
    parts: list[str] = []
    blocks = iter_blocks(source)
    for i, (kind, text) in enumerate(blocks):
        if kind == "fence":
            # Code is left as written. The attribute list on the next line makes the block
            # keyboard-focusable, so a reader without a mouse can scroll a long line
            # (kramdown puts it on the block's wrapper). If the code holds Liquid-looking
            # text, raw tags go on lines of their own outside the fence.
            block = text + "\n" + FOCUSABLE_IAL
            if _LIQUID.search(text) and "endraw" not in text:
                parts.append("{% raw %}\n" + block + "\n{% endraw %}")
            else:
                parts.append(guard_liquid(block) if _LIQUID.search(text) else block)
        elif kind == "math":
            # Display math: $$ on their own lines with blank lines around, which kramdown reads
            # as a block (a $$ inside a paragraph would be inline math). An attribute list on
            # the next line (a labelled equation's id) must follow the block directly.
            ial = ""
            if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
                first, _, rest = blocks[i + 1][1].lstrip("\n").partition("\n")
                if _BLOCK_IAL.match(first):
                    ial = first.strip() + "\n"
                    blocks[i + 1] = ("text", rest)
            parts.append("\n$$\n" + guard_liquid(text) + "\n$$\n" + ial)
        else:
            out, last = [], 0
            for start, end, tex in inline_math_spans(text):
                out.append(guard_liquid(text[last:start]))
                out.append("$$" + guard_liquid(kramdown_inline_tex(tex)) + "$$")
                last = end
            out.append(guard_liquid(text[last:]))
            parts.append(_guard_block_starts("".join(out)))
    result = "\n".join(parts)
    # Collapse the runs of blank lines the display blocks introduce.
    return re.sub(r"\n{3,}", "\n\n", result).strip("\n") + "\n"


_MD_ESCAPE = re.compile(r"([\\`*_\[\]#<>|$]|\{(?=:))")


def escape_markdown(text: str) -> str:
    """Plain text (a title) as kramdown that renders to exactly that text, with {{ and {%
    hidden from Liquid ('{:' is escaped too: kramdown reads it as an attribute list)."""
    return guard_liquid(_MD_ESCAPE.sub(r"\\\1", text).replace("&", "&amp;"))
