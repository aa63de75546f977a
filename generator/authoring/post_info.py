"""What templates need about a post besides its body: slug, title, dates, tags, authors, its URL.

Dates without a zone are UTC (never the machine's zone, so every machine builds the same feed).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import ContentError
from .posts import Post
from .site_config import SiteConfig, plain_text

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")

_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%z",
                 "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def parse_date(value: Any, *, path: Path) -> dt.datetime:
    """A post date as an aware datetime; a date without a zone is taken as UTC (never the
    machine's zone, so every machine builds the same feed)."""
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, dt.date):
        d = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        for f in _DATE_FORMATS:
            try:
                d = dt.datetime.strptime(value.strip(), f)
                break
            except ValueError:
                continue
        else:
            raise ContentError(f"date {value!r} is not a date", path=path, field="date",
                               hint="write it as 2026-01-11 10:00:00 +0530")
    else:
        raise ContentError("date is missing or not a date", path=path, field="date",
                           hint="write it as 2026-01-11 10:00:00 +0530")
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class PostInfo:
    """What templates need about a post besides its body."""

    post: Post
    slug: str
    title: str
    description: str
    date: dt.datetime
    date_text: str          # the date as the author wrote it, for the Jekyll front matter
    url: str                # root-relative, with the baseurl: /repo/<slug>/
    jekyll_name: str        # 2026-01-11-<slug>.md
    tags: tuple[str, ...] = ()   # from `tag:` or `tags:`, as Jekyll reads them
    authors: tuple[str, ...] = ()   # front matter `author:` (one or a list), else site.yml's

    @property
    def iso(self) -> str:
        return self.date.isoformat()

    @property
    def human_date(self) -> str:
        return f"{self.date.day} {self.date:%B %Y}"


def post_tags(meta: Mapping[str, Any], path: Path) -> tuple[str, ...]:
    """Tags as Jekyll reads them: `tag:` (one tag, or a list) wins over `tags:` (a list, or a
    string split at spaces). Numbers are taken as text (YAML reads `- 2026` as a number)."""
    key = "tag" if "tag" in meta else "tags"
    raw = meta.get(key)
    if raw is None:
        return ()
    if isinstance(raw, str):
        items = [raw] if key == "tag" else raw.split()
    elif isinstance(raw, list):
        items = raw
    else:
        raise ContentError("must be a tag or a list of tags", path=path, field=key,
                           hint="write tags as a YAML list of strings")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not plain_text(item, path=path, field=f"{key}[{i}]"):
            raise ContentError(f"tag {i + 1} is {item!r}, not a non-empty string", path=path,
                               field=key, hint="write each tag as a string")
        out.append(plain_text(item, path=path, field=f"{key}[{i}]"))
    return tuple(out)


def post_authors(meta: Mapping[str, Any], path: Path, default: str) -> tuple[str, ...]:
    """`author:` as one name or a list of names; without it, the site's author."""
    raw = meta.get("author")
    if raw is None:
        return (default,)
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise ContentError(f"must be a name or a list of names, got {raw!r}", path=path,
                           field="author", hint='write author: "Ada Lovelace" or a YAML list')
    out = []
    for i, item in enumerate(items):
        name = plain_text(item, path=path, field=f"author[{i}]") if isinstance(item, str) else ""
        if not name:
            raise ContentError(f"author {i + 1} is {item!r}, not a non-empty name", path=path,
                               field="author", hint="write each author as a string")
        out.append(name)
    return tuple(out)


def post_info(post: Post, site: SiteConfig) -> PostInfo:
    meta = post.meta
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ContentError("title is required", path=post.path, field="title",
                           hint="add a line such as 'title: \"My post\"' to the front matter")
    title = plain_text(title, path=post.path, field="title")
    desc = meta.get("description", "")
    if not isinstance(desc, str):
        raise ContentError("description must be a string", path=post.path, field="description",
                           hint="quote it: description: \"...\"")
    desc = plain_text(desc, path=post.path, field="description")
    if not _SLUG.match(post.slug):
        raise ContentError(f"file name {post.path.name!r} does not make a URL slug",
                           path=post.path, hint="name it with lower-case letters, digits and -")
    raw_date = meta.get("date")
    date = parse_date(raw_date, path=post.path)
    date_text = raw_date if isinstance(raw_date, str) else date.strftime("%Y-%m-%d %H:%M:%S %z")
    return PostInfo(post=post, slug=post.slug, title=title.strip(), description=desc.strip(),
                    date=date, date_text=date_text, url=f"{site.baseurl}/{post.slug}/",
                    jekyll_name=f"{date:%Y-%m-%d}-{post.slug}.md",
                    tags=post_tags(meta, post.path),
                    authors=post_authors(meta, post.path, site.author))
