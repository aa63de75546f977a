"""Content-addressed cache of drawn figures under .cache/lora-site/figures/<key>/.

A folder's name is the hash of everything that decided its PNGs (the figures stage's inputs),
so a hit is correct by construction; folders appear atomically (written aside, then renamed),
so a crashed build never leaves half a set. Standard library only: a cache hit must not load
matplotlib. Also remembers the inputs each experiment's figures were last drawn from, to say
what changed when they are drawn again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core.fsio import sha256_bytes, write_bytes_atomic

INDEX = "index.json"
KEEP_FIGURE_SETS = 12


class FigureCache:
    """hashes: a build context's core.filehash.HashMemo, to read a figure set once while its
    files stay as they are (a warm context loads the same set every build)."""

    def __init__(self, cache_dir: Path, hashes=None) -> None:
        self.cache_dir = Path(cache_dir)
        self.root = self.cache_dir / "figures"
        self.hashes = hashes

    def load(self, key: str) -> dict[str, bytes] | None:
        """The cached PNGs of ``key``, or None when absent or damaged (then they are redrawn)."""
        folder = self.root / key
        try:
            index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
            out = {}
            for name in sorted(index["files"]):
                if self.hashes is not None:
                    data = self.hashes.read(folder / name)
                    sha = self.hashes.sha256(folder / name)
                else:
                    data = (folder / name).read_bytes()
                    sha = sha256_bytes(data)
                if sha != index["files"][name]:
                    return None
                out[name] = data
            return out
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, key: str, images: dict[str, bytes]) -> None:
        import shutil
        import tempfile

        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / key
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            for name in sorted(images):
                (tmp / name).write_bytes(images[name])
            index = {"files": {name: sha256_bytes(images[name]) for name in sorted(images)}}
            (tmp / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n",
                                     encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)     # a damaged copy (load refused it)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.prune()

    def prune(self, keep: int = KEEP_FIGURE_SETS) -> list[str]:
        """Remove all but the ``keep`` most recently stored figure sets (each is about a
        megabyte; the committed freeze holds the current ones anyway). Returns the keys
        removed."""
        sets = sorted((p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
        import shutil

        removed = []
        for old in sets[keep:]:
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old.name)
        return removed

    def last_inputs(self, stage: str, name: str) -> dict[str, Any] | None:
        """The inputs of the last time ``stage`` produced ``name`` here: to explain what
        changed."""
        try:
            return json.loads((self.cache_dir / "last" / f"{stage}-{name}.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None

    def remember_inputs(self, stage: str, name: str, inputs: dict[str, Any]) -> None:
        if self.last_inputs(stage, name) == inputs:
            return
        text = json.dumps(inputs, indent=2, sort_keys=True) + "\n"
        write_bytes_atomic(self.cache_dir / "last" / f"{stage}-{name}.json", text.encode("utf-8"))
