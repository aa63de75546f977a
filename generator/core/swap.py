"""Replacing a whole folder by a complete new one, atomically and recoverably.

Used for site/ (publish.tree) and for content/_freeze (stages.store). The new folder is written
beside the old one as ``.<name>.build-*``; the swap is two renames: the old folder into
``.<name>.old-*/site``, the new one into its place. A process killed between the two leaves the
old folder aside, and ``recover`` (called with the build lock held) puts it back; any other
leftover is half-written and is removed.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

KEPT = "site"       # the name the previous folder has inside its .<name>.old-* holder


def leftovers(out: Path) -> list[Path]:
    """Temporary folders a killed process (SIGKILL, power loss) left beside ``out``."""
    parent = out.parent
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir()
                  if p.name.startswith((f".{out.name}.build-", f".{out.name}.old-")))


def recover(out: Path) -> None:
    """Undo what a killed swap left behind; call with the build lock held.

    A process killed between the two renames has moved the previous folder into
    .<name>.old-*/ and not yet put the new one in place: the previous one is put back. Every
    other leftover (a half-written .<name>.build-* folder) is removed."""
    out = Path(out)
    for leftover in leftovers(out):
        kept = leftover / KEPT
        if leftover.name.startswith(f".{out.name}.old-") and kept.exists() \
                and not (out.exists() or out.is_symlink()):
            os.rename(kept, out)
        shutil.rmtree(leftover, ignore_errors=True)


def new_folder_beside(out: Path) -> Path:
    """An empty private folder beside ``out`` to write the new version into."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM until the block ends, then act on them: a swap and the cleanup
    after a failure must not stop halfway. Python runs signal handlers in the main thread only,
    so elsewhere this does nothing."""
    import signal

    caught: list[int] = []
    try:
        old = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
               for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:              # not the main thread
        old = None
    try:
        yield
    finally:
        if old is not None:
            for s, handler in old.items():
                signal.signal(s, handler)
            if caught:
                handler = old[caught[0]]
                if callable(handler):
                    handler(caught[0], None)
                elif handler == signal.SIG_DFL:
                    os.kill(os.getpid(), caught[0])


def swap_in(new: Path, out: Path) -> Path | None:
    """Put the complete folder ``new`` in place of ``out``; returns the holder of the previous
    ``out`` (None if there was none), to be removed with ``discard`` once all is done or put
    back with ``undo``. Call with signals deferred."""
    old = None
    if out.exists() or out.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rename(out, old / KEPT)
    try:
        os.rename(new, out)
    except BaseException:
        undo(new, old, out)
        raise
    return old


def undo(new: Path, old: Path | None, out: Path) -> None:
    """After a failed write, before the swap: drop the new folder, put the previous one back if
    it was moved."""
    shutil.rmtree(new, ignore_errors=True)
    if old is None:
        return
    kept = old / KEPT
    if kept.exists() or kept.is_symlink():
        if out.exists() or out.is_symlink():
            return                  # cannot happen; keep both rather than lose one
        os.rename(kept, out)
    shutil.rmtree(old, ignore_errors=True)


def swap_back(old: Path | None, out: Path) -> None:
    """After a completed ``swap_in``: put the previous folder back (the new one is removed)."""
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    if out.exists() or out.is_symlink():
        os.rename(out, trash / KEPT)
    if old is not None and (old / KEPT).exists():
        os.rename(old / KEPT, out)
    shutil.rmtree(trash, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def discard(old: Path | None) -> None:
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
