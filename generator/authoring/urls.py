"""Where each post lives in each output, and the URLs no two posts (and no post and the site)
may share.

The HTML site serves a post at ``<baseurl>/<slug>/``: the slug is the file name, or ``slug:`` in
the front matter. The Jekyll tree's post is ``_posts/<date>-<slug>.md``, which Jekyll serves at
its ``permalink:`` when the front matter has one, else at its default
``/:categories/:year/:month/:day/:title.html``, the date taken in UTC (GitHub Pages builds in
UTC). Both are computed here so that a clash is refused at build time instead of one page
silently replacing another (Jekyll only says "Conflict").
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.errors import ContentError

# Slugs the HTML site's own files take (site/html/<name> or <name>.xml/.html): a post there
# would shadow them, or they it.
RESERVED_SLUGS = {
    "assets": "the site's assets/ folder",
    "index": "the index page",
    "404": "the page-not-found page (404.html)",
    "feed": "the Atom feed (feed.xml)",
    "sitemap": "the sitemap (sitemap.xml)",
}
# URL paths of the Jekyll tree's own pages and files (and of most blogs it drops into).
RESERVED_JEKYLL = ("/", "/index.html", "/404.html", "/feed.xml", "/sitemap.xml")
RESERVED_JEKYLL_PREFIXES = ("/assets/",)

JEKYLL_DEFAULT = "/:categories/:year/:month/:day/:title:output_ext"
PLACEHOLDERS = ("categories", "year", "month", "day", "i_month", "i_day", "short_year", "hour",
                "minute", "second", "title", "slug", "output_ext")
_PLACEHOLDER = re.compile(r":([a-z_]+)")


def _categories(meta: Mapping[str, Any]) -> list[str]:
    """The categories as Jekyll files a post under them: `category` (one, as written) wins over
    `categories` (a list, or a string split at spaces); lower-cased, duplicates dropped."""
    if meta.get("category") is not None:
        raw: Iterable[Any] = [meta["category"]]
    else:
        value = meta.get("categories")
        raw = value.split() if isinstance(value, str) else value if isinstance(value, list) \
            else [] if value is None else [value]
    out: list[str] = []
    for c in raw:
        text = str(c).lower()
        if text and text not in out:
            out.append(text)
    return out


def jekyll_url(meta: Mapping[str, Any], slug: str, date: dt.datetime, path: Path) -> str:
    """The URL path (below the baseurl) Jekyll gives the post."""
    template = meta.get("permalink")
    if template is None:
        template = JEKYLL_DEFAULT
    elif not isinstance(template, str) or not template.startswith("/"):
        raise ContentError(f"permalink {template!r} must be a URL path starting with /",
                           path=path, field="permalink", hint="write it as /my-post/")
    when = date.astimezone(dt.timezone.utc)
    values = {"categories": "/".join(_categories(meta)), "year": f"{when.year:04d}",
              "month": f"{when.month:02d}", "day": f"{when.day:02d}",
              "i_month": str(when.month), "i_day": str(when.day),
              "short_year": f"{when.year % 100:02d}", "hour": f"{when.hour:02d}",
              "minute": f"{when.minute:02d}", "second": f"{when.second:02d}",
              "title": slug, "slug": slug, "output_ext": ".html"}

    def fill(m: re.Match) -> str:
        if m.group(1) not in values:
            raise ContentError(f"permalink {template!r}: unknown placeholder :{m.group(1)}",
                               path=path, field="permalink",
                               hint=f"use {', '.join(':' + p for p in PLACEHOLDERS)}, or a "
                                    "literal path")
        return values[m.group(1)]
    # Longest names first, as Jekyll does (:i_month before :month).
    url = _PLACEHOLDER.sub(fill, template)
    return re.sub(r"/+", "/", url)


def _file_of(url: str) -> str:
    """The file a URL path is written to (Jekyll: /a/ -> /a/index.html, /a -> /a.html)."""
    if url.endswith("/"):
        return url + "index.html"
    return url if url.endswith(".html") or "." in url.rsplit("/", 1)[-1] else url + ".html"


def _blame(info: Any, other: Any, key: str) -> tuple[Any, Any]:
    """(the post to name, the other): the one whose front matter chose the URL with ``key``,
    when only one of them did; else the later file."""
    if key in other.post.meta and key not in info.post.meta:
        return other, info
    return info, other


def check_urls(infos: list) -> None:
    """Refuse a post whose slug is a site path, two posts with one URL in either output, and a
    Jekyll permalink on one of the Jekyll tree's own paths. ``infos``: authoring.post_info's
    PostInfo of every post the build shows."""
    html: dict[str, Any] = {}
    jekyll: dict[str, Any] = {}
    for info in sorted(infos, key=lambda i: str(i.post.path)):
        path = info.post.path
        field = "slug" if "slug" in info.post.meta else None
        if info.slug in RESERVED_SLUGS:
            raise ContentError(f"the slug '{info.slug}' is taken by "
                               f"{RESERVED_SLUGS[info.slug]}", path=path, field=field,
                               hint="rename the file, or set another slug: in its front matter")
        other = html.setdefault(info.slug, info)
        if other is not info:
            blamed, also = _blame(info, other, "slug")
            raise ContentError(f"two posts have the URL /{info.slug}/ (also {also.post.path})",
                               path=blamed.post.path,
                               field="slug" if "slug" in blamed.post.meta else None,
                               hint="give one of them another slug: its file name, or slug: in "
                                    "its front matter")
        url = info.jekyll_url
        field = "permalink" if "permalink" in info.post.meta else None
        if url in RESERVED_JEKYLL or url.startswith(RESERVED_JEKYLL_PREFIXES):
            raise ContentError(f"the Jekyll URL {url} is one of the Jekyll tree's own paths",
                               path=path, field=field, hint="choose another permalink:")
        other = jekyll.setdefault(_file_of(url), info)
        if other is not info:
            blamed, also = _blame(info, other, "permalink")
            raise ContentError(f"two posts have the Jekyll URL {url} (also {also.post.path})",
                               path=blamed.post.path,
                               field="permalink" if "permalink" in blamed.post.meta else None,
                               hint="give one of them another permalink:; Jekyll would keep "
                                    "only one")
