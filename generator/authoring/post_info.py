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
from .urls import jekyll_url

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")

_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%z",
                 "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


_DATE_SHAPE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?"
                         r"(?:\s*([+-])(\d{2}):?(\d{2}))?$")


def _impossible(text: str) -> str | None:
    """Why a date written in the accepted shape names no real moment (day 30 of February,
    hour 25, a zone 25 hours away), or None when it is not in that shape at all."""
    m = _DATE_SHAPE.match(text)
    if not m:
        return None
    y, mo, d, h, mi, sec, sign, zh, zm = m.groups()
    try:
        dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0))
        if sign:
            dt.timezone(dt.timedelta(hours=int(zh), minutes=int(zm)))
    except ValueError as exc:
        text = str(exc)
        return "the zone offset must be less than 24 hours" if "timedelta" in text else text
    return None


def parse_date(value: Any, *, path: Path) -> dt.datetime:
    """A post date as an aware datetime; a date without a zone is taken as UTC (never the
    machine's zone, so every machine builds the same feed). A date that does not exist
    (2026-02-30) says why; the year must have four digits, as Jekyll's file names need."""
    hint = "write it as 2026-01-11 10:00:00 +0530"
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
            reason = _impossible(value.strip())
            if reason:
                raise ContentError(f"date {value!r} is not a calendar date: {reason}",
                                   path=path, field="date", hint=hint)
            raise ContentError(f"date {value!r} is not a date", path=path, field="date",
                               hint=hint)
    else:
        raise ContentError("date is missing or not a date", path=path, field="date", hint=hint)
    d = d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)
    try:
        d.astimezone(dt.timezone.utc)       # sorting and the feed compare dates in UTC
    except OverflowError:
        d = None
    if d is None or not 1000 <= d.year <= 9999:
        raise ContentError(f"date {value!s} is out of range", path=path, field="date",
                           hint="use a year from 1000 to 9999")
    return d


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
    draft: bool = False     # `published: false`: shown only by a build with --drafts
    jekyll_url: str = ""    # where Jekyll serves the post, below the baseurl (authoring.urls)
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
    slug = post_slug(post)
    raw_date = meta.get("date")
    date = parse_date(raw_date, path=post.path)
    date_text = raw_date if isinstance(raw_date, str) else date.strftime("%Y-%m-%d %H:%M:%S %z")
    published = meta.get("published", True)
    if not isinstance(published, bool):
        raise ContentError(f"must be true or false, got {published!r}", path=post.path,
                           field="published",
                           hint="write published: false for a draft, or leave the key out")
    return PostInfo(post=post, slug=slug, title=title.strip(), description=desc.strip(),
                    date=date, date_text=date_text, url=f"{site.baseurl}/{slug}/",
                    jekyll_name=f"{date:%Y-%m-%d}-{slug}.md",
                    tags=post_tags(meta, post.path), draft=not published,
                    jekyll_url=jekyll_url(meta, slug, date, post.path),
                    authors=post_authors(meta, post.path, site.author))


def post_slug(post: Post) -> str:
    """The post's URL slug: ``slug:`` in its front matter, else its file name."""
    if "slug" in post.meta:
        slug = post.meta["slug"]
        if not isinstance(slug, str) or not _SLUG.match(slug):
            raise ContentError(f"slug {slug!r} is not a URL slug", path=post.path, field="slug",
                               hint="use lower-case letters, digits and -, such as my-post")
        return slug
    if not _SLUG.match(post.slug):
        raise ContentError(f"file name {post.path.name!r} does not make a URL slug",
                           path=post.path, hint="name it with lower-case letters, digits and -, "
                                                "or set slug: in its front matter")
    return post.slug
