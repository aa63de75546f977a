"""Titles, descriptions and tags full of markup characters come out exact and inert everywhere.

A property test writes random strings into a post's front matter and site.yml (as YAML, the way
an author would), renders the whole site in memory (no training: the post declares no
experiment) and parses every output back: the HTML pages (html.parser), the JSON-LD (json),
the meta tags, the Atom feed and the sitemap (xml.etree), the Jekyll front matter and
_config.yml (yaml.safe_load). Each must give back the string that was written.

What the strings may contain, and why:
- any Unicode character except category Cc (control characters) and Cs (surrogates), and the
  noncharacters U+FFFE/U+FFFF. XML 1.0 cannot carry C0 controls at all, not even as character
  references, HTML treats C1 controls as parse errors, and a lone surrogate has no UTF-8 form;
  the build refuses all of them with a one-line error (tested below), so they are not inputs
  that can reach an output.
- tab, line feed and carriage return are drawn on purpose (they are controls, added back):
  a title is one line of text, so runs of them and of spaces become one space (XML turns them
  into spaces inside attributes anyway), and the expected value is the string so normalised.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.core.errors import ConfigError, ContentError
from generator.core.project import Project
from generator.authoring.site_config import load_site_config
from generator.publish.build import render_site
from helpers import context

ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
SLUG = "fuzz"
SITE_DESCRIPTION = "The site's own description"

# Pieces that break naive escaping in one format or another, drawn often.
NASTY = [":", ": ", '"', "'", "<", ">", "&", "&amp;", "&#60;", "<script>alert(1)</script>",
         "</script>", "<!--", "]]>", "{{ x }}", "{% raw %}", "#", "- ", "---", "\\", "`", "*",
         "_", "[", "]", "|", "$", "%", "@", "!", "?", ",", "{", "}", "é", "ß", "漢字", "🙂",
         "\u00a0", "\u200b", "\u2028", "\ufeff", " ", "  ", "\t", "\n", "\r\n", "yes", "null",
         "1e3", "~"]
CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff")
TEXT = st.lists(st.one_of(st.sampled_from(NASTY), st.text(CHARS, min_size=1, max_size=4)),
                max_size=8).map("".join)


def normalise(text: str) -> str:
    """The one-line form every output carries (see the module docstring)."""
    return re.sub(r"[ \t\r\n\u2028\u2029]+", " ", text).strip()


NONEMPTY = TEXT.filter(lambda s: normalise(s) != "" and s.strip() != "")


# ---------------------------------------------------------------------------------------------
# Reading the outputs back

class PageReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: dict[str, list[str]] = {}          # tag -> text of each such element
        self.scripts: list[tuple[dict[str, str], str]] = []
        self._open: list[tuple[str, dict[str, str], list[str]]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag in ("title", "h1", "h3", "p", "script", "a"):
            self._open.append((tag, a, []))

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            _, a, parts = self._open.pop()
            text = "".join(parts)
            self.text.setdefault(tag, []).append(text)
            if tag == "script":
                self.scripts.append((a, text))
            for _, _, outer in self._open:
                outer.append(text)

    def handle_data(self, data):
        if self._open:
            self._open[-1][2].append(data)

    def meta(self, key: str, value: str) -> list[str]:
        return [a.get("content") for t, a in self.tags if t == "meta" and a.get(key) == value]


def read_html(data: bytes) -> PageReader:
    reader = PageReader()
    reader.feed(data.decode("utf-8"))
    reader.close()
    return reader


def front_matter(data: bytes) -> dict:
    text = data.decode("utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---\n")])


# ---------------------------------------------------------------------------------------------
# Rendering a site from given strings

@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("escaping")


def render(root: Path, *, title: str, description: str, tags: list[str], site_title: str,
           author: str) -> dict[str, bytes]:
    (root / "content" / "posts").mkdir(parents=True, exist_ok=True)
    site_yml = {"title": site_title, "description": SITE_DESCRIPTION, "author": author,
                "url": "https://example.org", "baseurl": "/repo"}
    (root / "content" / "site.yml").write_text(yaml.safe_dump(site_yml, allow_unicode=True),
                                               encoding="utf-8")
    meta = {"title": title, "date": "2026-01-11 10:00:00 +0530", "description": description,
            "tag": tags}
    post = "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n" + \
        "Hello $x$.\n"
    (root / "content" / "posts" / f"{SLUG}.md").write_text(post, encoding="utf-8")
    project = Project(root)
    with context(project) as ctx:
        return render_site(ctx, results={}, figures={}, site=load_site_config(project))


def structure(page: PageReader) -> list[str]:
    """The elements of a page, meta tags aside (one more per tag): what markup in a title
    would change if it were not escaped."""
    return [t for t, _ in page.tags if t != "meta"]


@pytest.fixture(scope="module")
def baseline(workdir) -> dict[tuple[str, bool], list[str]]:
    """(page, has a description) -> the page's elements for plain strings (the index shows a
    description paragraph only when there is one)."""
    out = {}
    for has_description in (True, False):
        files = render(workdir / "baseline", title="Plain", tags=["t"], site_title="Plain",
                       description="Plain" if has_description else "", author="Plain")
        for name in ("html/index.html", f"html/{SLUG}/index.html", "html/404.html"):
            out[name, has_description] = structure(read_html(files[name]))
    return out


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(title=NONEMPTY, description=TEXT, tags=st.lists(NONEMPTY, max_size=4),
       site_title=NONEMPTY, author=NONEMPTY)
def test_strings_round_trip_through_every_output(workdir, baseline, title, description, tags,
                                                 site_title, author):
    files = render(workdir / "p", title=title, description=description, tags=tags,
                   site_title=site_title, author=author)
    t, d, s, a = normalise(title), normalise(description), normalise(site_title), normalise(author)
    tg = [normalise(x) for x in tags]
    shown_d = d or SITE_DESCRIPTION

    # The post page: <title>, h1, meta tags, JSON-LD; and nothing in the strings became markup.
    page = read_html(files[f"html/{SLUG}/index.html"])
    assert structure(page) == baseline[f"html/{SLUG}/index.html", bool(d)]
    assert page.text["title"] == [f"{t} · {s}"]
    assert page.text["h1"] == [t]
    assert page.meta("property", "og:title") == [t]
    assert page.meta("property", "og:description") == [shown_d]
    assert page.meta("name", "description") == [shown_d]
    assert page.meta("name", "author") == [a]
    assert page.meta("property", "og:site_name") == [s]
    assert page.meta("property", "article:tag") == tg
    (ld,) = [text for attrs, text in page.scripts if attrs.get("type") == "application/ld+json"]
    doc = json.loads(ld)
    assert doc["headline"] == t and doc["description"] == d and doc["author"]["name"] == a
    assert doc.get("keywords", []) == tg

    # The index lists the post with its title and description.
    index = read_html(files["html/index.html"])
    assert structure(index) == baseline["html/index.html", bool(d)]
    assert index.text["h3"] == [t]
    assert index.text["h1"] == [s]
    assert (d in index.text["p"]) if d else True
    assert structure(read_html(files["html/404.html"])) == baseline["html/404.html", bool(d)]

    # The Atom feed and the sitemap parse as XML and carry the same strings.
    feed = ET.fromstring(files["html/feed.xml"])
    assert feed.findtext(f"{ATOM}title") == s
    assert feed.findtext(f"{ATOM}author/{ATOM}name") == a
    (entry,) = feed.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == t
    assert entry.findtext(f"{ATOM}summary") == (d or None)
    assert [c.get("term") for c in entry.findall(f"{ATOM}category")] == tg
    urls = ET.fromstring(files["html/sitemap.xml"])
    assert [u.findtext(f"{SITEMAP}loc") for u in urls] == \
        ["https://example.org/repo/", f"https://example.org/repo/{SLUG}/"]

    # The Jekyll post: the author's own values in its front matter; the heading is one line
    # in which no markup character is left unescaped.
    post = files[f"jekyll/_posts/2026-01-11-{SLUG}.md"]
    meta = front_matter(post)
    assert meta["title"] == title and meta["tag"] == tags
    body = post.decode("utf-8").split("\n---\n", 1)[1]
    headings = [line for line in body.split("\n") if line.startswith("# ")]
    assert len(headings) == 1
    assert not re.search(r"(?<!\\)[<>]", headings[0])
    config = yaml.safe_load(files["jekyll/_config.yml"])
    assert config["title"] == s and config["author"] == a


@pytest.mark.parametrize("where", ["title", "description", "tag", "site title"])
# (U+0085 is not here: YAML reads it as a line break, so it never reaches the build as itself.)
@pytest.mark.parametrize("char", ["\x00", "\x08", "\x0b", "\x1b", "\x7f", "\x9f"])
def test_control_characters_are_refused_naming_the_field(workdir, where, char):
    kw = dict(title="T", description="D", tags=["x"], site_title="S", author="A")
    key = {"title": "title", "description": "description", "tag": "tags",
           "site title": "site_title"}[where]
    kw[key] = [f"a{char}b"] if key == "tags" else f"a{char}b"
    with pytest.raises((ContentError, ConfigError)) as err:
        render(workdir / "ctl", **kw)
    message = err.value.message
    assert f"control character U+{ord(char):04X}" in message and "remove it" in message
    assert {"title": "fuzz.md: title:", "description": "fuzz.md: description:",
            "tag": "fuzz.md: tag[0]:", "site title": "site.yml: title:"}[where] in message
