"""One exception family for every error a user can fix.

Each error is a ``click.ClickException`` so the CLI prints a single line and exits non-zero
without a traceback; the message names the file, the field and the fix.
"""
from __future__ import annotations

import click


def one_line(text: object) -> str:
    """Any text as one line: runs of whitespace (line breaks included) become one space."""
    return " ".join(str(text).split())


class LoraSiteError(click.ClickException):
    """Base class: a problem the user can fix, reported as one line."""

    exit_code = 1

    def __init__(self, message: str, *, path: object | None = None, field: str | None = None,
                 line: int | None = None, hint: str | None = None) -> None:
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
            if field:
                where += f": {field}"
            where += ": "
        elif field:
            where = f"{field}: "
        text = f"{where}{message}"
        if hint:
            text += f" ({hint})"
        # One line, always: a multi-line YAML or Jinja message would break that promise.
        super().__init__(one_line(text))
        self.path, self.field, self.line, self.hint = path, field, line, hint


class ConfigError(LoraSiteError):
    """A setting in site.yml, front matter or an experiment spec is missing or invalid."""


def unknown_key_error(key: str, allowed, *, source: object | None, prefix: str = "",
                      kind: type = ConfigError) -> LoraSiteError:
    """'unknown key' with a did-you-mean suggestion drawn from the allowed keys."""
    import difflib

    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(sorted(allowed))}"
    return kind(f"unknown key '{key}'", path=source, field=prefix + key, hint=hint)


class ContentError(LoraSiteError):
    """A post cannot be read or rendered (YAML syntax, Jinja, missing figure or listing)."""


class ExperimentError(LoraSiteError):
    """Training went wrong in a way the settings can fix (for example a non-finite loss)."""


class ResultsError(LoraSiteError):
    """Saved or frozen results are missing, stale, truncated or edited."""


class BuildError(LoraSiteError):
    """The site could not be written (unwritable folder, another build running)."""
