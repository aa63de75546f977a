"""The claims audit in the build: freeze it, reuse it while fresh, hand it to posts.

content/_freeze/audit/ holds what `lora-site audit` writes (audit.json, audit.npz), the audit's
figures (figures/*.png) and record.json: the inputs each of those was computed from and the
sha256 of every file. The build (``audit_stage``) reuses them while the inputs are unchanged,
recomputes the audit (torch; about half a minute) or redraws the figures (matplotlib) when they
are stale, and in a frozen build (`lora-site render`) refuses stale results with the reason.

A post that lists ``data: [audit]`` in its front matter reads the audit summary as
``data.audit`` (the JSON, unchanged) and shows its figures with
``figure('audit_leakage', '...', experiment='audit')``.

Standard library only at import time: checking freshness never loads torch, numpy or matplotlib.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from .audit_figures import ALT_TEXT
from .errors import ResultsError
from .freeze import FIGURE_LIBRARIES, RUN_LIBRARIES, changed_inputs, library_versions, source_hashes
from .filehash import sha256_file
from .fsio import sha256_bytes, write_bytes_atomic
from .project import Project
from .site import FIGURE_SETS, register_data

SET_NAME = "audit"              # the data name, the figure set and the folder in content/_freeze
AUDIT_JSON = "audit.json"
AUDIT_NPZ = "audit.npz"
RECORD = "record.json"
FIGURES = "figures"
RECORD_FORMAT = 1
# What the build computes: the same as a plain `lora-site audit`.
BUILD_SEEDS = 200
BUILD_SWEEPS = "all"
BUILD_DEVICE = "cpu"
BUILD_THREADS = 1

Explain = Callable[[str], None]


# The audit figures' alt texts, so `figure(..., experiment='audit')` accepts their names.
FIGURE_SETS[SET_NAME] = ALT_TEXT


def audit_dir(project: Project) -> Path:
    return project.freeze / SET_NAME


def results_inputs(project: Project) -> dict[str, Any]:
    """Everything that decides audit.json and audit.npz."""
    inputs: dict[str, Any] = {"key-format": RECORD_FORMAT, "seeds": BUILD_SEEDS,
                              "sweeps": BUILD_SWEEPS, "device": BUILD_DEVICE,
                              "threads": BUILD_THREADS}
    inputs.update(source_hashes("audit"))
    inputs.update(library_versions(RUN_LIBRARIES, Path(project.root) / "requirements.lock"))
    return inputs


def figures_inputs(project: Project, json_sha: str, npz_sha: str) -> dict[str, Any]:
    """Everything that decides the audit's PNGs."""
    inputs: dict[str, Any] = {"key-format": RECORD_FORMAT, AUDIT_JSON: json_sha,
                              AUDIT_NPZ: npz_sha}
    inputs.update(source_hashes("audit_figures"))
    inputs.update(library_versions(FIGURE_LIBRARIES, Path(project.root) / "requirements.lock"))
    return inputs


def read_record(project: Project) -> dict[str, Any]:
    path = audit_dir(project) / RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ResultsError(f"cannot read the audit record: {exc}", path=path,
                           hint="delete it and rebuild, or run `lora-site audit`") from None
    return data if isinstance(data, dict) and data.get("format") == RECORD_FORMAT else {}


def _files_match(folder: Path, files: Mapping[str, str]) -> bool:
    for name, sha in files.items():
        path = folder / name
        if not path.is_file() or sha256_file(path) != sha:
            return False
    return bool(files)


def _record_bytes(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, sort_keys=True, indent=2) + "\n").encode("utf-8")


def freeze_results(project: Project, result) -> None:
    """Write the audit computed with the build's settings, and record its inputs.

    Any figures recorded for an older audit no longer match, so their record is dropped.
    """
    from .audit import save_audit

    folder = audit_dir(project)
    save_audit(folder / AUDIT_JSON, result)
    record = {"format": RECORD_FORMAT,
              "results": {"inputs": results_inputs(project),
                          "files": {AUDIT_JSON: sha256_file(folder / AUDIT_JSON),
                                    AUDIT_NPZ: sha256_file(folder / AUDIT_NPZ)}}}
    write_bytes_atomic(folder / RECORD, _record_bytes(record))


def save_to_freeze(project: Project, result, *, seeds: int, sweeps: str, device: str) -> Path:
    """`lora-site audit` without --out: write content/_freeze/audit, and record it as the
    build's audit only when it was computed with the build's settings. Returns the npz path."""
    from .audit import save_audit

    if (seeds, sweeps, device) == (BUILD_SEEDS, BUILD_SWEEPS, BUILD_DEVICE):
        freeze_results(project, result)
    else:
        save_audit(audit_dir(project) / AUDIT_JSON, result)
        forget_results(project)
    return audit_dir(project) / AUDIT_NPZ


def forget_results(project: Project) -> None:
    """The audit files no longer come from the build's settings: drop the record."""
    path = audit_dir(project) / RECORD
    if path.is_file():
        path.unlink()


def _explain(explain: Explain | None, text: str) -> None:
    if explain:
        explain(text)


def audit_stage(project: Project, *, frozen: bool = False, force: bool = False,
                explain: Explain | None = None,
                progress: Callable[[int, int], None] | None = None) -> Mapping[str, bytes]:
    """Fresh audit results in content/_freeze/audit, and the audit figures (file -> PNG bytes;
    figures being drawn by the worker arrive on first use, see pipeline.draw_later).

    frozen: never compute the audit (its figures may still be redrawn: that needs no torch).
    force: recompute the audit and redraw its figures even when they are fresh.
    """
    folder = audit_dir(project)
    record = read_record(project)
    current = results_inputs(project)
    rec = record.get("results") or {}
    reasons = changed_inputs(rec.get("inputs"), current)
    if not reasons and not _files_match(folder, rec.get("files") or {}):
        reasons = ["audit.json or audit.npz missing or edited"]
    if force:
        reasons = ["--force"]
    if reasons:
        if frozen:
            raise ResultsError("the claims audit has no up-to-date frozen results ("
                               + "; ".join(reasons) + ")", path=folder / AUDIT_JSON,
                               hint="run `lora-site audit` (or `lora-site build`) and commit "
                                    "content/_freeze/audit")
        from .audit import run_audit
        from .pipeline import start_draw_pool

        # New results mean new figures: the workers import matplotlib while the audit trains.
        start_draw_pool()
        result = run_audit(BUILD_SEEDS, sweeps=BUILD_SWEEPS, device=BUILD_DEVICE,
                           threads=BUILD_THREADS, progress=progress)
        freeze_results(project, result)
        record = read_record(project)
        _explain(explain, "audit: ran (" + "; ".join(reasons) + ")")
    else:
        _explain(explain, "audit: reused")

    files = record["results"]["files"]
    fig_inputs = figures_inputs(project, files[AUDIT_JSON], files[AUDIT_NPZ])
    frec = record.get("figures") or {}
    fig_reasons = changed_inputs(frec.get("inputs"), fig_inputs)
    if not fig_reasons and not _files_match(folder / FIGURES, frec.get("files") or {}):
        fig_reasons = ["figure files missing or edited"]
    if force:
        fig_reasons = ["--force"]
    if not fig_reasons:
        _explain(explain, "audit figures: reused")
        return {name: (folder / FIGURES / name).read_bytes() for name in sorted(frec["files"])}

    from .audit_figures import FIGURE_NAMES
    from .figures import SCALES, image_filename
    from .pipeline import draw_later

    _explain(explain, "audit figures: drew (" + "; ".join(fig_reasons) + ")")
    # Drawn by the figure workers (on every core) while the build renders the pages, which
    # need only the file names; stored here when the bytes arrive. Here when there is no worker.
    return draw_later(folder, FIGURE_NAMES, "generator.audit_site:draw_figures",
                      files=tuple(image_filename(n, s) for n in FIGURE_NAMES for s in SCALES),
                      fallback=lambda: draw_figures(folder, FIGURE_NAMES),
                      keep=lambda images: _store_figures(project, record, fig_inputs, images))


def _store_figures(project: Project, record: dict[str, Any], fig_inputs: dict[str, Any],
                   images: Mapping[str, bytes]) -> None:
    """Write the audit figures into the freeze and record what they were drawn from."""
    folder = audit_dir(project)
    for old in sorted((folder / FIGURES).glob("*.png")) if (folder / FIGURES).is_dir() else []:
        if old.name not in images:
            old.unlink()
    for name in sorted(images):
        write_bytes_atomic(folder / FIGURES / name, images[name])
    record["figures"] = {"inputs": fig_inputs,
                         "files": {name: sha256_bytes(images[name]) for name in sorted(images)}}
    write_bytes_atomic(folder / RECORD, _record_bytes(record))


def draw_figures(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The audit figures ``names`` from the audit saved in ``folder`` (matplotlib)."""
    from .audit_figures import render_audit_figures
    from .fsio import load_npz

    summary = json.loads((folder / AUDIT_JSON).read_text(encoding="utf-8"))
    return render_audit_figures(summary, load_npz(folder / AUDIT_NPZ), names)


@register_data(SET_NAME)
def audit_data(project: Project, results: Mapping[str, Any]) -> dict[str, Any]:
    """data.audit in a post: the audit summary as written in audit.json."""
    path = audit_dir(project) / AUDIT_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError("the claims audit has not been run", path=path,
                           hint="run `lora-site audit` or `lora-site build`") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"cannot read the audit: {exc}", path=path,
                           hint="run `lora-site audit` again") from None
    if data.get("sweep_set") != BUILD_SWEEPS:
        raise ResultsError("the audit holds the default setting only, the article needs the "
                           "sweeps", path=path, hint="run `lora-site audit --sweeps all`")
    return data
