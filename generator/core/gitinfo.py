"""What git says about the project: the commit HEAD points at, and which files differ from it.

A code listing links to its source file at the commit that built the page
(``<repository>/blob/<commit>/<path>#L<start>-L<end>``). That link is honest only while the file
is byte for byte the committed one, so ``GitState.is_committed`` is false for a file that is
edited, staged but not committed, deleted or untracked (and for a file outside the repository);
such a listing names its file and lines with "uncommitted changes" and no link.

Best effort by design: no git executable, a folder that is not a work tree, a repository without
commits or a git that fails for any other reason all give None, never an error. Standard library
only: the build fingerprint reads the commit before anything heavy is imported. Variables that
point git at another repository (GIT_DIR, GIT_WORK_TREE, ...) are dropped, so a build run from a
git hook still asks about the project's own work tree.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

TIMEOUT_S = 20
# Environment variables that would make git answer about another repository or index.
_REDIRECTS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
              "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
              "GIT_PREFIX")


def _git(cwd: Path, *args: str) -> bytes | None:
    """git's stdout, or None when git is missing or fails."""
    exe = shutil.which("git")
    if exe is None:
        return None
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTS}
    env["GIT_OPTIONAL_LOCKS"] = "0"           # a status never writes the index
    try:
        proc = subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True,
                              timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


@dataclass(frozen=True)
class Head:
    toplevel: Path          # the work tree's root
    commit: str             # the full object id HEAD points at


def head(path: Path) -> Head | None:
    """The work tree holding ``path`` and its HEAD commit; None without git or commits."""
    folder = Path(path)
    if not folder.is_dir():
        folder = folder.parent
    out = _git(folder, "rev-parse", "--show-toplevel", "--verify", "HEAD^{commit}")
    if out is None:
        return None
    lines = os.fsdecode(out).splitlines()
    if len(lines) != 2:
        return None
    return Head(toplevel=Path(lines[0]).resolve(), commit=lines[1].strip())


@dataclass(frozen=True)
class GitState:
    """HEAD and the files under the build's folders that differ from it."""

    toplevel: Path
    commit: str
    committed: frozenset[str]       # paths in HEAD's tree, relative to toplevel ('a/b.py')
    changed: frozenset[str]         # modified, staged, deleted or untracked paths

    @property
    def short(self) -> str:
        return self.commit[:12]

    @property
    def dirty(self) -> bool:
        return bool(self.changed)

    def relpath(self, file: Path) -> str | None:
        """``file`` relative to the work tree ('generator/science/lora.py'), or None outside."""
        try:
            return Path(file).resolve().relative_to(self.toplevel).as_posix()
        except ValueError:
            return None

    def is_committed(self, file: Path) -> bool:
        """True when ``file`` is in HEAD and the work tree holds exactly that version."""
        rel = self.relpath(file)
        return rel is not None and rel in self.committed and rel not in self.changed


def _paths(out: bytes) -> list[str]:
    return [os.fsdecode(p) for p in out.split(b"\0") if p]


def git_state(path: Path, scopes: Iterable[Path]) -> GitState | None:
    """HEAD of the work tree holding ``path`` and which files under ``scopes`` (the folders a
    build reads) differ from it; None without git, a work tree or a commit."""
    found = head(path)
    if found is None:
        return None
    top = found.toplevel
    specs = []
    for scope in scopes:
        try:
            rel = Path(scope).resolve().relative_to(top).as_posix()
        except (ValueError, OSError):
            continue                        # outside this repository: nothing to say about it
        specs.append(rel or ".")
    specs = sorted(set(specs))
    if not specs:
        return GitState(top, found.commit, frozenset(), frozenset())
    tree = _git(top, "ls-tree", "-r", "-z", "--name-only", "--full-tree", found.commit, "--",
                *specs)
    status = _git(top, "status", "--porcelain=v1", "-z", "--untracked-files=all",
                  "--no-renames", "--ignore-submodules=all", "--", *specs)
    if tree is None or status is None:
        return None
    # Each status entry is 'XY path'; with --no-renames there is never a second path.
    changed = frozenset(entry[3:] for entry in _paths(status) if len(entry) > 3)
    return GitState(top, found.commit, frozenset(_paths(tree)), changed)
