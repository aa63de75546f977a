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
  slug         the URL slug (default: the file name), in both outputs
  tag / tags   one tag or a list (`tags` may be a string split at spaces, as in Jekyll)
  published    false: a draft, left out of every output unless the build has --drafts
  author       one name or a list, instead of site.yml's author (post_info.post_authors)
  category / categories, layout, permalink, excerpt, excerpt_separator,
  image, headerImage, last_modified_at, lang, comments, mathjax, toc
               passed on unchanged to the Jekyll post's front matter (permalink and the
               categories also decide the Jekyll URL the build checks links against)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..core.context import BuildContext
from ..core.errors import ConfigError, ContentError, unknown_key_error
from ..core.oserror import os_hint, os_reason
from ..kinds.base import DEFAULT_KIND, Declared, Kinds
from .names import name_problem
from .yamlio import load_yaml, yaml_hint, yaml_problem

# Keys that steer the build (site.BUILD_KEYS) and the Jekyll keys passed through to the post.
BUILD_FRONT_MATTER_KEYS = ("title", "date", "description", "experiments", "data", "slug")
JEKYLL_FRONT_MATTER_KEYS = ("tag", "tags", "category", "categories", "layout", "permalink",
                            "published", "author", "excerpt", "excerpt_separator", "image",
                            "headerImage", "last_modified_at", "lang", "comments", "mathjax",
                            "toc")
FRONT_MATTER_KEYS = BUILD_FRONT_MATTER_KEYS + JEKYLL_FRONT_MATTER_KEYS


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
    hint = yaml_hint(exc) or "fix the YAML (quote values that contain ': ' or start with a quote)"
    return ContentError(text, path=path, line=line, hint=hint)


def _decode(path: Path, data: bytes) -> str:
    """The file's bytes as UTF-8 text with LF line ends. Bytes that are not UTF-8, and line
    ends that are a lone CR (old Mac files), are errors naming the line; a UTF-8 byte order
    mark (some Windows editors write one) is dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ContentError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", path=path,
                           line=line, hint="save the file as UTF-8") from None
    text = text.removeprefix("\ufeff")
    # Windows line ends would end up in the Jekyll post and shift nothing else; normalise them.
    text = text.replace("\r\n", "\n")
    cr = text.find("\r")
    if cr >= 0:
        # YAML and Markdown would read a lone CR as a line break, Jinja and our line numbers
        # would not: every reported line would be wrong, so the file is refused.
        if "\n" not in text:
            raise ContentError("the line ends are carriage returns only (old Mac format)",
                               path=path, line=1,
                               hint="save the file with LF or CRLF line ends")
        raise ContentError("a carriage return (CR) without a line feed", path=path,
                           line=text[:cr].count("\n") + 1,
                           hint="save the file with LF or CRLF line ends")
    return text


def split_front_matter(path: Path, text: str) -> tuple[str, str, int]:
    """(the YAML between the '---' lines, the body, the body's first line). A file without
    front matter, front matter never closed, and text on the closing '---' line each get their
    own message. The closing '---' may end the file (the body is then empty), as in Jekyll."""
    first, _, rest = text.partition("\n")
    if first.rstrip(" \t") != "---":
        hint = ("the first line must be exactly '---'" if first.startswith("---") else
                "start the file with a '---' line, YAML, and another '---' line")
        raise ContentError("no front matter", path=path, line=1, hint=hint)
    lines = rest.split("\n")
    for i, line in enumerate(lines):
        if not line.startswith("---"):
            continue
        if line.rstrip(" \t") != "---":
            raise ContentError(f"text after the closing '---' of the front matter: "
                               f"{line[3:].strip()[:40]!r}", path=path, line=i + 2,
                               hint="end the front matter with a line holding only '---' "
                                    "and start the body on the next line")
        front = "".join(f"{x}\n" for x in lines[:i])
        return front, "\n".join(lines[i + 1:]), i + 3
    raise ContentError("the front matter opened on line 1 is never closed", path=path, line=1,
                       hint="end it with a line holding only '---' before the body")


def _key_line(front: str, key: str) -> int | None:
    """The file line of a top-level key in the front matter (which starts on line 2)."""
    for i, line in enumerate(front.split("\n")):
        if re.match(rf"^['\"]?{re.escape(key)}['\"]?\s*:", line):
            return i + 2
    return None


def _nested_key_line(front: str, parent: str, key: str) -> int | None:
    """The file line of ``key`` written under the top-level ``parent`` (block or flow style)."""
    start = _key_line(front, parent)
    if start is None:
        return None
    lines = front.split("\n")
    pattern = re.compile(rf"(^\s+|[{{,]\s*)['\"]?{re.escape(key)}['\"]?\s*:")
    for i in range(start - 2, len(lines)):
        if i > start - 2 and lines[i][:1] not in (" ", "\t", ""):
            break                       # the next top-level key: not found under parent
        if pattern.search(lines[i]):
            return i + 2
    return None


class PostReader:
    """Posts parsed in this context, remembered with the bytes they were parsed from: a build
    reads each post in several stages, and parsing (YAML, settings checks) costs more than
    reading. The preview server's context keeps them across rebuilds; a post is parsed again
    when its bytes change, or when the registry of kinds it was parsed with was renewed (site.yml
    names other kind modules)."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self.parsed: dict[Path, tuple[bytes, Kinds, Post]] = {}

    @property
    def kinds(self) -> Kinds:
        return kinds_of(self.ctx)

    def read(self, path: Path) -> Post:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ContentError(f"cannot read the post: {os_reason(exc)}", path=path,
                               hint=os_hint(exc)) from None
        kinds = self.kinds
        seen = self.parsed.get(path)
        if seen is not None and seen[0] == data and seen[1] is kinds:
            return seen[2]
        post = _parse_post(path, data, kinds)
        self.parsed[path] = (data, kinds, post)
        return post


def kinds_of(ctx: BuildContext) -> Kinds:
    """The experiment kinds of this project: the package's, and the modules site.yml names
    under ``kinds:``. Renewed for a build after site.yml changed that list (site.yml is read
    again only when its stat changed)."""
    from .site_config import kind_modules

    site_yml = ctx.project.site_yml

    def stamp() -> tuple[int, ...] | None:
        try:
            st = site_yml.stat()
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def make(ctx: BuildContext) -> Kinds:
        from ..core.located import located

        try:
            kinds = Kinds(extra_modules=kind_modules(ctx.project))
        except ConfigError as exc:
            if exc.field != "kinds" or exc.path is not None:
                raise
            raise located(exc, path=ctx.project.site_yml) from None
        kinds.read_from = stamp()
        return kinds

    def stale(kinds: Kinds) -> bool:
        now = stamp()
        if now == kinds.read_from:
            return False
        if kind_modules(ctx.project) != kinds.extra_modules:
            return True
        kinds.read_from = now                   # another setting changed: the same kinds
        return False
    return ctx.state("kinds", make, renew=stale)


def read_post(ctx: BuildContext, path: Path) -> Post:
    """The post at ``path``: front matter checked, experiments parsed, body and its first line.
    The result is shared between callers: treat it as read-only."""
    return ctx.state("posts", PostReader).read(path)


def read_posts(ctx: BuildContext) -> list[Post]:
    return [read_post(ctx, p) for p in ctx.project.post_files()]


def _parse_post(path: Path, data: bytes, kinds: Kinds) -> Post:
    text = _decode(path, data)
    front, body, body_line = split_front_matter(path, text)
    try:
        meta = load_yaml(front) or {}
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, path, line_offset=1, source=front) from None
    if not isinstance(meta, dict):
        raise ContentError("front matter must be a mapping of keys to values", path=path, line=2,
                           hint="write one 'key: value' per line")
    for key in meta:
        if str(key) not in FRONT_MATTER_KEYS:
            err = unknown_key_error(str(key), FRONT_MATTER_KEYS, source=path)
            raise ContentError(f"unknown front matter key '{key}'", path=path,
                               line=_key_line(front, str(key)), field=str(key),
                               hint=err.hint) from None
    experiments: dict[str, Declared] = {}
    raw = meta.get("experiments") or {}
    if not isinstance(raw, dict):
        raise ConfigError("must map experiment names to settings", path=path, field="experiments",
                          hint="write 'experiments:' and below it lines such as '  main: {rank: 4}'")
    for name, settings in raw.items():
        wrong = name_problem(str(name))
        if wrong is not None:
            raise ConfigError(wrong[0], path=path, field=f"experiments.{name}",
                              line=_nested_key_line(front, "experiments", str(name)),
                              hint=wrong[1])
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
    return Post(path=path, slug=path.stem, meta=meta, body=body, body_line=body_line,
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
