"""Read what an author writes: posts (YAML front matter + Markdown/Jinja body).

The front matter keys a post may use are a fixed, documented set (``FRONT_MATTER_KEYS``), so a
misspelt key is an error with a suggestion rather than a setting silently ignored:

  title        required; the post's title (one line of text)
  date         required; 2026-01-11 10:00:00 +0530 (a date without a zone is UTC)
  description  one line for the index, the feed and the meta tags
  experiments  experiment name -> settings (generator/config.py: ExperimentConfig)
  data         names of extra data loaders the body reads as data.<name>
  slug         reserved; the URL slug is the file name
  tag / tags   one tag or a list (`tags` may be a string split at spaces, as in Jekyll)
  category / categories, layout, permalink, published, author, excerpt, excerpt_separator,
  image, headerImage, last_modified_at, lang, comments, mathjax, toc
               passed on unchanged to the Jekyll post's front matter
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import ExperimentConfig, experiment_from_mapping, unknown_key_error
from .errors import ConfigError, ContentError

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
    experiments: dict[str, ExperimentConfig] = field(default_factory=dict)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key written twice in one mapping: PyYAML would silently keep the last value."""

    def __init__(self, key: str, first: yaml.Mark, again: yaml.Mark) -> None:
        super().__init__(None, None, f"the key '{key}' is written twice", again)
        self.key, self.first = key, first


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark)
        except TypeError:           # an unhashable key: the base constructor reports it
            continue
        if first is not key_node.start_mark:
            raise DuplicateKeyError(str(key), first, key_node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str) -> Any:
    """yaml.safe_load, except that a key written twice is an error (DuplicateKeyError)."""
    return yaml.load(text, Loader=StrictLoader)


def yaml_problem(exc: yaml.YAMLError, line_offset: int = 0,
                 source: str | None = None) -> tuple[str, int | None]:
    """A YAML error as (one-line message, file line). The line is where the parser stopped; when
    the problem started earlier (an unclosed quote), the message says where. ``source`` (the
    YAML text) locates a character the reader refuses, which carries only an offset."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 + line_offset if mark is not None else None
    if isinstance(exc, DuplicateKeyError):
        return (f"the key '{exc.key}' is written twice (first on line "
                f"{exc.first.line + 1 + line_offset})"), line
    if isinstance(exc, yaml.reader.ReaderError):
        where = source[: exc.position].count("\n") + 1 + line_offset if source else None
        return (f"YAML cannot hold the character U+{exc.character:04X}" if isinstance(
            exc.character, int) else f"YAML syntax error: {exc.reason}"), where
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    cmark = getattr(exc, "context_mark", None)
    text = f"YAML syntax error: {problem}"
    if context and cmark is not None and cmark.line + 1 + line_offset != line:
        text += f" ({context} that starts on line {cmark.line + 1 + line_offset})"
    return text, line


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


# Posts already parsed in this process, with the bytes they were parsed from: a build reads
# each post in several stages, and parsing (YAML, settings checks) costs more than reading.
_parsed: dict[Path, tuple[bytes, Post]] = {}


def read_post(path: Path) -> Post:
    """The post at ``path``: front matter checked, experiments parsed, body and its first line.
    The result is shared between callers: treat it as read-only."""
    path = Path(path)
    data = path.read_bytes()
    seen = _parsed.get(path)
    if seen is not None and seen[0] == data:
        return seen[1]
    post = _parse_post(path, data)
    _parsed[path] = (data, post)
    return post


def _parse_post(path: Path, data: bytes) -> Post:
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
    experiments = {}
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
        experiments[str(name)] = experiment_from_mapping(settings, source=path,
                                                         prefix=f"experiments.{name}.")
    return Post(path=path, slug=path.stem, meta=meta, body=text[m.end():], body_line=body_line,
                experiments=experiments)


def collect_experiments(posts: list[Post]) -> dict[str, ExperimentConfig]:
    """Every experiment the posts declare; one name means one config across all posts."""
    found: dict[str, tuple[ExperimentConfig, Path]] = {}
    for post in posts:
        for name, cfg in post.experiments.items():
            if name in found and found[name][0] != cfg:
                raise ConfigError(f"experiment '{name}' is declared twice with different settings "
                                  f"(also in {found[name][1]})", path=post.path,
                                  field=f"experiments.{name}", hint="give one of them a new name")
            found.setdefault(name, (cfg, post.path))
    return {name: found[name][0] for name in sorted(found)}
