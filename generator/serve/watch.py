"""What the preview watches, and the watcher: operating-system notifications (inotify, FSEvents,
ReadDirectoryChangesW) through watchfiles, never polling.

watchfiles groups the events of one save: it hands over a batch once QUIET_MS pass with no new
event (at most GROUP_MS after the first), so an editor that writes a temporary file, renames it
and touches a backup costs one rebuild. Edits made while a build runs pile up in the server
and are built together after it (serve/__init__.py), which is where most coalescing happens.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Callable, Iterable

from ..core.project import Project

QUIET_MS = 2            # a save's events come within a millisecond or two of each other
GROUP_MS = 400          # a long burst (a checkout) is still handed over in pieces this long
IDLE_MS = 100
WATCHED = ("content", "templates")
# Folders no build reads, or that builds write: never a reason to rebuild.
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", ".cache", "site", "__pycache__",
                          "node_modules", ".venv", ".pytest_cache", ".mypy_cache",
                          ".hypothesis", ".idea", ".vscode"})
# Editors' temporary and backup files: vim (.x.swp, 4913, x~), emacs (#x#, .#x), JetBrains
# (x___jb_tmp___), Kate (.x.kate-swp), GNOME (.goutputstream-*), Chromium-based editors
# (x.crswap), and every dot-file (our own atomic writes use .<name>.<random>.tmp).
_TEMP = re.compile(r"^\.|~$|^#.*#$|^4913$|\.sw[a-z]$|\.tmp$|\.bak$|___jb_(tmp|old)___$|"
                   r"\.kate-swp$|\.crswap$|\.py[cod]$")


def package_root(project: Project) -> Path:
    """The generator package a build of this project runs: the project's own copy when it has
    one (``python -m generator`` in the project folder imports it first), else this one."""
    own = project.root / "generator"
    return own if (own / "__init__.py").is_file() else Path(__file__).resolve().parents[1]


def watched_roots(project: Project) -> list[Path]:
    """content/, templates/, the generator package that builds and its default templates."""
    package = package_root(project)
    roots = [project.root / name for name in WATCHED] + [package]
    defaults = package.parent / "templates"
    if defaults.is_dir() and defaults.resolve() != (project.root / "templates").resolve():
        roots.append(defaults)
    return roots


# The folders a build fills before swapping them in whole (core.swap: .<name>.build-*, and the
# .<name>.old-* it moves the last one to): a build writes them, none reads them.
_SWAP = re.compile(r"^\..+\.(build|old)-[A-Za-z0-9_]+$")


def ignored(path: str) -> bool:
    """Whether a change to ``path`` can never change a build (temporary files, caches,
    outputs)."""
    parts = path.split(os.sep)
    return _TEMP.search(parts[-1]) is not None or any(
        p in IGNORED_DIRS or _SWAP.match(p) for p in parts[:-1])


def is_code(path: str, package: Path, extra: Iterable[str] = ()) -> bool:
    """A source file of the running build (the package, or a project's own kind module):
    a warm process cannot take it in."""
    if path in extra:
        return True
    return path.endswith(".py") and Path(path).is_relative_to(package)


class _Stop:
    """Stops the watch loop when the server stops, or when the watched folders must change."""

    def __init__(self, stop: threading.Event, again: threading.Event) -> None:
        self.stop, self.again = stop, again

    def is_set(self) -> bool:
        return self.stop.is_set() or self.again.is_set()


class Watcher:
    """Calls ``on_change(paths)`` for each batch of relevant changes under ``roots()``
    (``recursive``: in their subfolders too), from a thread of its own, until ``stop()``.
    ``rewatch()`` re-reads the roots."""

    def __init__(self, roots: Callable[[], list[Path]],
                 on_change: Callable[[set[str]], None], *, recursive: bool = True) -> None:
        self.roots, self.on_change, self.recursive = roots, on_change, recursive
        self._stop, self._again = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lora-site watch", daemon=True)
        self._thread.start()

    def rewatch(self) -> None:
        self._again.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import watchfiles

        while not self._stop.is_set():
            self._again.clear()
            roots = sorted({str(r) for r in self.roots() if r.is_dir()})
            if not roots:
                self._again.wait(IDLE_MS / 1000)    # until rewatch() brings some
                continue
            # force_polling=False: notifications, even where WATCHFILES_FORCE_POLLING is set.
            # An empty batch every IDLE_MS while nothing changes: the first one says the
            # notifications are in place (ready), and the loop sees the stop flag.
            for batch in watchfiles.watch(*roots, watch_filter=lambda _c, p: not ignored(p),
                                          debounce=GROUP_MS, step=QUIET_MS,
                                          stop_event=_Stop(self._stop, self._again),
                                          rust_timeout=IDLE_MS, yield_on_timeout=True,
                                          force_polling=False, raise_interrupt=False,
                                          recursive=self.recursive):
                self.ready.set()
                paths = {p for _change, p in batch}
                if paths:
                    self.on_change(paths)
