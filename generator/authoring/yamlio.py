"""YAML as authors write it: PyYAML's safe loader, except that a key written twice is an error
(PyYAML would silently keep the last value), and errors as one line with the file's line."""
from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key written twice in one mapping: PyYAML would silently keep the last value."""

    def __init__(self, key: str, first: yaml.Mark, again: yaml.Mark) -> None:
        super().__init__(None, None, f"the key '{key}' is written twice", again)
        self.key, self.first = key, first


class BadValueError(yaml.constructor.ConstructorError):
    """A value YAML recognises but cannot build, such as the date 2026-02-30: PyYAML would raise
    a bare ValueError with no line."""


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys and reports impossible dates with their
    line."""


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


def _construct_timestamp(loader: StrictLoader, node: yaml.ScalarNode):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError) as exc:
        raise BadValueError(None, None, f"{node.value!r} is not a calendar date: {exc}",
                            node.start_mark) from None


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


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
    if isinstance(exc, BadValueError):
        return str(exc.problem), line
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


def yaml_hint(exc: yaml.YAMLError) -> str | None:
    """The fix for the particular YAML errors this module names (None: a plain syntax error,
    whose fix the caller words)."""
    if isinstance(exc, yaml.reader.ReaderError):
        return "remove it, or write it as an escape in a double-quoted string"
    if isinstance(exc, DuplicateKeyError):
        return "keep one of them"
    if isinstance(exc, BadValueError):
        return "write a date that exists, or quote the value to keep it as text"
    return None
