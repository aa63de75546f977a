"""Code listings taken from the package's own source, so the article shows the code that ran.

``listing("attention", "TinySelfAttention")`` returns the source text of that class as it
stands in generator/science/attention.py (decorators included, dedented). A module is named by
its dotted path inside the package ('science.attention', 'generator.science.attention') or by
its short name when exactly one module has it ('attention'). The file is parsed with ``ast`` and
never imported, so a listing of torch code does not import torch. Only modules of this package
can be read: a name that would leave the package folder is refused.

In a post, ``{{ listing("lora", "LoRALinear") }}`` on a line of its own is a whole code block
(``ListingHelper``): the fenced code inside a <figure>, folded into <details> when it is longer
than FOLD_LINES lines (or as ``fold=True``/``fold=False`` says), and a caption naming the file
and lines, linked to ``<repository>/blob/<commit>/<path>#L<first>-L<last>`` when site.yml names
the repository and the file is exactly as committed (core.gitinfo).
"""
from __future__ import annotations

import ast
import os
import re
import textwrap
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

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


@dataclass(frozen=True)
class Source:
    """One class or function as it stands in the package's source."""

    text: str           # dedented, decorators included, no trailing newline
    path: Path          # the module's file (resolved)
    rel: str            # its path inside the package folder's parent: 'generator/science/lora.py'
    qualname: str       # 'LoRALinear' or 'LoRALinear.forward'
    first: int          # the first line in the file (its first decorator, if any)
    last: int           # the last line

    @property
    def lines(self) -> int:
        return self.last - self.first + 1


def find_source(module: str, qualname: str, package_dir: Path | None = None) -> Source:
    """Where the class or function ``qualname`` ('LoRALinear' or 'LoRALinear.forward') is, and
    its text."""
    path = module_path(module, package_dir)
    return _extract(path, path.read_text(encoding="utf-8"), qualname, package_dir)


def _extract(path: Path, source: str, qualname: str, package_dir: Path | None,
             tree: ast.Module | None = None) -> Source:
    tree = tree or ast.parse(source, filename=str(path))
    body: list[ast.stmt] = tree.body
    node = None
    root = (package_dir or PACKAGE_DIR).resolve()
    rel = path.relative_to(root).as_posix()
    for part in qualname.split("."):
        node = _find(body, part)
        if node is None:
            raise ContentError(f"listing: no class or function '{qualname}' in generator/{rel}",
                               hint="check the name in the listing(...) call")
        body = node.body
    lines = source.splitlines()
    # Decorators belong to the listing: they change what the definition means.
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    text = textwrap.dedent("\n".join(lines[first - 1: node.end_lineno]))
    return Source(text=text, path=path, rel=f"{root.name}/{rel}", qualname=qualname,
                  first=first, last=node.end_lineno)



class Listings:
    """The sources listings show, for one build context: each module is parsed once while its
    bytes stay the same (a body shows several listings of one module, once per output format,
    and a prose edit re-renders with the parse kept)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.parsed: dict[str, tuple[str, str, ast.Module]] = {}    # path -> (sha, source, tree)

    def source(self, module: str, qualname: str) -> Source:
        path = module_path(module)
        sha = self.ctx.hashes.sha256(path)
        seen = self.parsed.get(str(path))
        if seen is None or seen[0] != sha:
            source = path.read_text(encoding="utf-8")
            seen = (sha, source, ast.parse(source, filename=str(path)))
            self.parsed[str(path)] = seen
        return _extract(path, seen[1], qualname, None, seen[2])

    def __call__(self, module: str, qualname: str) -> str:
        return self.source(module, qualname).text


def listings_of(ctx) -> Listings:
    return ctx.state("listings", Listings)


def listing(module: str, qualname: str, package_dir: Path | None = None) -> str:
    """Source of the class or function ``qualname`` ('LoRALinear' or 'LoRALinear.forward')."""
    return find_source(module, qualname, package_dir).text


# ---------------------------------------------------------------------------------------------
# The listing block a post shows: {{ listing("lora", "LoRALinear") }}

# A listing longer than this many lines is folded (a <details> whose summary names it) unless
# the post says fold=False. 25 lines of code are about half a desktop screen: the 19-line model
# the article walks through stays in view, the 54- and 66-line classes and loops fold.
FOLD_LINES = 25
# The class every listing block opens with: a fence around {{ listing() }} is found by it.
LISTING_CLASS = "listing"


def _fence_for(code: str) -> str:
    """Backticks one longer than any run of backticks that opens a line of the code, so no
    line of it can close the fence."""
    runs = [len(line.strip()) for line in code.split("\n")
            if line.strip() and set(line.strip()) == {"`"}]
    return "`" * max([3] + [r + 1 for r in runs])


def _lines_text(src: Source) -> str:
    return f"line {src.first}" if src.first == src.last else f"lines {src.first}\u2013{src.last}"


def source_caption(src: Source, repository: str, git) -> str:
    """The caption under a listing (HTML): its file and lines, linked to the file at the commit
    that built the page when that is known and the file is exactly the committed one.

    git: a core.gitinfo.GitState or None. Without a repository setting, or git, nothing is
    linked; a file that differs from HEAD (edited, staged, untracked) says so and is not linked,
    since the lines at the commit are not the lines shown."""
    where = f"<code>{escape(src.rel)}</code>, {_lines_text(src)}"
    rel = git.relpath(src.path) if (repository and git is not None) else None
    if rel is None:
        return where
    if not git.is_committed(src.path):
        return f"{where} (uncommitted changes: no link to the repository)"
    url = (f"{repository}/blob/{git.commit}/{quote(rel)}#L{src.first}"
           + (f"-L{src.last}" if src.last != src.first else ""))
    return (f'<a href="{escape(url, quote=True)}">{where}</a> at commit '
            f"<code>{escape(git.short)}</code>")


def listing_block(src: Source, *, fold: bool, caption: str, language: str = "python") -> str:
    """The Markdown of one listing, read alike by Python-Markdown (md_in_html) and kramdown
    (markdown="1"): a <figure> holding the fenced code, folded inside <details> when ``fold``,
    with the caption after it (naming the function too when nothing is folded). Every line of
    the HTML starts with '<', so nothing in it reads as Markdown (a list, a paragraph) to either
    engine."""
    fence = _fence_for(src.text)
    code = f"{fence}{language}\n{src.text}\n{fence}"
    name = f"<code>{escape(src.qualname)}</code>"
    parts = [f'<figure class="{LISTING_CLASS}" markdown="1">']
    if fold:
        parts += ['<details class="listing-fold" markdown="1">',
                  f"<summary>{name} from <code>{escape(src.rel)}</code> "
                  f"({src.lines} lines)</summary>", "", code, "", "</details>"]
    else:
        # Unfolded, the caption names the function (folded, the summary does).
        parts += ["", code, ""]
        caption = f"{name}: {caption}"
    parts += [f'<figcaption class="listing-source">{caption}</figcaption>', "</figure>"]
    return "\n" + "\n".join(parts) + "\n"


class ListingHelper:
    """``{{ listing("lora", "LoRALinear") }}`` in a post: the code block, folded when longer
    than FOLD_LINES lines (``fold=True`` or ``fold=False`` decides instead), with a caption
    naming its file and lines, linked to the repository at the build's commit when it can be.

    site: the settings (their ``repository``); git: a core.gitinfo.GitState or None."""

    def __init__(self, site, git=None, package_dir: Path | None = None,
                 fold_lines: int = FOLD_LINES, sources=None) -> None:
        self.repository = getattr(site, "repository", "") or ""
        self.git, self.package_dir, self.fold_lines = git, package_dir, fold_lines
        # (module, name) -> Source, parsed once per build (Listings.source); only for the
        # package's own folder.
        self.sources = sources if package_dir is None else None

    def __call__(self, module: str, qualname: str, fold: bool | None = None) -> str:
        if fold is not None and not isinstance(fold, bool):
            raise ContentError(f"listing: fold must be true or false, got {fold!r}",
                               hint="write fold=True or fold=False, or leave it out")
        src = (self.sources(module, qualname) if self.sources is not None
               else find_source(module, qualname, self.package_dir))
        folded = src.lines > self.fold_lines if fold is None else fold
        return listing_block(src, fold=folded,
                             caption=source_caption(src, self.repository, self.git))
