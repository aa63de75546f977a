"""How to cite a post: its BibTeX entry and its Google Scholar meta tags, made from its front
matter and site.yml. Nothing is typed by hand and nothing is read from the clock (no urldate:
the only date a build knows is the post's own).

BibTeX: an ``@online`` entry (biblatex's type for a web page; classic BibTeX styles read an
unknown type as ``@misc``) keyed ``<slug>-<year>``. Text is escaped for LaTeX: the ten
specials become commands, braces included (``\\textbraceleft{}``), so the only braces in a field
are the balanced pairs written here and no text can end a field early. The title is wrapped in
a second pair of braces, so styles keep its capitals (LoRA). Each author is a BibTeX name
("First Last" or "Last, First", split as BibTeX does); a name BibTeX would misread (a
standalone "and", which separates names, or a comma too many) is braced as one literal name.

Google Scholar (its inclusion guidelines for webmasters read Highwire Press tags): the title,
one citation_author per author, citation_publication_date and citation_online_date as
YYYY/MM/DD, citation_language, and for the venue citation_technical_report_institution naming
the site (a blog post is neither a journal nor a conference paper; Scholar's tags for a report
are the nearest kind). citation_fulltext_html_url is added by each output (the post's URL
there), and a citation_reference per cited work by the bibliography (render/refs.py).
"""
from __future__ import annotations

import re

_LATEX = {"\\": r"\textbackslash{}", "{": r"\textbraceleft{}", "}": r"\textbraceright{}",
          "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_AND = re.compile(r"(?:^|\s)and(?:\s|$)", re.I)
# Characters a url field may hold as they are (RFC 3986's unreserved and reserved ones, and %
# for escapes already made); anything else is percent-encoded.
_URL_SAFE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")


def latex_text(text: str) -> str:
    """Plain text as LaTeX that prints it (the field text of a BibTeX entry)."""
    return "".join(_LATEX.get(c, c) for c in text)


def bibtex_name(name: str) -> str:
    """One author as BibTeX reads a name; braced whole when BibTeX would split it wrongly."""
    parts = name.split(",")
    literal = bool(_AND.search(name)) or len(parts) > 3 or \
        (len(parts) > 1 and any(not p.strip() for p in parts))
    text = latex_text(name)
    return "{" + text + "}" if literal else text


def bibtex_url(url: str) -> str:
    """A URL with every character a url field cannot hold verbatim percent-encoded."""
    return "".join(c if _URL_SAFE.fullmatch(c) else
                   "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in url)


def bibtex_key(info) -> str:
    return f"{info.slug}-{info.date:%Y}"


def bibtex_entry(info, site, url: str) -> str:
    """The post's BibTeX entry; ``url`` is its address in the output that shows it."""
    fields = [
        ("title", "{" + latex_text(info.title) + "}"),
        ("author", " and ".join(bibtex_name(a) for a in info.authors)),
        ("organization", latex_text(site.title)),
        ("year", f"{info.date:%Y}"),
        ("date", f"{info.date:%Y-%m-%d}"),
        ("url", url),
    ]
    width = max(len(k) for k, _ in fields)
    lines = [f"  {k.ljust(width)} = {{{v}}}," for k, v in fields]
    return f"@online{{{bibtex_key(info)},\n" + "\n".join(lines) + "\n}\n"


def scholar_tags(info, site, references: list[str] = ()) -> list[tuple[str, str]]:
    """(name, content) of the post's Google Scholar meta tags, but the full text's URL."""
    day = f"{info.date:%Y/%m/%d}"
    return [("citation_title", info.title),
            *(("citation_author", a) for a in info.authors),
            ("citation_publication_date", day),
            ("citation_online_date", day),
            ("citation_technical_report_institution", site.title),
            ("citation_language", site.lang),
            *(("citation_reference", r) for r in references)]
