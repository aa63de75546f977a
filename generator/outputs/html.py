"""The standalone HTML site (site/html/), what the GitHub Pages workflow deploys.

  index.html                 list of posts
  <slug>/index.html          one page per post, at <baseurl>/<slug>/
  assets/style.css           the one stylesheet (Pygments light + dark appended)
  assets/code-copy.js        the copy button of code blocks (the pages work without it)
  assets/images/<name>.png   figures of the experiment 'main' (and <name>@2x.png, and the dark
                             theme's <name>-dark.png, <name>-dark@2x.png);
  assets/images/<exp>/...    figures of any other experiment
  404.html, feed.xml, sitemap.xml, .nojekyll
URLs are root-relative and carry the baseurl, so the site works under /repo/. The feed carries
each post's full content, with its math as MathML and every URL absolute (render/feedhtml.py).
"""
from __future__ import annotations

from html import escape as html_escape
from typing import Any

from ..authoring.citation import bibtex_entry, bibtex_key, bibtex_url, scholar_tags
from ..plots.common import DARK, Theme, image_filename
from ..render.context import FigureRef, image_dir
from ..render.markdown import Markdowner
from .base import Files, OutputFormat, SiteBuild


def _json_ld(info, site) -> dict:
    people = [{"@type": "Person", "name": a} for a in info.authors]
    return {
        "@context": "https://schema.org",
        "@type": "BlogPosting",
        "headline": info.title,
        "description": info.description,
        "datePublished": info.iso,
        "author": people[0] if len(people) == 1 else people,
        **({"keywords": list(info.tags)} if info.tags else {}),
        **({"license": site.license.text.url} if site.license.text else {}),
        "url": site.url + info.url,
        "mainEntityOfPage": site.url + info.url,
    }


def _themed(src: str, theme: Theme) -> str:
    """The URL of a light figure file's twin in another theme (plots.common.image_filename)."""
    folder, _, filename = src.rpartition("/")
    stem, _, ext = filename.rpartition(".")
    name, at, scale = stem.partition("@")
    return f"{folder}/{name}{theme.suffix}{at}{scale}.{ext}"


def cite(info, site, url: str) -> dict:
    """What post-footer.html needs: the BibTeX key, and the entry as escaped HTML."""
    return {"key": bibtex_key(info),
            "bibtex": html_escape(bibtex_entry(info, site, bibtex_url(url)).rstrip("\n"),
                                  quote=False)}


class HtmlSite(OutputFormat):
    name = "html"

    def figure(self, ref: FigureRef, markdown: Markdowner) -> str:
        cap = markdown.inline(ref.caption)
        a = html_escape(ref.alt, quote=True)
        # One raw HTML block with no blank line inside, so Markdown passes it through whole.
        dark, dark2x = (html_escape(_themed(src, DARK)) for src in (ref.src, ref.src2x))
        data = " · ".join(f'<a href="{html_escape(url)}" download>{html_escape(name)}</a>'
                          for name, url in ref.data)
        data = f' <span class="figure-data">Data: {data}.</span>' if data else ""
        # The image links to its 2x file: full resolution without JavaScript; figures.js
        # opens it over the page instead (the 2x file of the theme on show).
        explore = f' data-explore="{html_escape(ref.explore)}"' if ref.explore else ""
        # An image the interactive version hides still loads at once, for print and for a
        # reader whose script fails later.
        loading = "eager" if ref.explore else "lazy"
        # The dark theme's drawing where the reader's system asks for a dark page; the light
        # one everywhere else (and wherever <picture> is not understood).
        return (f'\n<figure id="{html_escape(ref.anchor)}"{explore}>\n'
                f'<a class="figure-zoom" href="{html_escape(ref.src2x)}">'
                f'<picture><source media="(prefers-color-scheme: dark)" srcset="{dark} 1x, '
                f'{dark2x} 2x">'
                f'<img src="{html_escape(ref.src)}" srcset="{html_escape(ref.src)} 1x, '
                f'{html_escape(ref.src2x)} 2x" width="{ref.width}" height="{ref.height}" '
                f'alt="{a}" loading="{loading}" decoding="async"></picture></a>\n'
                f'<figcaption><span class="fig-label">Figure {ref.number}.</span> {cap}{data}'
                f'</figcaption>\n</figure>\n')

    def finish(self, text: str, tools) -> dict[str, Any]:
        from ..render.prerender import prerender
        from ..render.sidenotes import add_sidenotes

        doc = tools.markdown.to_html(text, splice=tools.splice)
        page, feed = prerender(doc.html, tools.math)
        return {"html": add_sidenotes(page), "feed_html": feed, "toc": doc.toc}

    def page_url(self, info) -> str:
        return f"/{info.slug}/"

    def post_files(self, build: SiteBuild, info) -> dict[str, bytes]:
        """<slug>/index.html: the post's page (files() writes it through here too)."""
        site, base = build.site, build.site.baseurl
        r = build.rendered[info.slug]
        first_img = None
        if r.figures_used:
            exp, name = r.figures_used[0]
            first_img = f"{site.url}{base}/{image_dir(exp)}/{image_filename(name, 1)}"
        parts = r.parts[self.name]
        url = f"{site.url}{info.url}"
        page = build.page(
            "html/post.html", post=info, body=parts["html"], toc=parts["toc"],
            canonical=url, page_title=f"{info.title} · {site.title}",
            og_image=first_img, json_ld=_json_ld(info, site), cite=cite(info, site, url),
            citation=scholar_tags(info, site, r.references), reproduce=build.reproduce(info))
        return {f"{info.slug}/index.html": page.encode("utf-8")}

    def files(self, build: SiteBuild) -> dict[str, bytes]:
        from ..render.feedhtml import feed_content

        site, base = build.site, build.site.baseurl
        out = Files()
        out.put("assets/style.css", build.css())
        out.put("assets/figures.js", build.asset("assets/figures.js"))
        out.put("assets/code-copy.js", build.asset("assets/code-copy.js"))
        out.put(".nojekyll", b"")
        out.put("index.html", build.page("html/index.html", canonical=f"{site.url}{base}/",
                                         page_title=site.title))
        out.put("404.html", build.page("html/404.html", canonical=None,
                                       page_title=f"Page not found · {site.title}"))
        contents: dict[str, str] = {}         # slug -> the post's HTML for the feed
        for info in build.posts:
            for path, data in self.post_files(build, info).items():
                out.put(path, data)
            url = f"{site.url}{info.url}"
            contents[info.slug] = feed_content(build.rendered[info.slug].parts[self.name]
                                               ["feed_html"], url)
        out.put("feed.xml", build.page("feed.xml", contents=contents))
        out.put("sitemap.xml", build.page("sitemap.xml"))
        for path, data in {**build.figure_files(), **build.data_files()}.items():
            out.put(path, data)
        return out


FORMAT = HtmlSite()
