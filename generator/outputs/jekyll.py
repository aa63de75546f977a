"""The Jekyll tree (site/jekyll/): a complete Jekyll site whose post also drops into an existing
blog, with math that survives GitHub Pages' kramdown (render.kramdown).

  _posts/<date>-<slug>.md    the post: front matter, then kramdown-safe Markdown
  _config.yml, _layouts/, _includes/mathjax.html, index.html, assets/css/style.css
  _includes/citation-meta.html  Google Scholar's tags for a post's <head> (the layouts include it),
  assets/js/code-copy.js     (the copy button of code blocks, loaded by _layouts/default.html)
  assets/images/...          the light figures the posts link to (1x, and 2x for the zoom)

The post ends with its licences and its BibTeX (templates/post-footer.html, as on the HTML
site), so both travel with it into another blog; its front matter's `lora_site` holds what
the <head> include needs. The one thing Liquid fills in is the post's URL ({{ page.url |
absolute_url }}), which only Jekyll knows: it follows the blog's permalink setting.

Jekyll's feed (the jekyll-feed plugin, if a blog uses it) carries the post as kramdown renders
it: its math as TeX between \\( \\) and \\[ \\] for MathJax, which a feed reader shows as text.
"""
from __future__ import annotations

from html import escape as html_escape
from typing import Any

import yaml

from ..authoring.citation import bibtex_entry, bibtex_key, scholar_tags
from ..render.context import FigureRef
from ..render.kramdown import escape_markdown, to_kramdown
from ..render.markdown import Markdowner
from .base import Files, OutputFormat, SiteBuild

# Front matter keys that steer the build and are not passed on to Jekyll.
BUILD_KEYS = ("experiments", "data", "description", "slug")


# Where the post's BibTeX puts its URL, before Liquid's expression replaces it (no title can
# hold a NUL: site_config.plain_text refuses control characters).
_URL_SLOT = "\x00"
PAGE_URL = "{{ page.url | absolute_url }}"


def jekyll_front_matter(info, generated: dict[str, Any] | None = None) -> str:
    """The Jekyll front matter: layout first, then the author's keys in their order, minus the
    keys that only steer this build, then ``generated`` (what this build adds for the layouts).
    safe_dump quotes whatever needs quoting."""
    meta = {"layout": info.post.meta.get("layout", "post")}
    for key, value in info.post.meta.items():
        if key in BUILD_KEYS or key == "layout":
            continue
        meta[key] = info.date_text if key == "date" else value
    meta.update(generated or {})
    # YAML's emitter is slow (5 ms a post): a warm preview keeps the text of front matter that
    # did not change, keyed by repr, which tells a date from the string that prints like it.
    key = repr(meta)
    text = _FRONT_MATTER.get(key)
    if text is None:
        if len(_FRONT_MATTER) > 256:
            _FRONT_MATTER.clear()
        text = _FRONT_MATTER[key] = yaml.safe_dump(
            meta, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10_000)
    return text


_FRONT_MATTER: dict[str, str] = {}


def head_data(info, site, references: list[str]) -> dict[str, Any]:
    """`lora_site` in the front matter: what _includes/citation-meta.html writes in <head>."""
    data: dict[str, Any] = {"citation": [list(t) for t in scholar_tags(info, site, references)]}
    if site.license.text:
        data["license"] = site.license.text.url
    return {"lora_site": data}


def cite(info, site) -> dict:
    """post-footer.html's BibTeX for the Jekyll post: escaped HTML whose braces are character
    references (Liquid would read {{ or {% in a title, or the title's own double braces), with
    Liquid's URL of the page."""
    text = html_escape(bibtex_entry(info, site, _URL_SLOT).rstrip("\n"), quote=False)
    text = text.replace("{", "&#123;").replace("}", "&#125;").replace(_URL_SLOT, PAGE_URL)
    return {"key": bibtex_key(info), "bibtex": text}


class JekyllTree(OutputFormat):
    name = "jekyll"

    def figure(self, ref: FigureRef, markdown: Markdowner) -> str:
        md_alt = ref.alt.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
        # The attribute list gives the image's paragraph the figure's id (cross-references);
        # the image links to its 2x file, the full-resolution view.
        data = " · ".join(f"[{name}]({url})" for name, url in ref.data)
        return (f"\n*Figure {ref.number}: {ref.caption}*\n\n[![{md_alt}]({ref.src})]({ref.src2x})\n"
                f"{{: #{ref.anchor} .figure-image"
                + (f' data-explore="{ref.explore}"' if ref.explore else "") + "}\n"
                + (f"\nData: {data}\n{{: .figure-data}}\n" if data else ""))

    def finish(self, text: str, tools) -> dict[str, Any]:
        # The Jekyll post keeps its TeX (in kramdown's dialect): it drops into a blog whose
        # layout decides how math is shown (the post's include loads MathJax for it).
        return {"body": to_kramdown(text)}

    def page_url(self, info) -> str:
        return info.jekyll_url

    def served(self, build: SiteBuild, files) -> set[str]:
        """What Jekyll serves from this tree: its files and pages (folders starting with _ are
        Jekyll's own) and each post at its URL (authoring.urls)."""
        out = super().served(build, {p: b for p, b in files.items() if not p.startswith("_")})
        for info in build.posts:
            out.add(info.jekyll_url)
            if info.jekyll_url.endswith("/"):
                out.add(info.jekyll_url + "index.html")
        return out

    def files(self, build: SiteBuild) -> dict[str, bytes]:
        site, base = build.site, build.site.baseurl
        out = Files()
        out.put("_config.yml", build.page("jekyll/_config.yml", settings={
            "title": site.title, "description": site.description, "author": site.author,
            "url": site.url, "baseurl": base, "lang": site.lang,
            "markdown": "kramdown", "highlighter": "rouge",
            "kramdown": {"input": "GFM", "math_engine": "mathjax",
                         "syntax_highlighter": "rouge", "hard_wrap": False},
            "exclude": ["Gemfile", "Gemfile.lock", "vendor"],
            # A post dated in the future is published like any other, as on the HTML site
            # (Jekyll's default would hide it until its date: the two outputs would differ).
            "future": True,
        }))
        out.put("_includes/mathjax.html", build.page("jekyll/_includes/mathjax.html"))
        out.put("assets/css/style.css", build.css())
        out.put("assets/js/figures.js", build.asset("assets/figures.js"))
        out.put("assets/js/code-copy.js", build.asset("assets/code-copy.js"))
        static = next((d / "jekyll" / "static" for d in build.dirs
                       if (d / "jekyll" / "static").is_dir()), None)
        if static is None:
            from ..core.errors import BuildError

            raise BuildError("no Jekyll static files",
                             path=build.project.templates / "jekyll" / "static")
        for path in sorted(static.rglob("*")):
            if path.is_file():
                out.put(path.relative_to(static).as_posix(), path.read_bytes())
        for info in build.posts:
            r = build.rendered[info.slug]
            out.put(f"_posts/{info.jekyll_name}", build.page(
                "jekyll/post.md",
                front_matter=jekyll_front_matter(info, head_data(info, site, r.references)),
                heading="# " + escape_markdown(info.title), body=r.parts[self.name]["body"],
                cite=cite(info, site), draft=info.draft,
                reproduce=build.reproduce(info)))
        for path, data in {**build.figure_files(light_only=True), **build.data_files()}.items():
            out.put(path, data)
        return out


FORMAT = JekyllTree()
