"""File hashes, remembered by what stat says of the file.

Every build hashes its inputs (sources, posts, the freeze) and its outputs: a few hundred files
and ~10 MB, most of them unchanged since the last build. A hash is reused when the file's size,
mtime, ctime, inode and device are those it had when it was hashed. ctime cannot be set back by
tools (touch, cp -p and git set mtime only), and any write or rename moves it, so an edit is
always seen. One caveat, as for git's index: file times come from a coarse clock, so a file
written twice within one tick keeps its times; a hash is therefore only remembered for a file
that was already RACY_NS old when it was read (a fresh file is simply hashed again next time).

A HashMemo lives in a build's context (core.context) and, when it names a file, on disk
between commands. fsio.sha256_file is the plain version.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from .fsio import write_bytes_atomic

RACY_NS = 2_000_000_000
MEMO_FORMAT = 1
MEMO_MAX = 5000
DATA_MAX = 64 << 20


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class HashMemo:
    """sha256 of files, remembered while each file's stat is unchanged."""

    def __init__(self, path: Path | None = None, *, racy_ns: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.racy_ns = RACY_NS if racy_ns is None else racy_ns
        self.entries: dict[str, tuple[list[int], str]] = {}
        self.changed = False
        # Bytes read through read(), in memory only: a warm context (the preview) reads the
        # same figures every build.
        self._data: dict[str, tuple[list[int], bytes]] = {}
        self._data_size = 0
        if self.path is not None:
            self._load()

    def _load(self) -> None:
        """A missing, damaged or foreign memo file is an empty memo: the cost is hashing again,
        never a wrong hash."""
        import json

        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            entries = doc["entries"] if doc.get("format") == MEMO_FORMAT else {}
            for name, (key, sha) in entries.items():
                if (isinstance(name, str) and isinstance(sha, str) and len(sha) == 64
                        and isinstance(key, list) and len(key) == 5
                        and all(type(k) is int for k in key)):
                    self.entries.setdefault(name, (key, sha))
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            pass

    def sha256(self, path: Path | str) -> str:
        """sha256 of a file's bytes (reused while the file's stat is unchanged)."""
        name = os.path.abspath(path)
        seen = self.entries.get(name)
        if seen is not None and seen[0] == _stat_key(os.stat(name)):
            return seen[1]                  # one stat, no open: the common case of a build
        with open(name, "rb") as fh:
            key = _stat_key(os.fstat(fh.fileno()))
            seen = self.entries.get(name)
            if seen is not None and seen[0] == key:
                return seen[1]
            h = hashlib.sha256()
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        sha = h.hexdigest()
        self.entries.pop(name, None)
        if time.time_ns() - max(key[1], key[2]) > self.racy_ns:
            self.entries[name] = (key, sha)     # re-inserted: the newest entries are at the end
            self.changed = True
        return sha

    def read(self, path: Path | str) -> bytes:
        """A file's bytes, kept in memory while its stat is unchanged, under the rule the
        hashes follow (a file younger than racy_ns is read again); its hash is remembered on
        the way. At most DATA_MAX bytes are kept, the newest."""
        name = os.path.abspath(path)
        seen = self._data.get(name)
        if seen is not None and seen[0] == _stat_key(os.stat(name)):
            return seen[1]
        with open(name, "rb") as fh:
            key = _stat_key(os.fstat(fh.fileno()))
            data = fh.read()
        if seen is not None:
            self._data_size -= len(seen[1])
            del self._data[name]
        if time.time_ns() - max(key[1], key[2]) > self.racy_ns:
            self._data[name] = (key, data)
            self._data_size += len(data)
            old = self.entries.get(name)
            if old is None or old[0] != key:
                self.entries.pop(name, None)
                self.entries[name] = (key, hashlib.sha256(data).hexdigest())
                self.changed = True
            while self._data_size > DATA_MAX:
                oldest = next(iter(self._data))
                self._data_size -= len(self._data.pop(oldest)[1])
        return data

    def tree(self, folder: Path | str, *, skip: tuple[str, ...] = (),
             suffix: str = "") -> dict[str, str]:
        """relative path -> sha256 of every file under ``folder`` (ending in ``suffix``), in
        sorted order; __pycache__ and folders named in ``skip`` are left out. os.walk and
        strings, not pathlib: a build hashes a few hundred files this way."""
        root = str(folder)
        out: dict[str, str] = {}
        if not os.path.isdir(root):
            return out
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in skip and d != "__pycache__")
            rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
            for filename in sorted(filenames):
                if suffix and not filename.endswith(suffix):
                    continue
                rel = filename if rel_dir == "." else f"{rel_dir}/{filename}"
                path = os.path.join(dirpath, filename)
                if os.path.islink(path) and not os.path.exists(path):
                    # A dangling link (an editor's lock file, .#post.md): its target is all
                    # there is to compare.
                    out[rel] = "link:" + os.readlink(path)
                    continue
                out[rel] = self.sha256(path)
        return dict(sorted(out.items()))

    def save(self) -> None:
        """Write the memo to its file, if anything was added."""
        import json

        if self.path is None or not self.changed:
            return
        entries = dict(list(self.entries.items())[-MEMO_MAX:])     # insertion order: newest kept
        text = json.dumps({"format": MEMO_FORMAT, "entries": entries}, sort_keys=True)
        try:
            write_bytes_atomic(self.path, text.encode("utf-8"))
            self.changed = False
        except OSError:
            pass            # a read-only cache folder costs speed, not correctness
