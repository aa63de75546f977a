"""Read what an author writes: posts (YAML front matter + Markdown/Jinja body)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import ExperimentConfig, experiment_from_mapping
from .errors import ConfigError, ContentError

_FRONT = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.S)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class Post:
    path: Path
    slug: str
    meta: dict[str, Any]
    body: str
    body_line: int                                   # 1-based line of the body's first line
    experiments: dict[str, ExperimentConfig] = field(default_factory=dict)


def _yaml_error(exc: yaml.YAMLError, path: Path, line_offset: int = 0) -> ContentError:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 + line_offset if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ContentError(f"YAML syntax error: {problem}", path=path, line=line,
                        hint="fix the YAML (quote values that contain ': ' or start with a quote)")


def read_post(path: Path) -> Post:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    m = _FRONT.match(text)
    if not m:
        raise ContentError("no front matter", path=path, line=1,
                           hint="start the file with a '---' line, YAML, and another '---' line")
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, path, line_offset=1) from None
    if not isinstance(meta, dict):
        raise ContentError("front matter must be a mapping of keys to values", path=path, line=2)
    body_line = text[: m.end()].count("\n") + 1
    experiments = {}
    raw = meta.get("experiments") or {}
    if not isinstance(raw, dict):
        raise ConfigError("must map experiment names to settings", path=path, field="experiments")
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
