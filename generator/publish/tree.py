"""Writing site/: the one place that touches the output folder, atomically and recoverably."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Collection, Mapping, Protocol

from ..core.errors import BuildError
from ..core.swap import discard, recover, signals_deferred, swap_in, undo
from .lock import failpoint

# Re-exported: the names this module has always offered.
__all__ = ["probe_output", "recover_output", "signals_deferred", "write_tree"]


def recover_output(out: Path) -> None:
    """Undo what a killed build left behind beside ``out`` (core.swap.recover); call with the
    build lock held."""
    recover(out)


def probe_output(out: Path) -> None:
    """Fail before any work when the output folder cannot be written: the build writes a folder
    beside ``out`` and renames it, so that is what is tried here."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BuildError("the output exists and is not a folder", path=out,
                         hint="move that file away or choose another folder with --out")
    blocker = next((a for a in out.parents if a.exists() or a.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        raise BuildError(f"the output folder cannot be written: {blocker} is not a folder",
                         path=out, hint="choose another folder with --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent)
        # A running build's clean-up of leftovers may have removed it already: no matter.
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(probe)
    except OSError as exc:
        raise BuildError(f"the output folder cannot be written: {exc.strerror or exc}",
                         path=out, hint="choose a writable folder with --out or fix the "
                                        "permissions of its parent") from None


class Alongside(Protocol):
    """Another folder swapped in the same uninterruptible step as site/ (the freeze's commit,
    stages.store.FreezeCommit): everything written beforehand, only renames left."""

    def swap(self) -> None: ...
    def rollback(self) -> None: ...
    def finish(self) -> None: ...


def write_tree(out: Path, files: Mapping[str, bytes], *,
               alongside: Alongside | None = None, same: Collection[str] = ()) -> None:
    """Write ``files`` (relative path -> bytes) as the folder ``out``, atomically: everything goes
    into a temporary folder beside ``out``, which replaces ``out`` only once complete. On any
    failure or interruption the temporary folder is removed and the previous ``out`` is left as
    it was. (A build killed outright leaves its temporary folder; ``recover_output`` removes it
    at the next build.)

    alongside: swapped in just before ``out``, with the same signals held, and swapped back if
    ``out`` then cannot be: both change, or neither.

    same: paths whose file in the current ``out`` already holds exactly these bytes (the caller
    vouches for it, see OutputMemo): they are hard-linked into the new folder instead of
    written, which costs a fraction of creating a file. Nothing ever writes into a file once it
    is in place, so the old and the new folder can share it."""
    out = Path(out)
    parent = out.parent
    if out.exists() and not out.is_dir():
        raise BuildError("the output exists and is not a folder", path=out,
                         hint="move that file away or choose another folder with --out")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=parent))
    except OSError as exc:
        raise BuildError(f"cannot create a folder beside the output: {exc.strerror}",
                         path=parent, hint="check that the folder is writable") from None
    old = None
    moved = False                   # whether ``alongside`` was swapped in
    try:
        made = {tmp}
        for rel in sorted(files):
            # Checked on the name, not by resolving every path (a syscall per folder level):
            # the temporary folder is new, so it holds no symlink a name could follow.
            parts = PurePosixPath(rel).parts
            if not parts or PurePosixPath(rel).is_absolute() or any(
                    p in ("..", ".", "") or "\\" in p for p in parts):
                raise BuildError(f"refusing to write outside the output folder: {rel}")
            target = tmp.joinpath(*parts)
            for folder in reversed(target.parents[: len(parts) - 1]):
                if folder not in made:
                    folder.mkdir(exist_ok=True)
                    made.add(folder)
            if rel in same:
                try:
                    os.link(out.joinpath(*parts), target)
                    continue
                except OSError:
                    pass                            # gone, or another file system: write it
            with open(target, "xb") as fh:
                fh.write(files[rel])
                os.fchmod(fh.fileno(), 0o644)       # whatever the umask: ordinary public files
        for path in made:
            os.chmod(path, 0o755)                   # mkdtemp makes the top folder private
        failpoint("write")
        with signals_deferred():
            if alongside is not None:
                alongside.swap()
                moved = True
            old = swap_in(tmp, out)
    except OSError as exc:
        with signals_deferred():
            undo(tmp, old, out)
            if moved:
                alongside.rollback()
        raise BuildError(f"cannot write the site: {exc.strerror or exc}", path=out,
                         hint="check free space and permissions") from None
    except BaseException:
        with signals_deferred():
            undo(tmp, old, out)
            if moved:
                alongside.rollback()
        raise
    discard(old)
    if alongside is not None:
        alongside.finish()


def _stamp(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class OutputMemo:
    """What this context last wrote to each output folder, to tell write_tree which files are
    already in place: a file counts only while its bytes equal the new ones and its stat (size,
    times, inode, device) is the one it had just after the write, so a file changed or replaced
    by anyone since is written again. A warm build context (the preview) keeps one; a command
    that builds once never has a previous build to compare with."""

    def __init__(self, ctx=None) -> None:
        self.written: dict[str, dict[str, tuple[tuple[int, ...] | None, bytes]]] = {}

    def same(self, out: Path, files: Mapping[str, bytes]) -> set[str]:
        before = self.written.get(str(out), {})
        found = set()
        for rel, data in files.items():
            seen = before.get(rel)
            if seen is not None and seen[1] == data and seen[0] is not None \
                    and seen[0] == _stamp(os.path.join(out, rel)):
                found.add(rel)
        return found

    def wrote(self, out: Path, files: Mapping[str, bytes]) -> None:
        self.written[str(out)] = {rel: (_stamp(os.path.join(out, rel)), data)
                                  for rel, data in files.items()}

    def forget(self, out: Path) -> None:
        self.written.pop(str(out), None)

    def wrote_last(self, out: Path) -> bool:
        """Whether this context's last build wrote ``out`` (so it was writable a moment
        ago, and need not be probed again)."""
        return str(out) in self.written
