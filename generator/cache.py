"""Content-addressed cache of drawn figures under .cache/lora-site/figures/<key>/.

A folder's name is the hash of everything that decided its PNGs (freeze.figure_inputs), so a hit
is correct by construction; folders appear atomically (written aside, then renamed), so a crashed
build never leaves half a set. Standard library only: a cache hit must not load matplotlib.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .fsio import sha256_bytes, sha256_file, write_bytes_atomic

INDEX = "index.json"


def figures_root(cache_dir: Path) -> Path:
    return Path(cache_dir) / "figures"


def load_figures(cache_dir: Path, key: str) -> dict[str, bytes] | None:
    """The cached PNGs of ``key``, or None when absent or damaged (then they are redrawn)."""
    folder = figures_root(cache_dir) / key
    try:
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        out = {}
        for name in sorted(index["files"]):
            data = (folder / name).read_bytes()
            if sha256_bytes(data) != index["files"][name]:
                return None
            out[name] = data
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_figures(cache_dir: Path, key: str, images: dict[str, bytes]) -> None:
    root = figures_root(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        for name in sorted(images):
            (tmp / name).write_bytes(images[name])
        index = {"files": {name: sha256_bytes(images[name]) for name in sorted(images)}}
        (tmp / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n",
                                 encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)     # a damaged copy (load_figures refused it)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def last_inputs(cache_dir: Path, stage: str, name: str) -> dict[str, Any] | None:
    """The inputs of the last time ``stage`` produced ``name`` here: to explain what changed."""
    try:
        return json.loads((Path(cache_dir) / "last" / f"{stage}-{name}.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None


def remember_inputs(cache_dir: Path, stage: str, name: str, inputs: dict[str, Any]) -> None:
    text = json.dumps(inputs, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(Path(cache_dir) / "last" / f"{stage}-{name}.json", text.encode("utf-8"))


def tree_hashes(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder``, in sorted order."""
    folder = Path(folder)
    out = {}
    if not folder.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and d != "__pycache__")
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            out[path.relative_to(folder).as_posix()] = sha256_file(path)
    return dict(sorted(out.items()))
