"""Re-raise an error at a better location without repeating its text.

A helper deep down (a figure, a listing, a Markdown rewrite, a training loop) raises a
LoraSiteError without knowing the file or line it came from; the caller that knows re-raises it
with ``located(exc, path=..., line=...)``. The problem and the hint are taken from the original,
so the one-line message names the place once and the fix once.

Kept out of errors.py on purpose: errors.py is imported by the experiment, so every edit to it
changes the inputs of every cached result.
"""
from __future__ import annotations

from typing import Any

from .errors import LoraSiteError, one_line

_KEEP: Any = object()


def problem(exc: LoraSiteError) -> str:
    """The error's message without its 'file:line: field: ' prefix and '(hint)' suffix."""
    text = exc.message
    where = ""
    if exc.path is not None:
        where = str(exc.path) + (f":{exc.line}" if exc.line is not None else "")
        where += f": {exc.field}" if exc.field else ""
    elif exc.field:
        where = str(exc.field)
    if where and text.startswith(one_line(where) + ": "):
        text = text[len(one_line(where)) + 2:]
    if exc.hint:
        text = text.removesuffix(f" ({one_line(exc.hint)})")
    return text


def located(exc: LoraSiteError, *, path: Any = _KEEP, line: Any = _KEEP, field: Any = _KEEP,
            hint: Any = _KEEP) -> LoraSiteError:
    """A copy of ``exc`` (same class) with the given location parts replaced."""
    def pick(new: Any, old: Any) -> Any:
        return old if new is _KEEP else new

    return type(exc)(problem(exc), path=pick(path, exc.path), line=pick(line, exc.line),
                     field=pick(field, exc.field), hint=pick(hint, exc.hint))
