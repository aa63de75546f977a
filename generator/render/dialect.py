"""The author's Markdown dialect: where fenced code, display math and inline math are.

What content/posts/*.md may use:
  inline math   $...$  or  \\(...\\)
  display math  $$ on a line of its own, the TeX, and $$ on a line of its own (or \\[ ... \\])
  a literal dollar sign in prose is written \\$
Both outputs read the body with these two functions (mdext for the HTML page, kramdown for the
Jekyll post), so they agree on what is math by construction.
"""
from __future__ import annotations

import re

from ..core.errors import ContentError

# A fence line: up to three spaces, then ``` or ~~~ (three or more).
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})")
# Where a character inline_math_spans looks at can be: it skips to the next one (a scan by
# Python character by character, and a copy of the text's rest at each backtick, took most of
# a prose edit's link check).
_SPECIAL = re.compile(r"[\\`$]")
_BACKTICKS = re.compile(r"`+")


def display_closer(line: str) -> str | None:
    """What closes the display math ``line`` opens ("$$" or "\\]"), or None."""
    s = line.strip()
    if s.startswith("$$"):
        return "$$"
    if s.startswith("\\["):
        return "\\]"
    return None


def iter_blocks(source: str):
    """Split Markdown into ('fence', text), ('math', tex) and ('text', text) blocks.

    Fenced code and display math are recognised line by line; everything else is text."""
    lines = source.split("\n")
    i = 0
    text: list[str] = []

    def flush():
        if text:
            yield_ = "\n".join(text)
            text.clear()
            return yield_
        return None

    out: list[tuple[str, str]] = []
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        close = display_closer(line)
        if m:
            t = flush()
            if t is not None:
                out.append(("text", t))
            marker = m.group(2)
            j = i + 1
            while j < len(lines):
                c = lines[j].strip()
                if c.startswith(marker[0] * len(marker)) and set(c) <= {marker[0]}:
                    break
                j += 1
            out.append(("fence", "\n".join(lines[i:j + 1])))
            i = j + 1
            continue
        if close:
            t = flush()
            if t is not None:
                out.append(("text", t))
            opener = "$$" if close == "$$" else "\\["
            rest = line.strip()[len(opener):]
            body: list[str] = []
            j = i
            # The display may open and close on one line: $$ x $$
            if rest.rstrip().endswith(close) and rest.strip() != "":
                body.append(rest.rstrip()[: -len(close)].strip())
            else:
                if rest.strip():
                    body.append(rest)
                j = i + 1
                while j < len(lines) and not lines[j].rstrip().endswith(close):
                    body.append(lines[j])
                    j += 1
                if j >= len(lines):
                    raise ContentError(f"display math opened with {opener} is never closed",
                                       line=i + 1,
                                       hint=f"end it with {close} on a line of its own")
                last = lines[j].rstrip()[: -len(close)]
                if last.strip():
                    body.append(last)
            out.append(("math", "\n".join(body).strip("\n")))
            i = j + 1
            continue
        text.append(line)
        i += 1
    t = flush()
    if t is not None:
        out.append(("text", t))
    return out


def inline_math_spans(text: str, allow_display: bool = False):
    """Yield (start, end, tex) for every inline math span in a text block, skipping code spans
    and escaped dollars. Recognises $...$ (Pandoc's rule: no space just inside the dollars)
    and \\(...\\). A $$ in running text is an error, or with allow_display is passed over."""
    i, n = 0, len(text)
    while i < n:
        found = _SPECIAL.search(text, i)
        if found is None:
            return
        i = found.start()
        c = text[i]
        if c == "\\" and i + 1 < n:
            if text[i + 1] == "(":
                end = text.find("\\)", i + 2)
                if end != -1:
                    yield i, end + 2, text[i + 2:end]
                    i = end + 2
                    continue
            i += 2                          # an escaped character, \$ included
            continue
        if c == "`":
            run = _BACKTICKS.match(text, i).end() - i
            end = text.find("`" * run, i + run)
            i = (end + run) if end != -1 else i + run
            continue
        if c == "$":
            if text.startswith("$$", i):
                if allow_display:
                    i += 2
                    continue
                raise ContentError("inline $$...$$ in running text",
                                   hint="write inline math as $...$ and display math as $$ on "
                                        "lines of their own")
            j = i + 1
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == "$":
                    break
                j += 1
            tex = text[i + 1:j]
            if j < n and tex and not tex[0].isspace() and not tex[-1].isspace():
                yield i, j + 1, tex
                i = j + 1
                continue
        i += 1
