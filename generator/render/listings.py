"""Code listings taken from the package's own source, so the article shows the code that ran.

``listing("attention", "TinySelfAttention")`` returns the source text of that class as it
stands in generator/science/attention.py (decorators included, dedented). A module is named by
its dotted path inside the package ('science.attention', 'generator.science.attention') or by
its short name when exactly one module has it ('attention'). The file is parsed with ``ast`` and
never imported, so a listing of torch code does not import torch. Only modules of this package
can be read: a name that would leave the package folder is refused.
"""
from __future__ import annotations

import ast
import os
import re
import textwrap
from pathlib import Path

from ..core.errors import ContentError

PACKAGE_DIR = Path(__file__).resolve().parent.parent
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def module_path(module: str, package_dir: Path | None = None) -> Path:
    """The file of 'attention', 'science.attention', 'generator.science.attention' or
    'attention.py'."""
    package_dir = package_dir or PACKAGE_DIR
    name = module.removeprefix("generator.").removesuffix(".py")
    if not _MODULE.match(name):
        raise ContentError(f"listing: {module!r} is not a module of the generator package",
                           hint="use a module name such as 'attention' or 'science.lora'")
    direct = package_dir.joinpath(*name.split(".")).with_suffix(".py")
    if direct.is_file():
        path = direct
    else:
        # A short name: the one module of that name in the package (a listing per figure
        # caption would make a full walk of the package per call add up).
        matches = [] if "." in name else sorted(
            f"{sub}.{name}" for sub in os.listdir(package_dir)
            if os.path.isfile(os.path.join(package_dir, sub, f"{name}.py")))
        if len(matches) > 1:
            raise ContentError(f"listing: {module!r} names {len(matches)} modules "
                               f"({', '.join(matches)})", hint="use the dotted name")
        if not matches:
            raise ContentError(f"listing: no module generator/{name.replace('.', '/')}.py",
                               hint="use a module name such as 'attention' or 'science.lora'")
        path = package_dir.joinpath(*matches[0].split(".")).with_suffix(".py")
    resolved = path.resolve()
    if not resolved.is_relative_to(package_dir.resolve()):
        # A symlink out of the package: refused as if the module did not exist.
        raise ContentError(f"listing: no module generator/{name.replace('.', '/')}.py",
                           hint="use a module name such as 'attention' or 'science.lora'")
    return resolved


def _find(body: list[ast.stmt], name: str):
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.name == name:
            return node
    return None


def listing(module: str, qualname: str, package_dir: Path | None = None) -> str:
    """Source of the class or function ``qualname`` ('LoRALinear' or 'LoRALinear.forward')."""
    path = module_path(module, package_dir)
    return _extract(path, path.read_text(encoding="utf-8"), qualname, package_dir)


def _extract(path: Path, source: str, qualname: str, package_dir: Path | None,
             tree: ast.Module | None = None) -> str:
    tree = tree or ast.parse(source, filename=str(path))
    body: list[ast.stmt] = tree.body
    node = None
    rel = path.relative_to((package_dir or PACKAGE_DIR).resolve()).as_posix()
    for part in qualname.split("."):
        node = _find(body, part)
        if node is None:
            raise ContentError(f"listing: no class or function '{qualname}' in generator/{rel}",
                               hint="check the name in the listing(...) call")
        body = node.body
    lines = source.splitlines()
    # Decorators belong to the listing: they change what the definition means.
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    text = "\n".join(lines[first - 1: node.end_lineno])
    return textwrap.dedent(text)


class Listings:
    """``listing`` for one build context: each module is parsed once while its bytes stay the
    same (a body shows several listings of one module, once per output format)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.parsed: dict[str, tuple[str, str, ast.Module]] = {}    # path -> (sha, source, tree)

    def __call__(self, module: str, qualname: str) -> str:
        path = module_path(module)
        sha = self.ctx.hashes.sha256(path)
        seen = self.parsed.get(str(path))
        if seen is None or seen[0] != sha:
            source = path.read_text(encoding="utf-8")
            seen = (sha, source, ast.parse(source, filename=str(path)))
            self.parsed[str(path)] = seen
        return _extract(path, seen[1], qualname, None, seen[2])


def listings_of(ctx) -> Listings:
    return ctx.state("listings", Listings)
