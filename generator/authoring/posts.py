"""Read what an author writes: posts (YAML front matter + Markdown/Jinja body).

The front matter keys a post may use are a fixed, documented set (``FRONT_MATTER_KEYS``), so a
misspelt key is an error with a suggestion rather than a setting silently ignored:

  title        required; the post's title (one line of text)
  date         required; 2026-01-11 10:00:00 +0530 (a date without a zone is UTC)
  description  one line for the index, the feed and the meta tags
  experiments  experiment name -> settings; `kind:` picks the experiment kind (default lora,
               generator/science/config.py: ExperimentConfig; see generator/kinds/)
  data         experiments whose data the body reads as data.<name>; a name no experiment has
               declares one of the kind that offers it (data: [audit])
  slug         reserved; the URL slug is the file name
  tag / tags   one tag or a list (`tags` may be a string split at spaces, as in Jekyll)
  category / categories, layout, permalink, published, author, excerpt, excerpt_separator,
  image, headerImage, last_modified_at, lang, comments, mathjax, toc
               passed on unchanged to the Jekyll post's front matter
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..core.context import BuildContext
from ..core.errors import ConfigError, ContentError, unknown_key_error
from ..kinds.base import DEFAULT_KIND, Declared, Kinds
from .yamlio import DuplicateKeyError, load_yaml, yaml_problem

_FRONT = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.S)
# Keys that steer the build (site.BUILD_KEYS) and the Jekyll keys passed through to the post.
BUILD_FRONT_MATTER_KEYS = ("title", "date", "description", "experiments", "data", "slug")
JEKYLL_FRONT_MATTER_KEYS = ("tag", "tags", "category", "categories", "layout", "permalink",
                            "published", "author", "excerpt", "excerpt_separator", "image",
                            "headerImage", "last_modified_at", "lang", "comments", "mathjax",
                            "toc")
FRONT_MATTER_KEYS = BUILD_FRONT_MATTER_KEYS + JEKYLL_FRONT_MATTER_KEYS
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class Post:
    path: Path
    slug: str
    meta: dict[str, Any]
    body: str
    body_line: int                                   # 1-based line of the body's first line
    experiments: dict[str, Declared] = field(default_factory=dict)
    data: tuple[str, ...] = ()                       # experiments the body reads as data.<name>


def _yaml_error(exc: yaml.YAMLError, path: Path, line_offset: int = 0,
                source: str | None = None) -> ContentError:
    text, line = yaml_problem(exc, line_offset, source)
    hint = ("remove it, or write it as an escape in a double-quoted string"
            if isinstance(exc, yaml.reader.ReaderError)
            else "keep one of them" if isinstance(exc, DuplicateKeyError)
            else "fix the YAML (quote values that contain ': ' or start with a quote)")
    return ContentError(text, path=path, line=line, hint=hint)


def _decode(path: Path, data: bytes) -> str:
    """The file's bytes as UTF-8 text; bytes that are not UTF-8 are an error naming the line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ContentError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", path=path,
                           line=line, hint="save the file as UTF-8") from None
    # Windows line ends would end up in the Jekyll post and shift nothing else; normalise them.
    return text.replace("\r\n", "\n")


def _key_line(front: str, key: str) -> int | None:
    """The file line of a top-level key in the front matter (which starts on line 2)."""
    for i, line in enumerate(front.split("\n")):
        if re.match(rf"^['\"]?{re.escape(key)}['\"]?\s*:", line):
            return i + 2
    return None


class PostReader:
    """Posts parsed in this context, remembered with the bytes they were parsed from: a build
    reads each post in several stages, and parsing (YAML, settings checks) costs more than
    reading. The preview server's context keeps them across rebuilds."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self.parsed: dict[Path, tuple[bytes, Post]] = {}

    @property
    def kinds(self) -> Kinds:
        return kinds_of(self.ctx)

    def read(self, path: Path) -> Post:
        path = Path(path)
        data = path.read_bytes()
        seen = self.parsed.get(path)
        if seen is not None and seen[0] == data:
            return seen[1]
        post = _parse_post(path, data, self.kinds)
        self.parsed[path] = (data, post)
        return post


def kinds_of(ctx: BuildContext) -> Kinds:
    """The experiment kinds of this project: the package's, and the modules site.yml names
    under ``kinds:``."""
    def make(ctx: BuildContext) -> Kinds:
        from .site_config import kind_modules

        return Kinds(extra_modules=kind_modules(ctx.project))
    return ctx.state("kinds", make)


def read_post(ctx: BuildContext, path: Path) -> Post:
    """The post at ``path``: front matter checked, experiments parsed, body and its first line.
    The result is shared between callers: treat it as read-only."""
    return ctx.state("posts", PostReader).read(path)


def read_posts(ctx: BuildContext) -> list[Post]:
    return [read_post(ctx, p) for p in ctx.project.post_files()]


def _parse_post(path: Path, data: bytes, kinds: Kinds) -> Post:
    text = _decode(path, data)
    m = _FRONT.match(text)
    if not m:
        raise ContentError("no front matter", path=path, line=1,
                           hint="start the file with a '---' line, YAML, and another '---' line")
    try:
        meta = load_yaml(m.group(1)) or {}
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, path, line_offset=1, source=m.group(1)) from None
    if not isinstance(meta, dict):
        raise ContentError("front matter must be a mapping of keys to values", path=path, line=2,
                           hint="write one 'key: value' per line")
    for key in meta:
        if str(key) not in FRONT_MATTER_KEYS:
            err = unknown_key_error(str(key), FRONT_MATTER_KEYS, source=path)
            raise ContentError(f"unknown front matter key '{key}'", path=path,
                               line=_key_line(m.group(1), str(key)), field=str(key),
                               hint=err.hint) from None
    body_line = text[: m.end()].count("\n") + 1
    experiments: dict[str, Declared] = {}
    raw = meta.get("experiments") or {}
    if not isinstance(raw, dict):
        raise ConfigError("must map experiment names to settings", path=path, field="experiments",
                          hint="write 'experiments:' and below it lines such as '  main: {rank: 4}'")
    for name, settings in raw.items():
        if not _NAME.match(str(name)):
            raise ConfigError(f"experiment name {name!r} must be lower-case letters, digits, - or _",
                              path=path, field="experiments")
        if settings is not None and not isinstance(settings, dict):
            raise ConfigError("must be a mapping of settings", path=path,
                              field=f"experiments.{name}")
        settings = dict(settings or {})
        kind_name = settings.pop("kind", DEFAULT_KIND)
        if not isinstance(kind_name, str):
            raise ConfigError(f"must name an experiment kind, got {kind_name!r}", path=path,
                              field=f"experiments.{name}.kind",
                              hint=f"known kinds: {', '.join(kinds.names())}")
        kind = kinds.get(kind_name, source=path, field=f"experiments.{name}.kind")
        experiments[str(name)] = Declared(str(name), kind, kind.parse(
            settings, source=path, prefix=f"experiments.{name}."), path)
    data_names = meta.get("data") or []
    if not (isinstance(data_names, list) and all(isinstance(x, str) for x in data_names)):
        raise ContentError("must be a list of names", path=path, field="data")
    for name in data_names:
        if name in experiments:
            continue
        kind = kinds.for_data(name)
        if kind is None:
            offered = sorted({*experiments, *(k.data_name for k in kinds if k.data_name)})
            raise ContentError(f"no data loader named '{name}'", path=path, field="data",
                               hint=f"known: {', '.join(offered) or 'none'}")
        experiments[name] = Declared(name, kind, kind.defaults(), path)
    return Post(path=path, slug=path.stem, meta=meta, body=text[m.end():], body_line=body_line,
                experiments=experiments, data=tuple(data_names))


def collect_experiments(posts: list[Post]) -> dict[str, Declared]:
    """Every experiment the posts declare; one name means one kind and one set of settings
    across all posts."""
    found: dict[str, Declared] = {}
    for post in posts:
        for name, d in post.experiments.items():
            if name in found and found[name].key() != d.key():
                first = found[name]
                what = ("kinds" if first.kind is not d.kind else "settings")
                raise ConfigError(f"experiment '{name}' is declared twice with different {what} "
                                  f"(also in {first.source})", path=post.path,
                                  field=f"experiments.{name}", hint="give one of them a new name")
            found.setdefault(name, d)
    return resolve_needs({name: found[name] for name in sorted(found)})


def resolve_needs(declared: dict[str, Declared]) -> dict[str, Declared]:
    """Each experiment with the experiments it reads (Kind.needs) attached as ``upstream``:
    every need must name a declared experiment of the right kind, and no experiment may read
    itself, however indirectly. Errors name the post and the setting."""
    resolved: dict[str, Declared] = {}

    def visit(d: Declared, path: tuple[str, ...]) -> Declared:
        if d.name in resolved:
            return resolved[d.name]
        upstream = []
        for need in d.kind.needs(d.settings):
            field = f"experiments.{d.name}.{need.field}"
            other = declared.get(need.name)
            if other is None:
                same = [n for n, e in declared.items() if e.kind.name == need.kind]
                raise ConfigError(f"names experiment '{need.name}', which no post declares",
                                  path=d.source, field=field,
                                  hint=f"declare it with kind: {need.kind}, or name one of: "
                                       f"{', '.join(same) or 'none'}")
            if other.kind.name != need.kind:
                raise ConfigError(f"names experiment '{need.name}' of kind {other.kind.name}, "
                                  f"not {need.kind}", path=d.source, field=field,
                                  hint=f"name an experiment of kind {need.kind}")
            chain = path + (d.name,)            # the experiments being resolved, outermost first
            if need.name in chain:
                cycle = " -> ".join(chain[chain.index(need.name):] + (need.name,))
                raise ConfigError(f"experiments read each other's results in a cycle: {cycle}",
                                  path=d.source, field=field, hint="break the cycle")
            upstream.append(visit(other, path + (d.name,)))
        out = replace(d, upstream=tuple(upstream)) if upstream else d
        resolved[d.name] = out
        return out

    return {name: visit(d, ()) for name, d in declared.items()}


def declaring_post(posts: list[Post], name: str) -> Path | None:
    """The post whose front matter declares experiment ``name`` (for error messages)."""
    return next((p.path for p in posts if name in p.experiments), None)
