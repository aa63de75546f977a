"""Sidenotes: each one-paragraph footnote repeated in the margin beside its first reference.

The HTML site only, after the math is drawn. Python-Markdown's footnotes extension writes the
notes as a list at the end, which stays as it is: it is what a narrow screen, the feed, a
screen reader and print show. The margin copy is shown by the stylesheet where the screen is
wide enough (style.css, ``.sidenote``) and is hidden from assistive technology
(``aria-hidden``, links taken out of the tab order), so nothing is read twice. A note of more
than one paragraph stays at the end only: a margin is no place for it.
"""
from __future__ import annotations

import re

_LIST = re.compile(r'<div class="footnote">\n<hr>\n<ol>\n(.*?)</ol>\n</div>', re.S)
_ITEM = re.compile(r'<li id="fn:([^"]+)">\n(.*?)\n</li>', re.S)
_BACKREF = re.compile(r'(?:&#160;)?<a class="footnote-backref" [^>]*>&#8617;</a>')
_REF = '<sup id="fnref:{id}"><a class="footnote-ref" href="#fn:{id}">{n}</a></sup>'


def add_sidenotes(page: str) -> str:
    found = _LIST.search(page)
    if not found:
        return page
    for number, item in enumerate(_ITEM.finditer(found.group(1)), start=1):
        note_id, content = item.group(1), item.group(2)
        m = re.fullmatch(r"<p>(.*)</p>", content, re.S)
        if not m or "<p>" in m.group(1):
            continue
        text = _BACKREF.sub("", m.group(1)).replace("<a ", '<a tabindex="-1" ')
        ref = _REF.format(id=note_id, n=number)
        if ref not in page:
            continue
        side = (f'<span class="sidenote" aria-hidden="true">'
                f'<span class="sidenote-number">{number}</span> {text}</span>')
        page = page.replace(ref, ref + side, 1)
    return page
