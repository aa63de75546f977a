"""Code listings taken from the package's own source, so the article shows the code that ran.

``listing("attention", "TinySelfAttention")`` returns the source text of that class as it
stands in generator/attention.py (decorators included, dedented). The file is parsed with
``ast`` and never imported, so a listing of torch code does not import torch. Only modules of
this package can be read: a name that would leave the package folder is refused.
"""
from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

from .errors import ContentError

PACKAGE_DIR = Path(__file__).resolve().parent
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def module_path(module: str) -> Path:
    """generator/<module>.py for 'attention', 'generator.attention' or 'attention.py'."""
    name = module.removeprefix("generator.").removesuffix(".py")
    if not _MODULE.match(name):
        raise ContentError(f"listing: {module!r} is not a module of the generator package",
                           hint="use a module name such as 'attention' or 'lora'")
    path = (PACKAGE_DIR / f"{name}.py").resolve()
    if path.parent != PACKAGE_DIR or not path.is_file():
        raise ContentError(f"listing: no module generator/{name}.py",
                           hint="use a module name such as 'attention' or 'lora'")
    return path


def _find(body: list[ast.stmt], name: str):
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.name == name:
            return node
    return None


def listing(module: str, qualname: str) -> str:
    """Source of the class or function ``qualname`` ('LoRALinear' or 'LoRALinear.forward')."""
    path = module_path(module)
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    body: list[ast.stmt] = tree.body
    node = None
    for part in qualname.split("."):
        node = _find(body, part)
        if node is None:
            raise ContentError(f"listing: no class or function '{qualname}' in generator/"
                               f"{path.name}", hint="check the name in the listing(...) call")
        body = node.body
    lines = source.splitlines()
    # Decorators belong to the listing: they change what the definition means.
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    text = "\n".join(lines[first - 1: node.end_lineno])
    return textwrap.dedent(text)
