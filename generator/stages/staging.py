"""New results and figures wait outside content/_freeze until the whole build has succeeded.

content/_freeze is tracked by git, so a failed build must leave it exactly as it was. A result
computed by a build is therefore written to the results cache, .cache/lora-site/results/<key>/
(the stages read it from there: the figure worker draws from that folder); figures are kept in
memory. When the build has rendered every page, ``prepare_freeze`` writes the whole new
content/_freeze beside the old one (unchanged files hard-linked, so it costs little) and the
commit swaps it in with two renames, in the same uninterruptible step as site/ (core.swap).

The results cache is also what makes a failed build cheap to repeat: a result whose inputs did
not change since a build that computed it and then failed (a typo in the prose) is taken from
there instead of being trained again. Once committed, a set is retired (the freeze holds it).
Standard library only.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from ..core.errors import ResultsError
from ..core.fsio import sha256_bytes
from ..core.oserror import os_hint, os_reason
from ..core.swap import discard, new_folder_beside, swap_back, swap_in

RESULTS_DIR = "results"
INDEX = "index.json"
KEEP_RESULT_SETS = 8


class ResultsCache:
    """Result files by key, in folders that appear whole (written aside, then renamed)."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / RESULTS_DIR

    def get(self, key: str, names: tuple[str, ...]) -> dict[str, bytes] | None:
        """The files ``names`` stored under ``key``, or None when absent or damaged."""
        folder = self.root / key
        try:
            index = json.loads((folder / INDEX).read_text(encoding="utf-8"))["files"]
            out = {}
            for name in names:
                data = (folder / name).read_bytes()
                if sha256_bytes(data) != index[name]:
                    return None
                out[name] = data
            os.utime(folder)                # recently used: kept by prune
            return out
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, files: Mapping[str, bytes]) -> Path:
        """Store ``files`` under ``key`` (kept as they are when already there) and return the
        folder. A full disk is a ResultsError naming the folder."""
        final = self.root / key
        if self.get(key, tuple(sorted(files))) == dict(files):
            return final
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
            try:
                for name in sorted(files):
                    (tmp / name).write_bytes(files[name])
                    os.chmod(tmp / name, 0o644)
                index = {"files": {n: sha256_bytes(files[n]) for n in sorted(files)}}
                (tmp / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n",
                                         encoding="utf-8")
                if final.exists():
                    shutil.rmtree(final)     # a damaged copy (get refused it)
                os.rename(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        except OSError as exc:
            raise ResultsError(f"cannot keep the new results: {os_reason(exc)}",
                               path=exc.filename or final, hint=os_hint(exc)) from None
        return final

    def retire(self, folder: Path) -> None:
        """The set in ``folder`` is committed now: never offered again (the freeze holds it),
        but left readable for whatever loaded it, until pruned."""
        try:
            (Path(folder) / INDEX).unlink()
        except OSError:
            pass

    def prune(self, keep: int = KEEP_RESULT_SETS, protect: set[Path] = frozenset()) -> None:
        """Remove all but the ``keep`` most recently used sets (never one in ``protect``)."""
        if not self.root.is_dir():
            return
        sets = sorted((p for p in self.root.iterdir()
                       if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
        for old in sets[keep:]:
            if old not in protect:
                shutil.rmtree(old, ignore_errors=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)           # the same bytes, the same inode: nothing to copy
    except OSError:
        shutil.copy2(src, dst)


@dataclass
class FreezeCommit:
    """A new content/_freeze written completely beside the old one (``new``); only renames
    are left. swap() puts it in place, rollback() puts the old one back after a swap, finish()
    forgets the old one, abandon() drops the new one before a swap."""

    root: Path
    new: Path
    old: Path | None = None
    swapped: bool = False
    on_done: Callable[[], None] | None = None      # told once the new freeze is in place

    def swap(self) -> None:
        try:
            self.old = swap_in(self.new, self.root)
        except OSError as exc:
            raise ResultsError(f"cannot put the new freeze in place: {os_reason(exc)}",
                               path=self.root, hint=os_hint(exc)) from None
        self.swapped = True

    def rollback(self) -> None:
        if self.swapped:
            swap_back(self.old, self.root)
            self.swapped, self.old = False, None

    def finish(self) -> None:
        discard(self.old)
        self.old = None
        if self.swapped and self.on_done is not None:
            self.on_done()

    def abandon(self) -> None:
        if not self.swapped:
            shutil.rmtree(self.new, ignore_errors=True)


def prepare_freeze(root: Path, manifest: tuple[str, bytes],
                   results: Mapping[str, tuple[Path, tuple[str, ...]]],
                   figures: Mapping[str, tuple[str, Mapping[str, bytes]]]) -> FreezeCommit:
    """Write the new freeze beside ``root``: what is there now (hard-linked), with each
    results[name] = (folder, file names) copied into <name>/, each figures[name] = (folder
    name, {file: bytes}) replacing <name>/<folder>/, and manifest = (file name, bytes). Any
    failure (a full disk) removes the new folder and is a ResultsError naming the path: the
    freeze is then untouched."""
    root = Path(root)
    replaced = {manifest[0]} | {f"{name}/{f}" for name, (_, names) in results.items()
                                for f in names}
    dropped = tuple(f"{name}/{sub}/" for name, (sub, _) in figures.items())
    new: Path | None = None
    try:
        new = new_folder_beside(root)
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                rel_dir = os.path.relpath(dirpath, root)
                rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
                if rel_dir.startswith(dropped):
                    continue
                (new / rel_dir).mkdir(exist_ok=True)
                for name in sorted(filenames):
                    if rel_dir + name not in replaced:
                        _link_or_copy(Path(dirpath) / name, new / rel_dir / name)
        for name, (folder, names) in sorted(results.items()):
            (new / name).mkdir(exist_ok=True)
            for f in names:
                shutil.copyfile(Path(folder) / f, new / name / f)
        for name, (sub, images) in sorted(figures.items()):
            target = new / name / sub
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for f in sorted(images):
                (target / f).write_bytes(images[f])
        (new / manifest[0]).write_bytes(manifest[1])
        for dirpath, dirnames, filenames in os.walk(new):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path) and os.stat(path).st_nlink == 1:
                    os.chmod(path, 0o644)   # a linked file keeps the committed file's mode
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else root
        if new is not None:
            shutil.rmtree(new, ignore_errors=True)
            if where.is_relative_to(new):
                where = root / where.relative_to(new)       # the file it was to become
        raise ResultsError(f"cannot write the new freeze: {os_reason(exc)}", path=where,
                           hint=f"{os_hint(exc)}; content/_freeze was not changed") from None
    return FreezeCommit(root, new)
