"""A post's HTML as a feed entry's content: every URL absolute, no script, nothing XML forbids.

A feed reader shows the entry away from the site, often with no base URL at all, so links and
images that are relative to the page (``/assets/images/x.png``, ``#fig-x``, ``../y/``) are
resolved against the post's own URL. Only the start tags that carry a URL are rewritten (found
by the standard library's HTML parser, which knows where each tag begins); every other byte of
the post's HTML is kept as it was. Scripts are dropped (readers strip them anyway; the body
should not depend on one), and so are the characters XML 1.0 cannot carry.
"""
from __future__ import annotations

import functools
import html
import re
import urllib.parse
from html.parser import HTMLParser

# Attributes holding one URL, and srcset holding several.
URL_ATTRS = frozenset({"href", "src", "poster", "cite", "action", "data"})
_ATTR = re.compile(r"""(\s)([A-Za-z_:][-A-Za-z0-9_:.]*)(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def absolute(url: str, base: str) -> str:
    """``url`` resolved against ``base``; a URL with a scheme (https:, mailto:, data:) as is."""
    url = url.strip()
    if not url or urllib.parse.urlsplit(url).scheme:
        return url
    return urllib.parse.urljoin(base, url)


def _srcset(value: str, base: str) -> str:
    out = []
    for candidate in value.split(","):
        bits = candidate.strip().split(None, 1)
        if bits:
            out.append(" ".join([absolute(bits[0], base), *bits[1:]]))
    return ", ".join(out)


def _rewrite_tag(tag_text: str, base: str) -> str:
    def attr(m: re.Match) -> str:
        name, raw = m.group(2).lower(), m.group(4)
        if name not in URL_ATTRS and name != "srcset":
            return m.group(0)
        value = html.unescape(raw[1:-1] if raw[:1] in "\"'" else raw)
        new = _srcset(value, base) if name == "srcset" else absolute(value, base)
        return f'{m.group(1)}{m.group(2)}{m.group(3)}"{html.escape(new, quote=True)}"'
    return _ATTR.sub(attr, tag_text)


class _Scanner(HTMLParser):
    """Finds (start, end, replacement) edits: URL-bearing start tags, script elements."""

    def __init__(self, text: str, base: str) -> None:
        super().__init__(convert_charrefs=False)
        self.base, self.text = base, text
        self.edits: list[tuple[int, int, str]] = []
        self.script_start: int | None = None
        # Offsets of line starts, to turn getpos() into an index.
        self.lines = [0] + [m.end() for m in re.finditer("\n", text)]

    def _offset(self) -> int:
        line, col = self.getpos()
        return self.lines[line - 1] + col

    def handle_starttag(self, tag, attrs):
        start = self._offset()
        text = self.get_starttag_text() or ""
        if tag == "script":
            self.script_start = start
            return
        if self.script_start is None and any(
                k in URL_ATTRS or k == "srcset" for k, _ in attrs):
            self.edits.append((start, start + len(text), _rewrite_tag(text, self.base)))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        if tag == "script" and self.script_start is not None:
            end = self.text.find(">", self._offset()) + 1
            self.edits.append((self.script_start, end, ""))
            self.script_start = None


# A pure function of its text: a warm preview process (serve) keeps the feed entries of the posts
# an edit did not touch (parsing a post's HTML is about 30 ms, most of a prose edit's rebuild).
@functools.lru_cache(maxsize=64)
def feed_content(page_html: str, base: str) -> str:
    """``page_html`` with absolute URLs (against ``base``, the post's URL) and no script."""
    scanner = _Scanner(page_html, base)
    scanner.feed(page_html)
    scanner.close()
    out, last = [], 0
    for start, end, new in sorted(scanner.edits):
        out.append(page_html[last:start])
        out.append(new)
        last = end
    out.append(page_html[last:])
    return _NOT_XML.sub("", "".join(out))
