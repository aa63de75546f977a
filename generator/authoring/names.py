"""The names a post body sees, so an experiment name can never hide one of them.

Each experiment a post declares becomes a variable of its body (``main.metrics.steps``), so its
name must be a name Jinja can read (``keys-exp`` would parse as ``keys - exp``) and must not be
one the body already has: the helpers render/context.py passes (``figure``, ``listing``,
``data``, ...), the globals of the body's Jinja environment (render/jinja.py adds ``argmax``,
``argmin``, ``enumerate``, ``zip`` to Jinja's ``range``, ``dict``, ``namespace``, ...), the names
Jinja gives a meaning (``loop``, ``caller``, ``true``, ...) and Python's keywords.
tests/test_names.py checks that render/ offers nothing this list misses.
"""
from __future__ import annotations

import keyword
import re

# What render/context.py passes every body, besides the experiments themselves.
BODY_NAMES = ("bibliography", "claims_table", "data", "experiments", "figure", "listing", "page",
              "post_url", "site", "table", "target")
# The globals of the body's Jinja environment (Jinja's own, then render/jinja.py's).
TEMPLATE_GLOBALS = ("cycler", "dict", "joiner", "lipsum", "namespace", "range",
                    "argmax", "argmin", "enumerate", "zip")
# Names Jinja itself gives a meaning inside a template.
JINJA_NAMES = ("caller", "false", "kwargs", "loop", "none", "self", "super", "true", "varargs")
HELPER_NAMES = tuple(sorted({*BODY_NAMES, *TEMPLATE_GLOBALS, *JINJA_NAMES}))
RESERVED = frozenset({*HELPER_NAMES, *(k.lower() for k in keyword.kwlist),
                      *keyword.softkwlist})

# A letter first: the name is also a folder (content/_freeze/<name>, assets/images/<name>),
# and Jekyll skips folders that start with '_'.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def suggest(name: str) -> str:
    """A usable name close to ``name``: keys-exp -> keys_exp, 2nd -> exp_2nd, range -> range_exp."""
    out = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "exp"
    if not out[0].isalpha():
        out = f"exp_{out}"
    return f"{out}_exp" if out in RESERVED else out


def name_problem(name: str) -> tuple[str, str] | None:
    """(problem, fix) when ``name`` cannot be an experiment's name, else None."""
    if not _NAME.match(name):
        return (f"experiment name {name!r} is not a name a post body can use",
                f"use lower-case letters, digits and _, starting with a letter, such as "
                f"{suggest(name)!r}")
    if name in RESERVED:
        return (f"experiment name {name!r} would hide the body's own {name!r}",
                f"rename it, e.g. {suggest(name)!r}; reserved: {', '.join(HELPER_NAMES)} "
                f"and Python's keywords")
    return None
