"""content/_freeze: the committed results and figures, and whether each is still fresh.

Each experiment has a folder content/_freeze/<name>/ holding its kind's result files and
figures/*.png; content/_freeze/manifest.json records, per experiment, its kind, the inputs its
result was made from (core.keys.stage_inputs), the sha256 of every file, and the same for its
figures. Comparing the recorded inputs with the current ones says not only *that* a result is
stale but *which* input changed.

New results and figures are staged outside it until the build that made them has succeeded
(stages.staging), so a failed build changes no tracked file.

Standard library only at import time: checking freshness must never load torch or numpy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.compare import ATOL, RTOL
from ..core.context import BuildContext
from ..core.errors import ResultsError
from ..core.fsio import sha256_bytes
from ..core.keys import changed_inputs, digest
from ..core.oserror import os_hint, os_reason
from ..core.swap import recover, signals_deferred
from ..kinds.base import Kind
from .staging import FreezeCommit, ResultsCache, prepare_freeze

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 2
FIGURES_DIR = "figures"


@dataclass(frozen=True)
class Freshness:
    fresh: bool
    reasons: list[str]              # why it is stale (empty when fresh)
    bad_file: Path | None = None    # a frozen file whose bytes do not match the manifest
    key: str = ""


class Store:
    """The freeze of one project, read once per build.

    New results and figures are staged (stages.staging): ``folder(name)`` points readers at a
    staged result until it is committed; ``save()`` commits everything staged, with the
    manifest, in one atomic swap of content/_freeze (a build commits with ``prepare()`` instead,
    together with site/). Nothing staged ever reaches content/_freeze otherwise, so a failed
    build leaves it as it was."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self.root = ctx.project.freeze
        self.path = self.root / MANIFEST
        self.entries: dict[str, dict[str, Any]] = self._read()
        self.results_cache = ResultsCache(ctx.project.cache)
        self.staged: dict[str, tuple[Path, tuple[str, ...]]] = {}   # name -> (folder, files)
        self.staged_figures: dict[str, dict[str, bytes]] = {}

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            if not self.path.is_file():
                return {}
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            experiments = doc["experiments"]
            if not isinstance(experiments, dict):
                raise TypeError("experiments is not a mapping")
        except OSError as exc:
            raise ResultsError(f"cannot read the freeze manifest: {os_reason(exc)}",
                               path=self.path, hint=os_hint(exc)) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ResultsError(f"cannot read the freeze manifest ({exc})", path=self.path,
                               hint="delete it and rebuild with torch installed to re-freeze"
                               ) from None
        return experiments

    def folder(self, name: str) -> Path:
        """Where the current result of ``name`` is read from: its staged folder when this
        build computed it, else content/_freeze/<name>."""
        staged = self.staged.get(name)
        return staged[0] if staged is not None else self.root / name

    def frozen_folder(self, name: str) -> Path:
        """content/_freeze/<name>, the committed result (what a re-run is settled against)."""
        return self.root / name

    def text(self) -> str:
        doc = {"format": MANIFEST_FORMAT, "experiments": self.entries}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    def prepare(self) -> FreezeCommit | None:
        """Write the new content/_freeze beside the old one (stages.staging.prepare_freeze),
        ready to be swapped in; None when nothing would change (the committed files, and their
        mtimes, are then left alone)."""
        data = self.text().encode("utf-8")
        if not self.staged and not self.staged_figures:
            try:
                if self.path.read_bytes() == data:
                    return None
            except OSError:
                if not self.entries:
                    return None
        commit = prepare_freeze(self.root, (MANIFEST, data), self.staged,
                                {n: (FIGURES_DIR, images)
                                 for n, images in self.staged_figures.items()})
        commit.on_done = self._committed
        return commit

    def _committed(self) -> None:
        """What a completed swap means: nothing is staged any more."""
        for folder, _ in self.staged.values():
            self.results_cache.retire(folder)
        self.staged.clear()
        self.staged_figures.clear()

    def save(self) -> None:
        """Commit everything staged now: one atomic swap of content/_freeze."""
        commit = self.prepare()
        if commit is None:
            return
        try:
            with signals_deferred():
                commit.swap()
        except BaseException:
            commit.abandon()
            raise
        commit.finish()

    # ---- results

    def check(self, name: str, kind: Kind, inputs: dict[str, Any]) -> Freshness:
        """Is content/_freeze/<name> (or the result staged for it) a faithful result of
        ``inputs``?"""
        key = digest(inputs)
        folder = self.folder(name)
        if not any((folder / f).is_file() for f in kind.result_files):
            return Freshness(False, ["no frozen results"], key=key)
        entry = self.entries.get(name)
        if entry is None:
            return Freshness(False, ["not recorded in content/_freeze/manifest.json"], key=key)
        if entry.get("kind", "lora") != kind.name:
            return Freshness(False, [f"kind {entry.get('kind')!r} -> {kind.name!r}"], key=key)
        for filename in kind.result_files:
            path = folder / filename
            want = entry.get("files", {}).get(filename)
            if not path.is_file():
                return Freshness(False, [f"{filename} is missing"], path, key)
            if self.ctx.hashes.sha256(path) != want:
                return Freshness(False, [f"{filename} was edited or truncated (sha256 differs "
                                         "from the manifest)"], path, key)
        reasons = changed_inputs(entry.get("inputs"), inputs)
        return Freshness(not reasons, reasons, key=key)

    def cached_result(self, kind: Kind, key: str) -> dict[str, bytes] | None:
        """The files an earlier build computed from the inputs of ``key`` and did not get to
        commit (it failed later), or None."""
        return self.results_cache.get(key, kind.result_files)

    def put_result(self, name: str, kind: Kind, files: dict[str, bytes] | None,
                   inputs: dict[str, Any]) -> None:
        """Stage ``files`` (None: keep the committed files, settle() decided so) and record the
        inputs they stand for. A figures record survives: its own inputs (the results' hashes
        among them) say whether it still holds."""
        if files is not None:
            key = digest(inputs) if inputs else "unrecorded-" + digest(
                {f: sha256_bytes(files[f]) for f in kind.result_files})
            folder = self.results_cache.put(key, {f: files[f] for f in kind.result_files})
            self.staged[name] = (folder, kind.result_files)
            self.results_cache.prune(protect={f for f, _ in self.staged.values()})
        else:
            self.staged.pop(name, None)
        folder = self.folder(name)
        old = self.entries.get(name, {})
        entry = {"kind": kind.name, "key": digest(inputs), "inputs": inputs,
                 "files": {f: self.ctx.hashes.sha256(folder / f) for f in kind.result_files}}
        if "figures" in old:
            entry["figures"] = old["figures"]
        self.entries[name] = entry

    def forget(self, name: str) -> None:
        """The files no longer come from recorded inputs: the next build re-runs them."""
        self.entries.pop(name, None)

    # ---- figures

    def figures(self, name: str, inputs: dict[str, Any]) -> tuple[dict[str, bytes] | None,
                                                                 list[str]]:
        """The figures frozen in content/_freeze/<name>/figures (or staged for it) when the
        manifest records exactly ``inputs`` for them and every file is intact; else (None,
        reasons)."""
        entry = self.entries.get(name, {}).get("figures")
        if not entry:
            return None, ["no frozen figures"]
        reasons = changed_inputs(entry.get("inputs"), inputs)
        if reasons:
            return None, reasons
        if name in self.staged_figures:
            return dict(self.staged_figures[name]), []
        folder = self.root / name / FIGURES_DIR
        images = {}
        for filename, want in sorted(entry.get("files", {}).items()):
            try:
                data = self.ctx.hashes.read(folder / filename)
                sha = self.ctx.hashes.sha256(folder / filename)
            except OSError:
                return None, [f"{FIGURES_DIR}/{filename} is missing"]
            if sha != want:
                return None, [f"{FIGURES_DIR}/{filename} was edited or truncated"]
            images[filename] = data
        return images, []

    def put_figures(self, name: str, images: dict[str, bytes], inputs: dict[str, Any]) -> None:
        """Stage the figures of ``name`` (they replace the folder's figures when committed:
        files no longer drawn go) and record what they were drawn from."""
        self.staged_figures[name] = dict(images)
        entry = self.entries.setdefault(name, {})
        entry["figures"] = {"key": digest(inputs), "inputs": inputs,
                            "files": {f: sha256_bytes(images[f]) for f in sorted(images)}}


# ---------------------------------------------------------------------------------------------
# Settling a re-run against the freeze: never rewrite committed bytes with rounding noise
#
# Where the numeric pins hold (core.numerics) a re-run with the same inputs reproduces the
# frozen bytes exactly. Where they cannot (another architecture, no AVX2, the native opt-out)
# it may differ in the last bits. The rule: a re-run whose every number matches the frozen
# result within verify's default tolerance keeps the committed bytes (and says so under
# --explain); a larger difference replaces them and is reported; --refreeze always replaces.

@dataclass(frozen=True)
class Settled:
    outcome: str                # "new", "identical", "within", "differs" or "refreeze"
    write: bool                 # whether the fresh files replace the frozen ones
    detail: str = ""            # one clause for --explain ('identical to the frozen results')

    @property
    def reported(self) -> bool:
        """A difference the user must hear about even without --explain."""
        return self.outcome == "differs"


def settle(folder: Path, files: dict[str, bytes], compare: Callable, *, refreeze: bool = False,
           atol: float = ATOL, rtol: float = RTOL) -> Settled:
    """Decide whether freshly computed ``files`` replace the result frozen in ``folder``.
    compare(files, folder, atol, rtol) -> (differences, max |diff|), or None when the frozen
    result cannot be compared (Kind.compare)."""
    folder = Path(folder)
    if refreeze:
        return Settled("refreeze", True, "--refreeze: written whatever the frozen bytes")
    try:
        same = all((folder / name).read_bytes() == data for name, data in files.items())
    except OSError:
        same = False
    if same:
        return Settled("identical", False, "identical to the frozen results")
    found = compare(files, folder, atol, rtol)
    if found is None:
        return Settled("new", True, "")
    diffs, worst = found
    if not diffs and worst == 0:
        return Settled("within", False, "every number identical to the frozen results (the "
                       "provenance differs): kept the committed bytes")
    if not diffs:
        return Settled("within", False,
                       f"matches the frozen results within atol={atol:g}, rtol={rtol:g} "
                       f"(max |diff| {worst:.3g}): kept the committed bytes")
    shown = "; ".join(diffs[:2]) + (f"; and {len(diffs) - 2} more" if len(diffs) > 2 else "")
    return Settled("differs", True,
                   f"differs from the frozen results beyond atol={atol:g}, rtol={rtol:g} "
                   f"({len(diffs)} difference(s): {shown}): rewrote {folder}")


def recover_freeze(ctx: BuildContext) -> None:
    """Undo what a process killed while committing the freeze left beside it (core.swap); call
    with the build lock held, before the store is read."""
    recover(ctx.project.freeze)
