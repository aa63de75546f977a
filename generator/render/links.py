"""The local links and images of a rendered body, and where in the post each one was written.

A body's links are found in the Markdown Jinja produced for one output format (links are often
built by Jinja: ``[the audit]({{ site.baseurl }}/...)``, a different URL per format), by the
rules of the author's dialect (render.dialect): nothing inside fenced code, math or a code span
is a link. Found: ``[text](url)`` and ``![alt](url)``, reference definitions ``[id]: url``, and
``href``, ``src`` and ``srcset`` in raw HTML (the HTML site's figures). Only local URLs are
kept; external ones (with a scheme, or starting with //) are never fetched or checked.
"""
from __future__ import annotations

import re

from .dialect import inline_math_spans, iter_blocks

_INLINE = re.compile(r"(!?)\[((?:[^\[\]\\]|\\.)*)\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)"
                     r">?(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
# "[label]: url", but not a footnote's "[^label]: text".
_REFERENCE = re.compile(r"^ {0,3}\[(?!\^)((?:[^\[\]\\]|\\.)+)\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
_ATTRIBUTE = re.compile(r"""\b(href|src|srcset)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_ESCAPE_OR_TICK = re.compile(r"[\\`]")
_TICKS = re.compile(r"`+")


def is_local(url: str) -> bool:
    """A URL this site must serve: no scheme (http:, mailto:, data:), not //host, not only a
    #fragment, not empty."""
    url = url.strip()
    return bool(url) and not url.startswith(("#", "//")) and not _SCHEME.match(url)


def _blank_code_and_math(text: str) -> str:
    """``text`` with inline math and code spans blanked out (same length, so offsets hold)."""
    spans = [(a, b) for a, b, _ in inline_math_spans(text, allow_display=True)]
    i = 0
    while i < len(text):
        # Only a backslash or a backtick matters here: skip to the next one.
        found = _ESCAPE_OR_TICK.search(text, i)
        if found is None:
            break
        i = found.start()
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "`":
            run = _TICKS.match(text, i).end() - i
            end = text.find("`" * run, i + run)
            if end == -1:
                i += run
                continue
            spans.append((i, end + run))
            i = end + run
            continue
        i += 1
    out, last = [], 0
    for a, b in sorted(spans):
        if a < last:                    # inside a span already blanked
            a = last
        if a >= b:
            continue
        out.append(text[last:a])
        out.append(re.sub(r"[^\n]", " ", text[a:b]))
        last = b
    out.append(text[last:])
    return "".join(out)


def local_links(text: str) -> list[tuple[str, str]]:
    """(url, text) of every local link and image in rendered Markdown, in order; ``text`` is
    the link's text or image's alt (empty for a raw HTML attribute)."""
    found: list[tuple[str, str]] = []
    for kind, block in iter_blocks(text):
        if kind != "text":
            continue
        plain = _blank_code_and_math(block)
        hits: list[tuple[int, str, str]] = []
        for m in _INLINE.finditer(plain):
            hits.append((m.start(), block[m.start(3):m.end(3)], m.group(2)))
        for m in _REFERENCE.finditer(plain):
            hits.append((m.start(), block[m.start(2):m.end(2)], m.group(1)))
        for m in _ATTRIBUTE.finditer(plain):
            start = m.start(2) if m.group(2) is not None else m.start(3)
            value = block[start:start + len(m.group(2) if m.group(2) is not None else m.group(3))]
            urls = [part.split()[0] for part in value.split(",") if part.split()] \
                if m.group(1).lower() == "srcset" else [value]
            hits.extend((m.start(), u, "") for u in urls)
        found.extend((url, label) for _, url, label in sorted(hits, key=lambda h: h[0])
                     if is_local(url))
    return found


def source_line(body: str, first_line: int, url: str, label: str) -> int | None:
    """The post's line that wrote a link: the line holding it as written, else the one holding
    its text (the URL may be Jinja's), else the URL anywhere, else None."""
    lines = body.split("\n")
    for needle in (f"]({url}", f"]: {url}", f'="{url}"', f"='{url}'",
                   f"[{label}](" if label else None, f"[{label}]" if label else None, url,
                   label or None):
        if not needle:
            continue
        for i, line in enumerate(lines):
            if needle in line:
                return first_line + i
    return None
