"""Citations and cross-references, resolved in a post's Markdown after Jinja has run.

The syntax (documented in content/README.md), the same for both outputs:

  [@hu2022lora]            a citation of content/references.bib's entry, numbered [1], [2] in
  [@kingma2015adam; @x]    the order of first citation, linked to the post's bibliography
  {{ bibliography() }}     where the list of cited works goes (else it is appended at the end)
  @fig:before_lora         "Figure 3", linked to the figure (its name, or <experiment>-<name>)
  $$ ... $$ then {: #eq:scores} on the next line: a numbered display equation;
                           @eq:scores -> "Eq. (2)"
  {{ table('claims', 'Caption') }} before a table: "Table 1. Caption"; @tbl:claims -> "Table 1"
  ## A heading {: #sec:setup}  a section label; @sec:setup -> a link titled with the heading
(Labels are written as kramdown attribute lists, `{: #...}`, which Jinja leaves alone: `{#`
would open a Jinja comment.)

Code spans, fenced code and math are never read. An unknown key or label is an error naming
the post and the line. The BibTeX is parsed and formatted by pybtex (its unsrt style), not by
hand. The output is Markdown with inline HTML that Python-Markdown and kramdown both keep.
"""
from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.errors import ContentError
from .dialect import inline_math_spans, iter_blocks

BIB_FILE = "references.bib"
BIB_MARKER = "<!-- lora-site: bibliography -->"
KINDS = {"fig": "Figure", "eq": "Eq.", "tbl": "Table", "sec": "Section"}
_NOUNS = {"fig": "figure", "eq": "equation", "tbl": "table", "sec": "section"}
_LABEL = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_CITE = re.compile(r"\[(\s*@[^\[\]\s;,]+(?:\s*[;,]\s*@[^\[\]\s;,]+)*\s*)\]")
_XREF = re.compile(rf"(?<![\w@/.])@(fig|eq|tbl|sec):({_LABEL})")
_EQ_LABEL = re.compile(rf"^\{{:[ \t]*#eq:({_LABEL})[ \t]*\}}[ \t]*$")
_SEC_LABEL = re.compile(rf"^(#{{1,6}}[ \t].*?)[ \t]*\{{:[ \t]*#sec:({_LABEL})[ \t]*\}}[ \t]*$")


def anchor(kind: str, label: str) -> str:
    """The element id a label's target carries: fig-x, eq-x, tbl-x, sec-x, ref-x."""
    return f"{kind}-{label}"


# ---------------------------------------------------------------------------------------------
# The bibliography

@dataclass(frozen=True)
class Entry:
    key: str
    html: str                   # the formatted reference, one line of HTML
    text: str                   # the same as plain text (link titles)
    scholar: str = ""           # the work as a Google Scholar citation_reference


class Bibliography:
    """content/references.bib, parsed and formatted once per build context."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, Entry] = {}
        if not self.path.is_file():
            return
        from pybtex.database import parse_string
        from pybtex.scanner import PybtexError
        from pybtex.style.formatting.unsrt import Style

        try:
            db = parse_string(self.path.read_text(encoding="utf-8"), "bibtex")
            formatted = list(Style().format_entries(db.entries.values()))
            scholar = {key: scholar_reference(entry) for key, entry in db.entries.items()}
        except (PybtexError, UnicodeDecodeError, KeyError, ValueError) as exc:
            raise ContentError(f"cannot read the bibliography: {exc}", path=self.path,
                               hint="fix the BibTeX entry it names") from None
        html, text = _backends()
        for item in formatted:
            one_line = " ".join(item.text.render(html).split())
            self.entries[item.key] = Entry(item.key, one_line,
                                           " ".join(item.text.render(text).split()),
                                           scholar[item.key])

    @classmethod
    def of(cls, ctx) -> "Bibliography":
        return ctx.state("bibliography", _cached_bibliography)


def _cached_bibliography(ctx) -> Bibliography:
    """The build's bibliography, formatted once per .bib file and kept in .cache/lora-site/:
    pybtex's import and formatting cost about 0.15 s, which a prose edit would otherwise pay on
    every build. The entry is keyed by the .bib file's bytes, this module's source and pybtex's
    version; a .bib file pybtex refuses is never cached (the error is raised each build)."""
    import json
    from importlib.metadata import version

    from ..core.fsio import sha256_bytes, write_bytes_atomic

    path = ctx.project.content / BIB_FILE
    if not path.is_file():
        return Bibliography(path)
    key = sha256_bytes(json.dumps([ctx.hashes.sha256(path), ctx.hashes.sha256(__file__),
                                   version("pybtex")]).encode())[:20]
    folder = ctx.project.cache / "bibliography"
    cached = folder / f"{key}.json"
    try:
        doc = json.loads(cached.read_text(encoding="utf-8"))
        bib = Bibliography.__new__(Bibliography)
        bib.path, bib.entries = path, {k: Entry(**e) for k, e in doc.items()}
        return bib
    except (OSError, ValueError, TypeError):
        pass
    bib = Bibliography(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.json"):          # one .bib file: one entry kept
            old.unlink()
        write_bytes_atomic(cached, json.dumps(
            {k: vars(e) for k, e in sorted(bib.entries.items())}, sort_keys=True).encode())
    except OSError:
        pass                                       # a cache that cannot be written is no cache
    return bib


def _backends():
    """pybtex's HTML and plain-text backends, made once. Text.render_as(name) looks its backend
    up among the installed packages' entry points on every call (a few ms each: a bibliography
    of 13 works took 1.4 s that way, on every build that renders a post)."""
    from pybtex.backends.html import Backend as Html
    from pybtex.backends.plaintext import Backend as Plain

    global _BACKENDS
    if _BACKENDS is None:
        _BACKENDS = (Html(), Plain())
    return _BACKENDS


_BACKENDS = None


def scholar_reference(entry) -> str:
    """A pybtex entry as the content of a Highwire Press ``citation_reference`` tag:
    ``citation_title=...; citation_author=Last, First; ...`` (LaTeX decoded to text by pybtex;
    a ';' inside a value, which would split it, becomes ',')."""
    from pybtex.richtext import Text

    plain = _backends()[1]

    def text(latex: str) -> str:
        return " ".join(Text.from_latex(latex).render(plain).replace(";", ",").split())

    parts = []
    fields = entry.fields
    if "title" in fields:
        parts.append(("citation_title", text(fields["title"])))
    for person in entry.persons.get("author", []):
        last = " ".join(text(x) for x in person.prelast_names + person.last_names +
                        person.lineage_names)
        first = " ".join(text(x) for x in person.first_names + person.middle_names)
        parts.append(("citation_author", f"{last}, {first}" if first else last))
    if "year" in fields:
        parts.append(("citation_publication_date", text(fields["year"])))
    venue = {"article": ("journal", "citation_journal_title"),
             "inproceedings": ("booktitle", "citation_conference_title")}.get(entry.type)
    if venue and venue[0] in fields:
        parts.append((venue[1], text(fields[venue[0]])))
    if "volume" in fields:
        parts.append(("citation_volume", text(fields["volume"])))
    pages = [p for p in re.split(r"-+", fields.get("pages", "")) if p.strip()]
    if pages:
        parts.append(("citation_firstpage", text(pages[0])))
        parts.append(("citation_lastpage", text(pages[-1])))
    if "doi" in fields:
        parts.append(("citation_doi", text(fields["doi"])))
    return "; ".join(f"{k}={v}" for k, v in parts)


# ---------------------------------------------------------------------------------------------
# One post's labels and citations

@dataclass
class PostRefs:
    """What one rendering of a post has labelled (figures and tables come from the body's
    helpers as they run; equations and sections from the Markdown) and cited."""

    figures: dict[str, tuple[int, str]] = field(default_factory=dict)  # label -> (n, element id)
    tables: dict[str, tuple[int, str]] = field(default_factory=dict)   # label -> (n, caption)
    equations: dict[str, int] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)     # label -> heading text
    cited: list[str] = field(default_factory=list)              # keys, in order of first use

    def add_figure(self, experiment: str, name: str, number: int, element_id: str) -> None:
        """A figure placed by ``figure()``: @fig:<name> and @fig:<experiment>-<name> name it
        (the short form only while one experiment of the post has a figure of that name)."""
        self.figures[f"{experiment}-{name}"] = (number, element_id)
        if name in self.figures and self.figures[name][1] != element_id:
            self.figures[name] = (0, "")                        # ambiguous: 0 marks it
        else:
            self.figures[name] = (number, element_id)

    def table(self, label: str, caption: str) -> str:
        """``{{ table('claims', 'Caption') }}``: the caption line above a table."""
        if not re.fullmatch(_LABEL, label):
            raise ContentError(f"table label {label!r} is not a label",
                               hint="use letters, digits, - and _")
        if label in self.tables:
            raise ContentError(f"table label 'tbl:{label}' is used twice",
                               hint="give each table its own label")
        number = len(self.tables) + 1
        self.tables[label] = (number, caption)
        return (f'\n<p class="table-caption" id="{anchor("tbl", label)}"><span '
                f'class="tbl-label">Table {number}.</span> {caption}</p>\n')


def _protected(text: str) -> list[tuple[int, int]]:
    """Spans of a text block that are never read: code spans and inline math."""
    spans = [(a, b) for a, b, _ in inline_math_spans(text, allow_display=True)]
    for m in re.finditer(r"(`+)(.+?)\1", text, re.S):
        spans.append(m.span())
    return sorted(spans)


def _outside(text: str, pattern: re.Pattern, repl: Callable[[re.Match], str]) -> str:
    spans = _protected(text)

    def sub(m: re.Match) -> str:
        if any(a <= m.start() < b for a, b in spans):
            return m.group(0)
        return repl(m)
    return pattern.sub(sub, text)


class Resolver:
    """Resolve the references of one rendered body. ``line_of(needle)`` gives the post's line
    of the first occurrence of a text (for error messages)."""

    def __init__(self, refs: PostRefs, bib: Bibliography, *, path: Path,
                 line_of: Callable[[str], int | None]) -> None:
        self.refs, self.bib, self.path, self.line_of = refs, bib, path, line_of

    def error(self, message: str, needle: str, hint: str, nth: int = 1) -> ContentError:
        return ContentError(message, path=self.path, line=self.line_of(needle, nth), hint=hint)

    def resolve(self, text: str) -> str:
        text = self._labels(text)
        out = []
        for kind, block in iter_blocks(text):
            if kind == "text":
                block = _outside(block, _CITE, self._cite)
                block = _outside(block, _XREF, self._xref)
            out.append(block if kind != "math" else f"$$\n{block}\n$$")
        body = "\n".join(out)
        return self._bibliography(body)

    def _labels(self, text: str) -> str:
        """Number labelled equations (a \\tag, and an attribute line the outputs turn into the
        block's id) and record section labels."""
        # Block by block, so a label line right after a display block is attached to it.
        out: list[str] = []
        pending_math = None
        for kind, block in iter_blocks(text):
            if kind == "math":
                if pending_math is not None:
                    out.append(f"$$\n{pending_math}\n$$")
                pending_math = block
                continue
            if kind == "text" and pending_math is not None:
                first, _, rest = block.lstrip("\n").partition("\n")
                m = _EQ_LABEL.match(first.strip())
                if m:
                    label = m.group(1)
                    if label in self.refs.equations:
                        raise self.error(f"equation label 'eq:{label}' is used twice",
                                         f"#eq:{label}", "give each equation its own label", nth=2)
                    number = len(self.refs.equations) + 1
                    self.refs.equations[label] = number
                    out.append(f"$$\n{pending_math} \\tag{{{number}}}\n$$\n"
                               f"{{: #{anchor('eq', label)}}}")
                    pending_math = None
                    block = rest
                else:
                    out.append(f"$$\n{pending_math}\n$$")
                    pending_math = None
            if kind == "text":
                block = "\n".join(self._section(line) for line in block.split("\n"))
            out.append(block)
        if pending_math is not None:
            out.append(f"$$\n{pending_math}\n$$")
        return "\n".join(out)

    def _section(self, line: str) -> str:
        m = _SEC_LABEL.match(line)
        if not m:
            return line
        heading, label = m.group(1), m.group(2)
        if label in self.refs.sections:
            raise self.error(f"section label 'sec:{label}' is used twice", f"#sec:{label}",
                             "give each section its own label", nth=2)
        self.refs.sections[label] = heading.lstrip("#").strip()
        return f"{heading} {{#{anchor('sec', label)}}}"

    def _cite(self, m: re.Match) -> str:
        keys = [k.strip().lstrip("@") for k in re.split(r"[;,]", m.group(1))]
        links = []
        for key in keys:
            if ":" in key and key.split(":", 1)[0] in KINDS:
                raise self.error(f"[@{key}] mixes a cross-reference into a citation", f"@{key}",
                                 f"write @{key} without brackets")
            entry = self.bib.entries.get(key)
            if entry is None:
                close = difflib.get_close_matches(key, list(self.bib.entries), n=1)
                hint = (f"did you mean '{close[0]}'?" if close else
                        f"add it to {self.bib.path}" if self.bib.path.is_file() else
                        f"create {self.bib.path} with a BibTeX entry for it")
                raise self.error(f"no bibliography entry '{key}'", f"@{key}", hint)
            if key not in self.refs.cited:
                self.refs.cited.append(key)
            n = self.refs.cited.index(key) + 1
            links.append(f'<a class="citation" href="#{anchor("ref", key)}" '
                         f'title="{html.escape(entry.text, quote=True)}">{n}</a>')
        return "[" + ", ".join(links) + "]"

    def _xref(self, m: re.Match) -> str:
        kind, label = m.group(1), m.group(2)
        target = f"#{anchor(kind, label)}"
        if kind == "fig":
            number, element_id = self.refs.figures.get(label, (None, ""))
            if number is None:
                raise self._unknown(kind, label, self.refs.figures)
            if number == 0:
                raise self.error(f"two experiments of this post have a figure '{label}'",
                                 f"@fig:{label}", "write @fig:<experiment>-<name>")
            return f'<a class="xref" href="#{element_id}">Figure {number}</a>'
        if kind == "eq":
            if label not in self.refs.equations:
                raise self._unknown(kind, label, self.refs.equations)
            return f'<a class="xref" href="{target}">Eq. ({self.refs.equations[label]})</a>'
        if kind == "tbl":
            if label not in self.refs.tables:
                raise self._unknown(kind, label, self.refs.tables)
            return f'<a class="xref" href="{target}">Table {self.refs.tables[label][0]}</a>'
        if label not in self.refs.sections:
            raise self._unknown(kind, label, self.refs.sections)
        title = html.escape(self.refs.sections[label], quote=False)
        return f'<a class="xref" href="{target}">“{title}”</a>'

    def _unknown(self, kind: str, label: str, known: dict[str, Any]) -> ContentError:
        close = difflib.get_close_matches(label, list(known), n=1)
        hint = (f"did you mean '@{kind}:{close[0]}'?" if close else
                f"labelled {_NOUNS[kind]}s: "
                + (", ".join(f"{kind}:{k}" for k in sorted(known)) or "none"))
        return self.error(f"no {_NOUNS[kind]} labelled '{kind}:{label}'",
                          f"@{kind}:{label}", hint)

    def _bibliography(self, body: str) -> str:
        if not self.refs.cited:
            return body.replace(BIB_MARKER, "")
        items = "\n".join(f'<li id="{anchor("ref", k)}">{self.bib.entries[k].html}</li>'
                          for k in self.refs.cited)
        block = f'\n<ol class="references">\n{items}\n</ol>\n'
        if BIB_MARKER in body:
            return body.replace(BIB_MARKER, block, 1)
        return body.rstrip("\n") + "\n\n## References {#references}\n" + block
