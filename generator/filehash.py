"""File hashes, remembered by what stat says of the file.

Every build hashes its inputs (sources, posts, the freeze) and its outputs: ~200 files and
~10 MB, most of them unchanged since the last build. A hash is reused when the file's size,
mtime, ctime, inode and device are those it had when it was hashed. ctime cannot be set back
by tools (touch, cp -p and git set mtime only), and any write or rename moves it, so an edit is
always seen. One caveat, as for git's index: file times come from a coarse clock, so a file
written twice within one tick keeps its times; a hash is therefore only remembered for a file
that was already RACY_NS old when it was read (a fresh file is simply hashed again next time).
The memo lives in memory and, when use_hash_memo() names a file, on disk.

(fsio.sha256_file is the plain version; the experiments' own modules use that one, so this
module's changes never count as a change to the experiments.)
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .fsio import write_bytes_atomic

RACY_NS = 2_000_000_000
MEMO_FORMAT = 1
MEMO_MAX = 5000
_memo: dict[str, tuple[list[int], str]] = {}
_memo_path: Path | None = None
_memo_changed = False


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes (reused from the memo while the file's stat is unchanged)."""
    global _memo_changed
    name = os.path.abspath(path)
    with open(name, "rb") as fh:
        key = _stat_key(os.fstat(fh.fileno()))
        seen = _memo.get(name)
        if seen is not None and seen[0] == key:
            return seen[1]
        h = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    sha = h.hexdigest()
    import time

    _memo.pop(name, None)
    if time.time_ns() - max(key[1], key[2]) > RACY_NS:
        _memo[name] = (key, sha)        # re-inserted: the newest entries are at the end
        _memo_changed = True
    return sha


def use_hash_memo(path: Path | None) -> None:
    """Read remembered hashes from ``path`` (a JSON file; None: memory only). A missing,
    damaged or foreign file is an empty memo: the cost is hashing again, never a wrong hash."""
    import json

    global _memo_path
    _memo_path = Path(path) if path is not None else None
    if _memo_path is None:
        return
    try:
        doc = json.loads(_memo_path.read_text(encoding="utf-8"))
        entries = doc["entries"] if doc.get("format") == MEMO_FORMAT else {}
        for name, (key, sha) in entries.items():
            if (isinstance(name, str) and isinstance(sha, str) and len(sha) == 64
                    and isinstance(key, list) and len(key) == 5
                    and all(type(k) is int for k in key)):
                _memo.setdefault(name, (key, sha))
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        pass


def save_hash_memo() -> None:
    """Write the memo to the file use_hash_memo() named, if anything was added."""
    import json

    global _memo_changed
    if _memo_path is None or not _memo_changed:
        return
    entries = dict(list(_memo.items())[-MEMO_MAX:])     # insertion order: the newest kept
    text = json.dumps({"format": MEMO_FORMAT, "entries": entries}, sort_keys=True)
    try:
        write_bytes_atomic(_memo_path, text.encode("utf-8"))
        _memo_changed = False
    except OSError:
        pass            # a read-only cache folder costs speed, not correctness
