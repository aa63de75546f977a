"""The whole-build fingerprint: a no-op rebuild returns before importing anything heavy.

Everything a build depends on (every file it reads, the options, the interpreter, the installed
libraries, the numeric pins, the git commit the pages link listings to) hashed, plus the hashes of what it wrote; when both match the last
successful build there is nothing to do. Standard library only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core import gitinfo, numerics
from ..core.fsio import write_bytes_atomic
from ..core.keys import digest, installed_distributions, package_dir

# ---------------------------------------------------------------------------------------------
# The whole-build fingerprint: a no-op rebuild returns before importing anything heavy

BUILD_RECORD = "build.json"
# Environment variables that can change what a build writes.
BUILD_ENV = ("SOURCE_DATE_EPOCH", "LORA_SITE_REQUIRE_CLIENTS")
FREEZE_PREFIX = "content/_freeze/"


def _input_folders(project) -> list[tuple[str, Path]]:
    """(label, folder) of every folder a build reads: content/ (posts, settings and the
    freeze), the templates (the project's and the package's defaults), the generator package
    that runs; each folder once (the repository's templates/ is both the project's and the
    package's)."""
    pkg = package_dir()
    folders = [("content", project.content), ("templates", project.templates),
               ("generator", pkg), ("package-templates", pkg.parent / "templates")]
    out, seen = [], set()
    for label, folder in folders:
        try:
            real = Path(folder).resolve()
        except OSError:
            continue
        if real not in seen:
            seen.add(real)
            out.append((label, Path(folder)))
    return out


def sources_changed_since(project, ns: int) -> bool:
    """Whether any file a build reads, the freeze aside (builds write it), was changed at or
    after ``ns`` (time.time_ns()), by its ctime: then a build that started at ``ns`` may not
    have seen it."""
    freeze = os.path.join(str(project.freeze), "")
    for _label, folder in _input_folders(project):
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            if os.path.join(dirpath, "").startswith(freeze):
                continue
            for name in filenames:
                try:
                    if os.stat(os.path.join(dirpath, name)).st_ctime_ns >= ns:
                        return True
                except OSError:
                    return True         # gone since: changed
    return False


def _input_files(project, hashes) -> dict[str, str]:
    """label/relative path -> sha256 of every file a build reads (_input_folders), and the
    lock."""
    files: dict[str, str] = {}
    for label, folder in _input_folders(project):
        for rel, sha in hashes.tree(folder).items():
            files[f"{label}/{rel}"] = sha
    lock = Path(project.root) / "requirements.lock"
    if lock.is_file():
        files["requirements.lock"] = hashes.sha256(lock)
    return dict(sorted(files.items()))


def build_options(*, frozen: bool, baseurl: str | None, drafts: bool = False) -> dict[str, Any]:
    """The options that change what a build writes, as every builder records them (the
    build command and the preview), so each one's record holds for the other."""
    return {"frozen": frozen, "baseurl": baseurl, "drafts": drafts}
def _git_head(root) -> list[str] | None:
    found = gitinfo.head(Path(root))
    return None if found is None else [str(found.toplevel), found.commit]


class BuildFingerprint:
    """Everything a build depends on, hashed, plus the hashes of what it wrote.

    ``unchanged()`` is true when the inputs equal those of the last successful build *and* the
    output folder still holds exactly what that build wrote; then there is nothing to do.
    """

    def __init__(self, ctx, out: Path, options: dict[str, Any]) -> None:
        import sys

        project = ctx.project
        self.ctx, self.project, self.out = ctx, project, Path(out)
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
            # Pages name the commit they were built from (listings link to it): a new commit
            # is a new build. Whether a file differs from it follows from the commit and the
            # files' hashes below.
            "git": _git_head(project.root),
            "files": _input_files(project, ctx.hashes),
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
        for name in ("options", "out", "python", "executable", "libraries", "env", "numerics",
                     "git"):
            if old.get(name) != self.inputs[name]:
                reasons.append("the git commit changed" if name == "git" else f"{name} changed")
        for path, sha in sorted((last.get("kind_modules") or {}).items()):
            try:
                now = self.ctx.hashes.sha256(path)
            except OSError:
                now = None
            if now != sha:
                reasons.append(f"changed: {path}")
        if not reasons and last.get("outputs") != self.ctx.hashes.tree(self.out):
            reasons.append(f"{self.out} differs from what the last build wrote")
        return reasons

    def _kind_modules(self) -> dict[str, str]:
        """path -> sha256 of the kind modules from outside the package (site.yml's kinds:)
        that the build ran: code the folders above do not hold."""
        if not self.ctx.has_state("kinds"):
            return {}
        import sys

        from ..authoring.posts import kinds_of

        out = {}
        for module in kinds_of(self.ctx).extra_modules:
            path = getattr(sys.modules.get(module), "__file__", None)
            if path:
                out[os.path.abspath(path)] = self.ctx.hashes.sha256(path)
        return out

    def stages(self) -> list[str]:
        """The stages the last build reported ('run main', 'figures main', 'render', ...)."""
        last = self._last() or {}
        return list(last.get("stages", []))

    def record(self, stages: list[str]) -> bool:
        """Remember this build. Inputs are re-read now: the build may have refreshed
        content/_freeze; but if a *source* changed while it ran, nothing is recorded, so the next
        build does not skip that edit."""
        after = BuildFingerprint(self.ctx, self.out, self.inputs["options"])
        before_src = {k: v for k, v in self.inputs["files"].items()
                      if not k.startswith(FREEZE_PREFIX)}
        after_src = {k: v for k, v in after.inputs["files"].items()
                     if not k.startswith(FREEZE_PREFIX)}
        if before_src != after_src:
            return False
        doc = {"key": after.key, "inputs": after.inputs,
               "outputs": self.ctx.hashes.tree(self.out),
               "kind_modules": self._kind_modules(),
               "stages": list(stages)}
        write_bytes_atomic(self.record_path,
                           (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8"))
        return True
