"""Helpers for the site tests: a strict little HTML reader, link resolution, math extraction.

Not a test module (no test_ prefix); the tests import it by name (pytest puts tests/ on the path).
"""
from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[1]
ARTICLE = REPO / "content" / "posts" / "lora-attention-geometry.md"
COMPANION = REPO / "content" / "posts" / "lora-attention-claims-audit.md"
AUDIT_FREEZE = REPO / "content" / "_freeze" / "audit"

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
# Elements whose end tag HTML lets one omit; our templates never omit them, so none listed.
RAW_TEXT = {"script", "style"}


@dataclass
class Page:
    """What the tests need from one HTML page."""

    path: Path
    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Text outside <pre>, <code>, <script>, <style>, split by whether it is math: inside an
    # element with class "arithmatex", or a pre-rendered <mjx-container> (its data-tex).
    math_text: list[str] = field(default_factory=list)
    plain_text: list[str] = field(default_factory=list)
    code_text: list[str] = field(default_factory=list)
    flow_text: list[str] = field(default_factory=list)   # prose and math, in document order
    headings: list[tuple[str, str]] = field(default_factory=list)   # (tag, text)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag]

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.plain_text).split())


class _Reader(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.heading: list[str] | None = None
        self.heading_tag = ""
        self.code_buf: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        self.page.tags.append((tag, a))
        if "id" in a:
            self.page.ids.append(a["id"])
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.heading, self.heading_tag = [], tag
        if tag == "pre":
            self.code_buf = []
        if tag == "mjx-container" and "data-tex" in a:
            # Math pre-rendered as SVG: its TeX, written as the source wrote it, is the text.
            tex = a["data-tex"]
            shown = f"\\[{tex}\\]" if a.get("display") == "true" else f"\\({tex}\\)"
            self.page.math_text.append(shown)
            self.page.flow_text.append(shown)
        if tag not in VOID:
            self.stack.append((tag, a))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            self.page.errors.append(f"end tag for void element </{tag}>")
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.page.errors.append(f"unexpected </{tag}> (open: "
                                    f"{[t for t, _ in self.stack][-3:]}) at {self.getpos()}")
            return
        self.stack.pop()
        if tag == self.heading_tag and self.heading is not None:
            self.page.headings.append((tag, " ".join("".join(self.heading).split())))
            self.heading = None
        if tag == "pre" and self.code_buf is not None:
            self.page.code_text.append("".join(self.code_buf))
            self.code_buf = None

    def handle_data(self, data):
        tags = [t for t, _ in self.stack]
        if self.heading is not None:
            self.heading.append(data)
        if self.code_buf is not None:
            self.code_buf.append(data)
        if any(t in tags for t in ("pre", "code", "script", "style", "mjx-container")):
            return
        in_math = any("arithmatex" in a.get("class", "").split() for _, a in self.stack)
        (self.page.math_text if in_math else self.page.plain_text).append(data)
        self.page.flow_text.append(data)

    def close(self):
        super().close()
        if self.stack:
            self.page.errors.append(f"unclosed elements at end: {[t for t, _ in self.stack]}")


def read_page(path: Path) -> Page:
    page = Page(path=path)
    text = path.read_text(encoding="utf-8")
    if not text.startswith("<!DOCTYPE html>"):
        page.errors.append("no <!DOCTYPE html> first")
    reader = _Reader(page)
    reader.feed(text)
    reader.close()
    return page


def html_pages(root: Path) -> list[Path]:
    return sorted(root.rglob("*.html"))


def internal_targets(page: Page, baseurl: str) -> list[str]:
    """Every URL the page asks the browser to load or link to, except external ones."""
    urls = []
    for tag, a in page.tags:
        for attr in ("href", "src"):
            if attr in a:
                urls.append(a[attr])
        if "srcset" in a:
            urls += [part.strip().split()[0] for part in a["srcset"].split(",") if part.strip()]
    return [u for u in urls if not urlsplit(u).scheme and not u.startswith("//")]


def resolve(url: str, page_path: Path, root: Path, baseurl: str) -> Path | None:
    """The file a root-relative or relative URL names inside the built tree, or None."""
    parts = urlsplit(url)
    path = parts.path
    if path.startswith("/"):
        prefix = baseurl.rstrip("/")
        if prefix and not (path == prefix or path.startswith(prefix + "/")):
            return None
        rel = path[len(prefix):].lstrip("/")
        target = root / rel
    elif path == "":
        target = page_path
    else:
        target = page_path.parent / path
    if path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target


def broken_links(root: Path, baseurl: str) -> list[str]:
    problems = []
    pages = {p: read_page(p) for p in html_pages(root)}
    for path, page in pages.items():
        for url in internal_targets(page, baseurl):
            target = resolve(url, path, root, baseurl)
            if target is None or not target.is_file():
                problems.append(f"{path.relative_to(root)}: {url} -> missing")
                continue
            frag = urlsplit(url).fragment
            if frag and target.suffix == ".html":
                ids = (pages.get(target) or read_page(target)).ids
                if frag not in ids:
                    problems.append(f"{path.relative_to(root)}: {url} -> no id {frag!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# The Jekyll post

_FRONT = re.compile(r"\A---\n(.*?\n)---\n", re.S)


def split_jekyll(text: str) -> tuple[dict, str]:
    m = _FRONT.match(text)
    assert m, "no front matter"
    return yaml.safe_load(m.group(1)), text[m.end():]


def strip_raw_guards(text: str) -> str:
    """What Liquid leaves of {% raw %}..{% endraw %}: the text inside."""
    return re.sub(r"\{%-?\s*(?:end)?raw\s*-?%\}", "", text)


def liquid_visible(text: str) -> str:
    """The text Liquid parses as template: raw regions (as Liquid finds them, up to the first
    endraw) are removed, together with their tags."""
    return re.sub(r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}", "", text, flags=re.S)


# What Liquid may see in a Jekyll post we write: the MathJax include, and the post's URL in its
# BibTeX (templates/post-footer.html), which only Jekyll knows.
GENERATED_LIQUID = ["{%- include mathjax.html -%}", "{{ page.url | absolute_url }}"]


def liquid_markup(text: str) -> list[str]:
    """Every Liquid tag and output that Liquid would parse in ``text``, in order."""
    return re.findall(r"\{\{.*?\}\}|\{%.*?%\}", liquid_visible(text), flags=re.S)


def strip_fences(text: str) -> str:
    return re.sub(r"^(`{3,}|~{3,})[^\n]*\n.*?^\1[ \t]*$", "", text, flags=re.S | re.M)


def fenced_blocks(text: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"^(`{3,})[^\n]*\n(.*?)\n^\1[ \t]*$", text,
                                            flags=re.S | re.M)]


def kramdown_math(text: str) -> list[str]:
    """TeX of every $$..$$ (inline or display) outside fenced code."""
    return [m.group(1) for m in re.finditer(r"\$\$(.+?)\$\$", strip_fences(text), flags=re.S)]


def norm_tex(tex: str) -> str:
    """TeX compared modulo spacing and the kramdown spelling of |."""
    tex = tex.replace("\\Vert", "\\|").replace("\\vert", "|")
    return re.sub(r"\s+", "", tex)


def unescape_code(html_text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


# ---------------------------------------------------------------------------------------------
# Projects

def make_project(root: Path, *, post_text: str | None = None, slug: str | None = None,
                 site_yml: str | None = None) -> Path:
    """A project folder with the repository's content/site.yml and either the real article or
    the given post text (written as content/posts/<slug>.md). Templates and listings come from
    the package, as they do for any project without its own templates/."""
    (root / "content" / "posts").mkdir(parents=True, exist_ok=True)
    if site_yml is None:
        shutil.copy(REPO / "content" / "site.yml", root / "content" / "site.yml")
    else:
        (root / "content" / "site.yml").write_text(site_yml, encoding="utf-8")
    if post_text is None:
        # The article alone: other posts (with their own experiments) have their own tests.
        shutil.copy(ARTICLE, root / "content" / "posts" / ARTICLE.name)
        # ...except the companion audit post, which the article's conclusion links to.
        shutil.copy(COMPANION, root / "content" / "posts" / COMPANION.name)
    else:
        (root / "content" / "posts" / f"{slug or 'post'}.md").write_text(post_text,
                                                                      encoding="utf-8")
        if f"/{COMPANION.stem}/" in post_text:
            # A variant of the article links to the audit post too: a link the build checks.
            shutil.copy(COMPANION, root / "content" / "posts" / COMPANION.name)
    # A post reading data.audit gets the repository's frozen claims audit: while it is fresh
    # the build reuses it rather than training the audit's thousands of runs again.
    reads_audit = post_text is None or re.search(r"^data:\s*\n(\s*-\s*\w+\s*\n)*\s*-\s*audit\s*$",
                                                 post_text, re.M)
    if reads_audit and AUDIT_FREEZE.is_dir():
        copy_frozen(root, "audit")
    return root


def copy_frozen(root: Path, name: str) -> None:
    """Copy the repository's frozen result ``name`` (its folder and its manifest entry) into
    the project at ``root``, so a build reuses it while its inputs are unchanged."""
    import json

    freeze = root / "content" / "_freeze"
    shutil.copytree(REPO / "content" / "_freeze" / name, freeze / name, dirs_exist_ok=True)
    repo_manifest = json.loads((REPO / "content" / "_freeze" / "manifest.json").read_text())
    path = freeze / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {
        "format": repo_manifest["format"], "experiments": {}}
    manifest["experiments"][name] = repo_manifest["experiments"][name]
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
