"""Per-article metadata: the "Cite this" BibTeX, Google Scholar's tags, authors and licences, the
feed's full content (authoring/citation.py, authoring/licenses.py, render/feedhtml.py).

The BibTeX is read back with pybtex, the kept BibTeX library the bibliography already uses, and
decoded with the inverse of the escapes the writer may use (written out here, not imported), so
a character the writer forgot to escape, or a brace that ends a field early, fails. Site-level
tests render a post that declares no experiment (nothing trains) in memory.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pybtex.database import parse_string

from conftest import REPO
from generator.authoring.citation import (bibtex_entry, bibtex_name, bibtex_url, latex_text,
                                          scholar_tags)
from generator.authoring.licenses import KNOWN, Licenses
from generator.authoring.site_config import SiteConfig, load_site_config, parse_licenses
from generator.core.errors import ConfigError, ContentError
from generator.core.project import Project
from generator.publish.build import render_site
from generator.render.feedhtml import feed_content
from generator.render.refs import Bibliography
from helpers import context

ATOM = "{http://www.w3.org/2005/Atom}"

# The escapes a BibTeX field may contain, and what each prints.
INVERSE = [(r"\textbackslash{}", "\\"), (r"\textbraceleft{}", "{"), (r"\textbraceright{}", "}"),
           (r"\textasciitilde{}", "~"), (r"\textasciicircum{}", "^"), (r"\&", "&"),
           (r"\%", "%"), (r"\$", "$"), (r"\#", "#"), (r"\_", "_")]
SPECIALS = "\\{}&%$#_~^"


def decode(latex: str) -> str:
    """The text a LaTeX field prints; a special character outside an escape is an error."""
    out, i = [], 0
    while i < len(latex):
        for seq, char in INVERSE:
            if latex.startswith(seq, i):
                out.append(char)
                i += len(seq)
                break
        else:
            assert latex[i] not in SPECIALS, f"bare {latex[i]!r} at {i} in {latex!r}"
            out.append(latex[i])
            i += 1
    return "".join(out)


def unbrace(value: str) -> str:
    assert value.startswith("{") and value.endswith("}"), value
    return value[1:-1]


def words(text: str) -> str:
    return " ".join(text.split())


def shown_name(name: str) -> str:
    """A name in First von Last Jr order, as BibTeX's comma forms define it."""
    parts = [p.strip() for p in name.split(",")]
    if len(parts) == 2:
        return f"{parts[1]} {parts[0]}"
    if len(parts) == 3:
        return f"{parts[2]} {parts[0]} {parts[1]}"
    return name


class Info:
    """What bibtex_entry and scholar_tags read of a PostInfo."""

    def __init__(self, title, authors, slug="a-post", date="2026-01-11T10:00:00+05:30"):
        import datetime as dt

        self.title, self.authors, self.slug = title, tuple(authors), slug
        self.date = dt.datetime.fromisoformat(date)


def site(title="A site", lang="en", **kw) -> SiteConfig:
    return SiteConfig(title=title, description="d", author="A", url="https://example.org",
                      lang=lang, **kw)


def parsed(entry: str):
    db = parse_string(entry, "bibtex")
    assert len(db.entries) == 1
    return next(iter(db.entries.items()))


# ---------------------------------------------------------------------------------------------
# BibTeX

def test_the_entry_of_a_post_is_exact():
    entry = bibtex_entry(Info("How LoRA Changes Attention", ["lora-site"],
                              slug="lora-attention-geometry"),
                         site("lora-site: notes"), "https://lora-site.github.io/x/")
    assert entry == (
        "@online{lora-attention-geometry-2026,\n"
        "  title        = {{How LoRA Changes Attention}},\n"
        "  author       = {lora-site},\n"
        "  organization = {lora-site: notes},\n"
        "  year         = {2026},\n"
        "  date         = {2026-01-11},\n"
        "  url          = {https://lora-site.github.io/x/},\n"
        "}\n")
    key, e = parsed(entry)
    assert key == "lora-attention-geometry-2026" and e.type == "online"
    assert dict(e.fields) == {"title": "{How LoRA Changes Attention}",
                              "organization": "lora-site: notes", "year": "2026",
                              "date": "2026-01-11", "url": "https://lora-site.github.io/x/"}
    assert [str(p) for p in e.persons["author"]] == ["lora-site"]


def test_every_special_character_is_escaped():
    assert latex_text(r"a\b{c}d&e%f$g#h_i~j^k") == (
        r"a\textbackslash{}b\textbraceleft{}c\textbraceright{}d\&e\%f\$g\#h\_i"
        r"\textasciitilde{}j\textasciicircum{}k")
    assert latex_text("é 漢字 “q”") == "é 漢字 “q”"          # UTF-8 stays as it is


@pytest.mark.parametrize("name, braced", [
    ("Ada Lovelace", False), ("Hopper, Grace", False), ("de La Fontaine, Jr, Jean", False),
    ("Smith and Sons", True), ("AND", True), ("Simon & Garfunkel", False),
    ("a, b, c, d", True), (", x", True), ("Band Anderson", False),
])
def test_a_name_bibtex_would_misread_is_one_literal_name(name, braced):
    out = bibtex_name(name)
    assert out.startswith("{") == braced, out
    _, e = parsed("@misc{k, author = {" + out + "}}")
    (person,) = e.persons["author"]
    if braced:
        assert person.last_names == [out] and not person.first_names
    else:
        parts = person.first_names + person.middle_names + person.prelast_names + \
            person.last_names + person.lineage_names
        assert words(decode(" ".join(parts))) == words(shown_name(name))


def test_a_url_holds_no_character_that_ends_the_field():
    assert bibtex_url("https://x.org/a b/{c}\\é%20#f") == \
        "https://x.org/a%20b/%7Bc%7D%5C%C3%A9%20#f"


NASTY = ["\\", "{", "}", "{}", "}{", "&", "%", "$", "#", "_", "~", "^", "@", '"', ",", " and ",
         "And", "=", "{{ x }}", "{% raw %}", "\\}", "\\{", "%}", "é", "漢字", "-", "\u00a0"]
CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff")
TEXT = st.lists(st.one_of(st.sampled_from(NASTY), st.text(CHARS, min_size=1, max_size=3)),
                min_size=1, max_size=8).map("".join).map(words).filter(bool)


@settings(max_examples=300, deadline=None)
@given(title=TEXT, authors=st.lists(TEXT, min_size=1, max_size=3), site_title=TEXT)
def test_pybtex_reads_back_every_field(title, authors, site_title):
    entry = bibtex_entry(Info(title, authors), site(site_title), bibtex_url("https://e.org/p/"))
    key, e = parsed(entry)
    assert key == "a-post-2026"
    assert decode(unbrace(e.fields["title"])) == title
    assert decode(e.fields["organization"]) == site_title
    assert e.fields["url"] == "https://e.org/p/" and e.fields["year"] == "2026"
    persons = e.persons["author"]
    assert len(persons) == len(authors)
    for name, person in zip(authors, persons):
        out = bibtex_name(name)
        if out.startswith("{"):
            assert person.last_names == [out] and decode(unbrace(out)) == name
        else:
            parts = person.first_names + person.middle_names + person.prelast_names + \
                person.last_names + person.lineage_names
            assert words(decode(" ".join(parts))) == words(shown_name(name))


# ---------------------------------------------------------------------------------------------
# Google Scholar and the bibliography's references

def test_scholar_tags_of_a_post():
    tags = scholar_tags(Info("T", ["Ada Lovelace", "Hopper, Grace"]), site("S", lang="de"),
                        ["citation_title=R"])
    assert tags == [("citation_title", "T"), ("citation_author", "Ada Lovelace"),
                    ("citation_author", "Hopper, Grace"),
                    ("citation_publication_date", "2026/01/11"),
                    ("citation_online_date", "2026/01/11"),
                    ("citation_technical_report_institution", "S"),
                    ("citation_language", "de"), ("citation_reference", "citation_title=R")]


def test_a_cited_work_as_a_scholar_reference():
    bib = Bibliography(REPO / "content" / "references.bib")
    assert bib.entries["kingma2015adam"].scholar == (
        "citation_title=Adam: A Method for Stochastic Optimization; "
        "citation_author=Kingma, Diederik P.; citation_author=Ba, Jimmy; "
        "citation_publication_date=2015; "
        "citation_conference_title=International Conference on Learning Representations (ICLR)")
    assert bib.entries["bernstein2018signsgd"].scholar.endswith(
        "citation_volume=80; citation_firstpage=560; citation_lastpage=569")
    assert "citation_author=Kaiser, Łukasz" in bib.entries["vaswani2017attention"].scholar
    assert "citation_journal_title=Transactions on Machine Learning Research" in \
        bib.entries["biderman2024lora"].scholar


# ---------------------------------------------------------------------------------------------
# Licences

def test_licences_are_read_by_spdx_id():
    lic = parse_licenses({"text": "CC-BY-4.0", "code": "MIT"}, path="site.yml")
    assert lic.text.url == "https://creativecommons.org/licenses/by/4.0/"
    assert lic.text.name == "CC BY 4.0"
    assert lic.code.url == "https://spdx.org/licenses/MIT.html"
    assert parse_licenses(None, path="site.yml") == Licenses()
    assert parse_licenses({"code": "Apache-2.0"}, path="s").text is None
    assert all(k == v.spdx for k, v in KNOWN.items())


@pytest.mark.parametrize("raw, words_", [
    ("MIT", ["site.yml: license:", "must be a mapping", "license: {text: CC-BY-4.0, code: MIT}"]),
    ({}, ["site.yml: license:", "must be a mapping"]),
    ({"txt": "MIT"}, ["site.yml: license.txt:", "unknown key", "did you mean 'text'?"]),
    ({"text": "CC-BY-40"}, ["site.yml: license.text:", "'CC-BY-40' is not an SPDX licence id",
                            "did you mean 'CC-BY-4.0'?"]),
    ({"code": "mit"}, ["site.yml: license.code:", "did you mean 'MIT'?"]),
    ({"code": "Beerware"}, ["site.yml: license.code:", "known ids: CC-BY-4.0,"]),
    ({"code": 3}, ["site.yml: license.code:", "must be an SPDX licence id, got 3"]),
])
def test_a_bad_licence_names_the_field(raw, words_):
    with pytest.raises(ConfigError) as err:
        parse_licenses(raw, path="site.yml")
    for w in words_:
        assert w in err.value.message, err.value.message


# ---------------------------------------------------------------------------------------------
# The feed's content

def test_feed_content_makes_every_url_absolute_and_keeps_the_rest():
    page = ('<p>See <a class="xref" href="#fig-a">Figure 1</a>, <a href=\'../b/?q=1&amp;r=2\'>b'
            '</a>, <a href="https://e.org/">e</a>, <a href="mailto:a@b.c">m</a>.</p>\n'
            '<img src="/repo/assets/x.png" srcset="/repo/assets/x.png 1x, /repo/assets/x@2x.png'
            ' 2x" alt="A &amp; B" width="4">\n<script>document.write("<a href=\'/z\'>")</script>'
            '\n<math><mi>x</mi></math><p>href="/not-a-tag/" stays\x0b</p>')
    assert feed_content(page, "https://s.org/repo/p/") == (
        '<p>See <a class="xref" href="https://s.org/repo/p/#fig-a">Figure 1</a>, '
        '<a href="https://s.org/repo/b/?q=1&amp;r=2">b</a>, <a href="https://e.org/">e</a>, '
        '<a href="mailto:a@b.c">m</a>.</p>\n'
        '<img src="https://s.org/repo/assets/x.png" srcset="https://s.org/repo/assets/x.png 1x, '
        'https://s.org/repo/assets/x@2x.png 2x" alt="A &amp; B" width="4">\n'
        '\n<math><mi>x</mi></math><p>href="/not-a-tag/" stays</p>')


# ---------------------------------------------------------------------------------------------
# A whole site: authors, licences, citations, the feed

BODY = """Cited twice [@hu2022lora; @bernstein2018signsgd], with $x^2$ inline and

$$
E = mc^2
$$

a [link](/repo/) and <script>alert(1)</script> here.
"""


def render(root: Path, *, meta: dict, license_: dict | None = None) -> dict[str, bytes]:
    (root / "content" / "posts").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "content" / "references.bib", root / "content" / "references.bib")
    site_yml = {"title": "Site & co", "description": "d", "author": "Site Author",
                "url": "https://example.org", "baseurl": "/repo"}
    if license_:
        site_yml["license"] = license_
    (root / "content" / "site.yml").write_text(yaml.safe_dump(site_yml), encoding="utf-8")
    meta = {"title": "On {LoRA} & 100% of $x$", "date": "2026-01-11 10:00:00 +0530", **meta}
    (root / "content" / "posts" / "p.md").write_text(
        "---\n" + yaml.safe_dump(meta, allow_unicode=True) + "---\n" + BODY, encoding="utf-8")
    project = Project(root)
    with context(project) as ctx:
        return render_site(ctx, results={}, figures={}, site=load_site_config(project))


def metas(page: str, name: str) -> list[str]:
    return [html.unescape(m) for m in
            re.findall(rf'<meta name="{name}" content="([^"]*)">', page)]


@pytest.fixture(scope="module")
def two_authors(tmp_path_factory) -> dict[str, bytes]:
    return render(tmp_path_factory.mktemp("cite"),
                  meta={"author": ["Ada Lovelace", "Hopper, Grace"]},
                  license_={"text": "CC-BY-SA-4.0", "code": "Apache-2.0"})


def test_the_post_page_carries_its_authors_licences_and_citation(two_authors):
    page = two_authors["html/p/index.html"].decode()
    assert metas(page, "author") == ["Ada Lovelace, Hopper, Grace"]
    assert '<span class="post-authors">Ada Lovelace, Hopper, Grace</span>' in page
    assert metas(page, "citation_author") == ["Ada Lovelace", "Hopper, Grace"]
    assert metas(page, "citation_title") == ["On {LoRA} & 100% of $x$"]
    assert metas(page, "citation_fulltext_html_url") == ["https://example.org/repo/p/"]
    assert metas(page, "citation_technical_report_institution") == ["Site & co"]
    bib = Bibliography(REPO / "content" / "references.bib")
    assert metas(page, "citation_reference") == [bib.entries["hu2022lora"].scholar,
                                                 bib.entries["bernstein2018signsgd"].scholar]
    head = page.split("</head>")[0]
    assert re.findall(r'<link rel="license" href="([^"]+)">', head) == [
        "https://creativecommons.org/licenses/by-sa/4.0/"]
    footer = page.split('<footer class="post-footer">')[1].split("</footer>")[0]
    assert re.findall(r'<a (rel="license" )?href="([^"]+)">([^<]+)</a>', footer) == [
        ('rel="license" ', "https://creativecommons.org/licenses/by-sa/4.0/", "CC BY-SA 4.0"),
        ("", "https://spdx.org/licenses/Apache-2.0.html", "Apache 2.0")]
    ld = json.loads(page.split('<script type="application/ld+json">')[1].split("</script>")[0])
    assert ld["author"] == [{"@type": "Person", "name": "Ada Lovelace"},
                            {"@type": "Person", "name": "Hopper, Grace"}]
    assert ld["license"] == "https://creativecommons.org/licenses/by-sa/4.0/"
    # The BibTeX, as a reader copies it from the page.
    text = html.unescape(page.split('<pre class="bibtex" id="bibtex-p-2026"><code>')[1]
                         .split("</code></pre>")[0])
    key, e = parsed(text)
    assert key == "p-2026"
    assert decode(unbrace(e.fields["title"])) == "On {LoRA} & 100% of $x$"
    assert e.fields["url"] == "https://example.org/repo/p/"
    assert [str(p) for p in e.persons["author"]] == ["Lovelace, Ada", "Hopper, Grace"]


def test_the_jekyll_post_carries_the_same_for_its_layouts(two_authors):
    text = two_authors["jekyll/_posts/2026-01-11-p.md"].decode()
    meta = yaml.safe_load(text[4:text.index("\n---\n")])
    assert meta["author"] == ["Ada Lovelace", "Hopper, Grace"]      # passed on as written
    page = two_authors["html/p/index.html"].decode()
    html_tags = re.findall(r'<meta name="(citation_[a-z_]+)" content="([^"]*)">', page)
    assert [tuple(t) for t in meta["lora_site"]["citation"]] == [
        (n, html.unescape(c)) for n, c in html_tags if n != "citation_fulltext_html_url"]
    assert meta["lora_site"]["license"] == "https://creativecommons.org/licenses/by-sa/4.0/"
    cite = text[text.index('class="cite-this"'):]
    bibtex = html.unescape(cite.split('<code>')[1].split("</code>")[0])
    assert "{{ page.url | absolute_url }}" in bibtex
    key, e = parsed(bibtex.replace("{{ page.url | absolute_url }}", "https://x.org/p.html"))
    assert key == "p-2026" and e.fields["url"] == "https://x.org/p.html"
    assert decode(unbrace(e.fields["title"])) == "On {LoRA} & 100% of $x$"


def test_the_feed_carries_the_whole_post_with_absolute_urls_and_no_script(two_authors):
    feed = ET.fromstring(two_authors["html/feed.xml"])
    (entry,) = feed.findall(f"{ATOM}entry")
    assert [a.findtext(f"{ATOM}name") for a in entry.findall(f"{ATOM}author")] == [
        "Ada Lovelace", "Hopper, Grace"]
    content = entry.find(f"{ATOM}content")
    assert content.get("type") == "html"
    body = content.text
    assert body.count("<math") == 2 and "<svg" not in body and "mjx-container" not in body
    assert "<script" not in body and "alert(1)" not in body
    urls = re.findall(r'(?:href|src)="([^"]*)"', body)
    assert len(urls) == 5 and all(re.match(r"https://[a-z.]+/", u) for u in urls), urls
    assert 'href="https://example.org/repo/repo/"' not in body   # root-relative: no 2nd baseurl
    assert 'href="https://example.org/repo/"' in body
    assert 'href="https://example.org/repo/p/#ref-hu2022lora"' in body


def test_no_licence_means_no_licence_markup(tmp_path):
    files = render(tmp_path, meta={})
    page = files["html/p/index.html"].decode()
    assert 'rel="license"' not in page and 'class="post-license"' not in page
    assert metas(page, "citation_author") == ["Site Author"]
    meta = yaml.safe_load(files["jekyll/_posts/2026-01-11-p.md"].decode().split("\n---\n")[0][4:])
    assert "license" not in meta["lora_site"] and "author" not in meta


@pytest.mark.parametrize("author, words_", [
    ([], ["p.md: author:", "must be a name or a list of names"]),
    ({"name": "A"}, ["p.md: author:", "must be a name or a list of names"]),
    (["A", 3], ["p.md: author:", "author 2 is 3, not a non-empty name"]),
    (["A", " "], ["p.md: author:", "author 2 is ' '"]),
    ("A\x07B", ["p.md: author[0]:", "control character U+0007"]),
])
def test_a_bad_author_names_the_post_and_field(tmp_path, author, words_):
    with pytest.raises(ContentError) as err:
        render(tmp_path, meta={"author": author})
    for w in words_:
        assert w in err.value.message, err.value.message
