"""The Jekyll tree (site/jekyll/): a complete Jekyll site whose post also drops into an existing
blog, with math that survives GitHub Pages' kramdown (render.kramdown).

  _posts/<date>-<slug>.md    the post: front matter, then kramdown-safe Markdown
  _config.yml, _layouts/, _includes/mathjax.html, index.html, assets/css/style.css
  assets/images/...          the 1x figures the posts link to
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import quote

import yaml

from ..core.errors import ContentError
from ..render.context import FigureRef
from ..render.kramdown import escape_markdown, to_kramdown
from ..render.markdown import Markdowner
from .base import Files, OutputFormat, SiteBuild

# Front matter keys that steer the build and are not passed on to Jekyll.
BUILD_KEYS = ("experiments", "data", "description", "slug")


def jekyll_front_matter(info) -> str:
    """The Jekyll front matter: layout first, then the author's keys in their order, minus the
    keys that only steer this build. safe_dump quotes whatever needs quoting."""
    meta = {"layout": info.post.meta.get("layout", "post")}
    for key, value in info.post.meta.items():
        if key in BUILD_KEYS or key == "layout":
            continue
        meta[key] = info.date_text if key == "date" else value
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False,
                          width=10_000)


# Jekyll's permalink styles (the tree's _config.yml sets none: "date").
PERMALINK_STYLES = {"date": "/:categories/:year/:month/:day/:title:output_ext",
                    "pretty": "/:categories/:year/:month/:day/:title/",
                    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
                    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
                    "none": "/:categories/:title:output_ext"}
SITE_PERMALINK = "date"


def _categories(meta: dict[str, Any]) -> list[str]:
    """A post's categories as Jekyll reads them: a `categories:` string is split at spaces when
    the front matter is read (Document#merge_categories!), then Document#populate_categories
    takes Array(categories) + Utils.pluralized_array_from_hash(meta, "category",
    "categories"), as text, without repeats, in order."""
    def ruby_array(value: Any) -> list:                 # Kernel#Array
        return [] if value is None else value if isinstance(value, list) else [value]

    categories = meta.get("categories")
    if isinstance(categories, str):
        categories = categories.split()
    value = meta.get("category")
    if value is None or value is False:                 # value_from_plural_key
        value = [v for v in categories if v is not None] \
            if isinstance(categories, list) else None
    found: list[str] = []
    for item in ruby_array(categories) + ruby_array(value):
        for one in (item if isinstance(item, list) else [item]):
            if one is None:
                continue
            text = _ruby_text(one)
            if text not in found:
                found.append(text)
    return found


def _ruby_text(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def _slugify(text: str) -> str:
    """Jekyll's Utils.slugify in "default" mode (downcased): what :slug and
    :slugified_categories use."""
    return re.sub(r"[^\w-]+", "-", text.lower(), flags=re.ASCII).strip("-")


def _escape(value: str) -> str:
    """URL.escape_path: kept when it is only letters, digits and ./-, else percent-encoded."""
    if not value or re.fullmatch(r"[a-zA-Z0-9./-]+", value):
        return value
    return quote(value, safe="/!$&'()*+,;=:@~")


def permalink(info) -> str:
    """The URL path Jekyll gives the post (without the baseurl): its `permalink:` front matter
    when it has one, else the site's style, "date", with Jekyll's placeholders filled in
    (Jekyll::URL, Drops::UrlDrop). The date is the post's in UTC, the zone GitHub Pages builds
    in (the tree's _config.yml sets no timezone)."""
    meta = info.post.meta
    template = meta.get("permalink") or PERMALINK_STYLES[SITE_PERMALINK]
    if not isinstance(template, str):
        raise ContentError("permalink must be a string", path=info.post.path,
                           field="permalink", hint="write it as /a/path/")
    when = info.date.astimezone(dt.timezone.utc)
    cats = _categories(meta)
    values = {
        "collection": "posts", "name": _slugify(info.jekyll_name[:-3]), "title": info.slug,
        "slug": _slugify(info.slug), "categories": "/".join(dict.fromkeys(c.lower() for c in cats)),
        "slugified_categories": "/".join(dict.fromkeys(_slugify(c) for c in cats)),
        "year": f"{when:%Y}", "month": f"{when:%m}", "day": f"{when:%d}", "hour": f"{when:%H}",
        "minute": f"{when:%M}", "second": f"{when:%S}", "i_day": str(when.day),
        "i_month": str(when.month), "short_month": f"{when:%b}", "long_month": f"{when:%B}",
        "short_year": f"{when:%y}", "w_year": f"{when:%G}", "week": f"{when:%V}",
        "w_day": f"{when:%u}", "short_day": f"{when:%a}", "long_day": f"{when:%A}",
        "y_day": f"{when:%j}", "output_ext": ".html",
        "path": f"_posts/{info.jekyll_name}",
    }

    def fill(m: re.Match) -> str:
        name = m.group(1)
        for key in ([name, name[:-1]] if name.endswith("_") else [name]):
            if key in values:
                return _escape(values[key]) + m.group(0)[1 + len(key):]
        raise ContentError(f"permalink placeholder :{name} is not one Jekyll knows",
                           path=info.post.path, field="permalink",
                           hint="see Jekyll's permalink placeholders (:year, :title, ...)")
    url = re.sub(r":([a-z_]+)", fill, template)
    url = ("/" + url).replace("..", "/").replace("./", "")
    return re.sub(r"/+", "/", url)


class JekyllTree(OutputFormat):
    name = "jekyll"

    def post_url(self, info, site) -> str:
        return site.baseurl + permalink(info)

    def figure(self, ref: FigureRef, markdown: Markdowner) -> str:
        md_alt = ref.alt.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
        return f"\n*Figure {ref.number}: {ref.caption}*\n\n![{md_alt}]({ref.src})\n"

    def finish(self, text: str, markdown: Markdowner) -> dict[str, Any]:
        return {"body": to_kramdown(text)}

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
        }))
        out.put("_includes/mathjax.html", build.page("jekyll/_includes/mathjax.html"))
        out.put("assets/css/style.css", build.css())
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
            parts = build.rendered[info.slug].parts[self.name]
            out.put(f"_posts/{info.jekyll_name}", build.page(
                "jekyll/post.md", front_matter=jekyll_front_matter(info),
                heading="# " + escape_markdown(info.title), body=parts["body"]))
        for path, data in build.figure_files(one_x_only=True).items():
            out.put(path, data)
        return out


FORMAT = JekyllTree()
