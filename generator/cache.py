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

from .filehash import sha256_file
from .fsio import sha256_bytes, write_bytes_atomic

INDEX = "index.json"
KEEP_FIGURE_SETS = 12


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
    prune_figures(cache_dir)


def prune_figures(cache_dir: Path, keep: int = KEEP_FIGURE_SETS) -> list[str]:
    """Remove all but the ``keep`` most recently stored figure sets (each is about a megabyte;
    the committed freeze holds the current ones anyway). Returns the keys removed."""
    root = figures_root(cache_dir)
    sets = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
    removed = []
    for old in sets[keep:]:
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old.name)
    return removed


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
    root = str(folder)
    out = {}
    if not os.path.isdir(root):
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and d != "__pycache__")
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        for filename in sorted(filenames):
            rel = filename if rel_dir == "." else f"{rel_dir}/{filename}"
            out[rel] = sha256_file(os.path.join(dirpath, filename))
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------------
# The whole-build fingerprint: a no-op rebuild returns before importing anything heavy

BUILD_RECORD = "build.json"
# Environment variables that can change what a build writes.
BUILD_ENV = ("SOURCE_DATE_EPOCH", "LORA_SITE_REQUIRE_CLIENTS")
FREEZE_PREFIX = "content/_freeze/"


def _input_files(project) -> dict[str, str]:
    """label/relative path -> sha256 of every file a build reads: content/ (posts, settings and
    the freeze), the templates (the project's and the package's defaults), the generator
    package that runs, and the lock."""
    from .freeze import package_dir

    pkg = package_dir()
    folders = [("content", project.content), ("templates", project.templates),
               ("generator", pkg), ("package-templates", pkg.parent / "templates")]
    files: dict[str, str] = {}
    seen: set[Path] = set()
    for label, folder in folders:
        try:
            real = Path(folder).resolve()
        except OSError:
            continue
        if real in seen:
            continue    # the repository's templates/ is both the project's and the package's
        seen.add(real)
        for rel, sha in tree_hashes(folder).items():
            files[f"{label}/{rel}"] = sha
    lock = Path(project.root) / "requirements.lock"
    if lock.is_file():
        files["requirements.lock"] = sha256_file(lock)
    return dict(sorted(files.items()))


class BuildFingerprint:
    """Everything a build depends on, hashed, plus the hashes of what it wrote.

    ``unchanged()`` is true when the inputs equal those of the last successful build *and* the
    output folder still holds exactly what that build wrote; then there is nothing to do.
    """

    def __init__(self, project, out: Path, options: dict[str, Any]) -> None:
        import sys

        from . import numerics
        from .freeze import digest, installed_distributions

        self.project, self.out = project, Path(out)
        self.record_path = Path(project.cache) / BUILD_RECORD
        self.inputs = {
            "format": 1,
            "options": options,
            "out": str(self.out.resolve()),
            "python": sys.version,
            "executable": sys.executable,
            "libraries": installed_distributions(),
            "env": {k: os.environ.get(k) for k in BUILD_ENV},
            "numerics": numerics.key(),
            "files": _input_files(project),
        }
        self.key = digest(self.inputs)

    def _last(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def changes(self) -> list[str]:
        """Why a build is needed (empty when nothing changed)."""
        last = self._last()
        if not last or "inputs" not in last:
            return ["no record of a previous build"]
        old = last["inputs"]
        reasons = []
        if old.get("files") != self.inputs["files"]:
            a, b = old.get("files", {}), self.inputs["files"]
            changed = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
            shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more"
                                              if len(changed) > 4 else "")
            reasons.append(f"changed: {shown}")
        for name in ("options", "out", "python", "executable", "libraries", "env", "numerics"):
            if old.get(name) != self.inputs[name]:
                reasons.append(f"{name} changed")
        if not reasons and last.get("outputs") != tree_hashes(self.out):
            reasons.append(f"{self.out} differs from what the last build wrote")
        return reasons

    def stages(self) -> list[str]:
        """The stages the last build reported ('run main', 'figures main', 'render', ...)."""
        last = self._last() or {}
        return list(last.get("stages", []))

    def record(self, stages: list[str]) -> bool:
        """Remember this build. Inputs are re-read now: the build may have refreshed
        content/_freeze; but if a *source* changed while it ran, nothing is recorded, so the next
        build does not skip that edit."""
        after = BuildFingerprint(self.project, self.out, self.inputs["options"])
        before_src = {k: v for k, v in self.inputs["files"].items()
                      if not k.startswith(FREEZE_PREFIX)}
        after_src = {k: v for k, v in after.inputs["files"].items()
                     if not k.startswith(FREEZE_PREFIX)}
        if before_src != after_src:
            return False
        doc = {"key": after.key, "inputs": after.inputs, "outputs": tree_hashes(self.out),
               "stages": list(stages)}
        write_bytes_atomic(self.record_path,
                           (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8"))
        return True


# ---------------------------------------------------------------------------------------------
# Rendered post bodies: a post whose inputs did not change is not rendered again

POSTS_DIR = "posts"
_code_hashes: dict[str, str] | None = None


def _json_default(value: Any) -> Any:
    """JSON for the values json cannot write itself; anything without a faithful JSON form
    raises TypeError (and that post is then simply rendered, not cached)."""
    import dataclasses
    import datetime as dt

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _package_code() -> dict[str, str]:
    """sha256 of every source file of the running generator package (rendering reads listings
    from them and its behaviour is theirs), computed once per process."""
    global _code_hashes
    if _code_hashes is None:
        from .freeze import package_dir

        _code_hashes = {k: v for k, v in tree_hashes(package_dir()).items() if k.endswith(".py")}
    return _code_hashes


def data_digest(value: Any) -> str | None:
    """sha256 of a post's data value in canonical JSON; None when it has no faithful JSON
    form (then the posts that read it are rendered every time)."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError):
        return None
    return sha256_bytes(text.encode("utf-8"))


def post_render_key(post_text: bytes, info: Any, site: Any, results: Any, figures: Any,
                    data: Any) -> str | None:
    """The hash of everything a post's rendering reads, or None when some input has no faithful
    JSON form (then the post is rendered every time)."""
    import sys

    from .freeze import installed_distributions

    try:
        declared = getattr(info.post, "experiments", {}) or {}
        parts = {
            "format": 1,
            "post": sha256_bytes(post_text),
            "info": {f: getattr(info, f) for f in sorted(vars(info)) if f != "post"},
            "site": site,
            "results": {name: {"config": results[name].config,
                               "metrics": results[name].metrics,
                               "provenance": results[name].provenance,
                               "arrays": results[name].arrays_sha256}
                        for name in sorted(declared) if name in results},
            "figures": {exp: sorted(files) for exp, files in sorted(figures.items())},
            "data": data,
            "code": _package_code(),
            "libraries": installed_distributions(),
            "python": sys.version,
        }
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=_json_default)
        return sha256_bytes(text.encode("utf-8"))
    except (TypeError, ValueError, AttributeError):
        return None


class PostCache:
    """.cache/lora-site/posts/<key>.json: the rendered parts of a post. Entries the current build
    did not use are removed at the end (a post's old renderings are never needed again)."""

    def __init__(self, cache_dir: Path) -> None:
        self.folder = Path(cache_dir) / POSTS_DIR
        self.used: set[str] = set()

    def get(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        try:
            doc = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        self.used.add(key)
        return doc if isinstance(doc, dict) else None

    def put(self, key: str | None, parts: dict[str, Any]) -> None:
        if key is None:
            return
        text = json.dumps(parts, sort_keys=True, ensure_ascii=False)
        write_bytes_atomic(self.folder / f"{key}.json", text.encode("utf-8"))
        self.used.add(key)

    def prune(self) -> None:
        if self.folder.is_dir():
            for path in sorted(self.folder.glob("*.json")):
                if path.stem not in self.used:
                    path.unlink(missing_ok=True)
