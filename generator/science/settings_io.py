"""Settings dataclasses read from front matter (or from a result's JSON), with one-line errors.

Standard library only: the build validates front matter, and checks freshness, without torch.
A settings class is a frozen dataclass whose fields are int, float or str, with a method
``check(bad)`` that raises ``bad(field, message)`` on the first value it refuses.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import fields
from typing import Any, Callable, Mapping, TypeVar

from ..core.errors import ConfigError, unknown_key_error

S = TypeVar("S")


def _coerce(f: dataclasses.Field, value: Any, bad: Callable[[str, str], ConfigError]) -> Any:
    kind = f.type
    if kind == "float":
        if isinstance(value, str):          # YAML reads 1e-2 as a string
            try:
                value = float(value)
            except ValueError:
                raise bad(f.name, f"must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            raise bad(f.name, f"must be a finite number, got {value!r}")
        return float(value)
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad(f.name, f"must be an integer, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise bad(f.name, f"must be a string, got {value!r}")
    return value


def from_mapping(cls: type[S], data: Mapping[str, Any] | None, *, source: object | None = None,
                 prefix: str = "") -> S:
    """``cls`` from front matter (or a result's JSON): unknown keys and bad values are
    ConfigErrors naming the source and the field."""
    data = dict(data or {})
    names = [f.name for f in fields(cls)]
    for key in sorted(map(str, data)):
        if key not in names:
            raise unknown_key_error(key, names, source=source, prefix=prefix)

    def bad(name: str, message: str) -> ConfigError:
        return ConfigError(message, path=source, field=prefix + name)

    values = {f.name: _coerce(f, data[f.name], bad) for f in fields(cls) if f.name in data}
    out = cls(**values)
    out.check(bad)
    return out


def at_least(s: Any, bad, minimum: int | float, *names: str) -> None:
    for name in names:
        if getattr(s, name) < minimum:
            raise bad(name, f"must be >= {minimum}, got {getattr(s, name)!r}")
