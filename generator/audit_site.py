"""The claims audit in the build: freeze it, reuse it while fresh, hand it to posts.

content/_freeze/audit/ holds what `lora-site audit` writes (audit.json, audit.npz), the audit's
figures (figures/*.png) and record.json: the inputs each of those was computed from and the
sha256 of every file. The build (``audit_stage``) reuses them while the inputs are unchanged,
recomputes the audit (torch; about 12 s on one core) or redraws the figures (matplotlib) when
they are stale, and in a frozen build (`lora-site render`) refuses stale results with the reason.
On more than one core a build computes a stale audit in a second process started with the build
(``start_early``), while it trains the experiments, and the figure worker draws its figures
while the pages render (pipeline.draw_later).

A post that lists ``data: [audit]`` in its front matter reads the audit summary as
``data.audit`` (the JSON, unchanged) and shows its figures with
``figure('audit_leakage', '...', experiment='audit')``.

Standard library only at import time: checking freshness never loads torch, numpy or matplotlib.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from . import numerics
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
                              "threads": BUILD_THREADS, "numerics": numerics.key()}
    inputs.update(source_hashes("audit"))
    inputs.update(library_versions(RUN_LIBRARIES, Path(project.root) / "requirements.lock"))
    return inputs


def figures_inputs(project: Project, json_sha: str, npz_sha: str) -> dict[str, Any]:
    """Everything that decides the audit's PNGs."""
    inputs: dict[str, Any] = {"key-format": RECORD_FORMAT, AUDIT_JSON: json_sha,
                              AUDIT_NPZ: npz_sha, "numerics": numerics.key()}
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


def freeze_results(project: Project, result, *, refreeze: bool = False):
    """Write the audit computed with the build's settings, and record its inputs. Returns how
    it compared with the audit already frozen (freeze.Settled).

    Any figures recorded for an older audit no longer match, so their record is dropped.
    """
    from .audit import audit_json_bytes
    from .fsio import npz_bytes

    return _freeze_bytes(project, audit_json_bytes(result), npz_bytes(result.arrays),
                         refreeze=refreeze)


def _freeze_bytes(project: Project, json_bytes: bytes, npz: bytes, *, refreeze: bool = False):
    """freeze_results from the two files' bytes (as audit.save_audit writes them: the npz
    first, the JSON, then the record naming both). A re-run that matches the frozen audit
    within tolerance keeps the committed bytes (freeze.settle)."""
    from .freeze import settle

    folder = audit_dir(project)
    outcome = settle(folder, {AUDIT_JSON: json_bytes, AUDIT_NPZ: npz}, compare_audit_files,
                     refreeze=refreeze)
    if outcome.write:
        write_bytes_atomic(folder / AUDIT_NPZ, npz)
        write_bytes_atomic(folder / AUDIT_JSON, json_bytes)
    files = {AUDIT_JSON: sha256_file(folder / AUDIT_JSON), AUDIT_NPZ: sha256_file(folder / AUDIT_NPZ)}
    old = read_record(project)
    record = {"format": RECORD_FORMAT,
              "results": {"inputs": results_inputs(project), "files": files}}
    if old.get("results", {}).get("files") == files and "figures" in old:
        record["figures"] = old["figures"]      # still the figures of these very bytes
    data = _record_bytes(record)
    path = folder / RECORD
    if not path.is_file() or path.read_bytes() != data:
        write_bytes_atomic(path, data)
    return outcome


# audit.json rounds every statistic to six significant digits (audit._num), so one unit of the
# sixth digit is the least a last-bit difference upstream can show as.
JSON_RTOL = 1e-5


def compare_audit_files(files: dict[str, bytes], folder: Path, atol: float, rtol: float):
    """A fresh audit.json + audit.npz against the frozen ones: per-run arrays within
    (atol, rtol), summary numbers within (atol, max(rtol, JSON_RTOL)); counts of runs that hold
    a claim must match exactly, since they are integers. None when the frozen audit is
    missing, unreadable or was computed with other settings."""
    import io

    import numpy as np

    from .freeze import (compare_arrays, compare_values, max_abs_difference,
                         max_array_difference)
    from .fsio import load_npz

    try:
        frozen = json.loads((folder / AUDIT_JSON).read_text(encoding="utf-8"))
        frozen_arrays = load_npz(folder / AUDIT_NPZ)
    except (OSError, ValueError):
        return None
    fresh = json.loads(files[AUDIT_JSON].decode("utf-8"))
    if any(fresh.get(k) != frozen.get(k) for k in ("seeds", "sweep_set", "device", "threads")):
        return None
    with np.load(io.BytesIO(files[AUDIT_NPZ]), allow_pickle=False) as npz:
        fresh_arrays = {k: npz[k] for k in npz.files}
    # The numeric environment is recorded, not compared: it says what made the bytes.
    a = {k: v for k, v in fresh.items() if k != "numerics"}
    b = {k: v for k, v in frozen.items() if k != "numerics"}
    diffs = compare_values(a, b, "audit", atol, max(rtol, JSON_RTOL))
    diffs += compare_arrays(fresh_arrays, frozen_arrays, atol, rtol)
    worst = max(max_abs_difference(a, b), max_array_difference(fresh_arrays, frozen_arrays))
    return diffs, worst


def save_to_freeze(project: Project, result, *, seeds: int, sweeps: str, device: str,
                   refreeze: bool = False):
    """`lora-site audit` without --out: write content/_freeze/audit, and record it as the
    build's audit only when it was computed with the build's settings. Returns (npz path,
    freeze.Settled or None)."""
    from .audit import save_audit

    if (seeds, sweeps, device) == (BUILD_SEEDS, BUILD_SWEEPS, BUILD_DEVICE):
        outcome = freeze_results(project, result, refreeze=refreeze)
    else:
        save_audit(audit_dir(project) / AUDIT_JSON, result)
        forget_results(project)
        outcome = None
    return audit_dir(project) / AUDIT_NPZ, outcome


def forget_results(project: Project) -> None:
    """The audit files no longer come from the build's settings: drop the record."""
    path = audit_dir(project) / RECORD
    if path.is_file():
        path.unlink()


def _explain(explain: Explain | None, text: str) -> None:
    if explain:
        explain(text)


def _stale_reasons(project: Project, force: bool) -> tuple[list[str], dict[str, Any]]:
    """Why the frozen audit must be recomputed ([] when it is fresh), and the record read."""
    record = read_record(project)
    rec = record.get("results") or {}
    reasons = changed_inputs(rec.get("inputs"), results_inputs(project))
    if not reasons and not _files_match(audit_dir(project), rec.get("files") or {}):
        reasons = ["audit.json or audit.npz missing or edited"]
    return (["--force"] if force else reasons), record


# ---------------------------------------------------------------------------------------------
# The audit computed in a second process, started at the beginning of a build
#
# The audit is the longest computation of a cold build (about 12 s on one core) and nothing in it
# depends on the experiments, so a build that must recompute it starts it at once in a child
# process: it imports torch and trains on one core while this process imports torch, trains the
# experiments and has their figures drawn on the other. The child writes nothing: it answers one
# JSON line {"json": <size>, "npz": <size>} followed by the bytes of audit.json and audit.npz
# (exactly what `save_audit` would write), or {"error": <traceback>}; audit_stage writes them.
# Each run set is trained alone, in the same batches and on one thread whichever process runs
# it, so the bytes are those of computing the audit here.

ENV_PROCESS = "LORA_SITE_AUDIT_PROCESS"
_early: dict[str, Any] | None = None          # {"key": ..., "proc": Popen} of the running child


def _settings() -> tuple[int, str, str, int]:
    return BUILD_SEEDS, BUILD_SWEEPS, BUILD_DEVICE, BUILD_THREADS


def use_second_process() -> bool:
    """Whether a build computes the audit in a child process: when there is more than one core.
    LORA_SITE_AUDIT_PROCESS=0 computes it in the build itself, =1 always in a child."""
    raw = os.environ.get(ENV_PROCESS)
    if raw is not None:
        return raw.strip() not in ("", "0")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) > 1


def _early_key(project: Project) -> tuple:
    # The child computes with the sources and settings of the moment it starts: an answer is
    # used only if they are still those of the build that collects it.
    return (str(Path(project.root).resolve()), _settings(),
            json.dumps(results_inputs(project), sort_keys=True))


def start_early(project: Project, *, force: bool = False) -> bool:
    """Start computing the audit in a child process when it is stale (or ``force``), so it runs
    while the build does everything else; audit_stage collects it. True if a child is running."""
    global _early
    if not use_second_process() or not _stale_reasons(project, force)[0]:
        return False
    key = _early_key(project)
    if _early is not None:
        if _early["key"] == key and _early["proc"].poll() is None:
            return True
        stop_early()
    import atexit
    import subprocess

    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "generator.audit_site",
                             *(str(v) for v in _settings())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    atexit.unregister(stop_early)           # registered once, however many builds start one
    atexit.register(stop_early)
    _early = {"key": key, "proc": proc}
    return True


def stop_early() -> None:
    """End a child whose audit nobody collected (the build failed before the audit stage)."""
    global _early
    early, _early = _early, None
    if early is None:
        return
    proc = early["proc"]
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()


def _collect_early(project: Project) -> tuple[bytes, bytes] | None:
    """The (audit.json, audit.npz) bytes of the child started for this build, waiting for them;
    None when there is none, it computed other inputs, or it failed (the caller computes here,
    where a real error shows its traceback)."""
    global _early
    early = _early
    if early is None:
        return None
    if early["key"] != _early_key(project):
        stop_early()
        return None
    _early = None
    proc = early["proc"]
    try:
        header = json.loads(proc.stdout.readline() or b"{}")
        data = (proc.stdout.read(header["json"]), proc.stdout.read(header["npz"]))
        if (len(data[0]), len(data[1])) != (header["json"], header["npz"]):
            data = None
    except (OSError, ValueError, KeyError, TypeError):
        data = None
    finally:
        proc.stdout.close()
        proc.wait()
    return data if proc.returncode == 0 else None


def _child_main(argv: list[str]) -> int:
    """The child: compute the audit with the given settings and answer its bytes on stdout."""
    import traceback

    out = sys.stdout.buffer
    try:
        seeds, sweeps, device, threads = int(argv[0]), argv[1], argv[2], int(argv[3])
        from .audit import audit_json_bytes, run_audit
        from .fsio import npz_bytes

        result = run_audit(seeds, sweeps=sweeps, device=device, threads=threads)
        json_bytes, npz = audit_json_bytes(result), npz_bytes(result.arrays)
    except BaseException:               # noqa: BLE001 (answered, then the build computes here)
        out.write((json.dumps({"error": traceback.format_exc()}) + "\n").encode())
        out.flush()
        return 1
    out.write((json.dumps({"json": len(json_bytes), "npz": len(npz)}) + "\n").encode())
    out.write(json_bytes)
    out.write(npz)
    out.flush()
    return 0


def audit_stage(project: Project, *, frozen: bool = False, force: bool = False,
                explain: Explain | None = None,
                progress: Callable[[int, int], None] | None = None, refreeze: bool = False,
                warn: Explain | None = None) -> Mapping[str, bytes]:
    """Fresh audit results in content/_freeze/audit, and the audit figures (file -> PNG bytes;
    figures being drawn by the worker arrive on first use, see pipeline.draw_later).

    frozen: never compute the audit (its figures may still be redrawn: that needs no torch).
    force: recompute the audit and redraw its figures even when they are fresh.
    The audit is taken from the child process start_early started, when there is one.
    A recomputed audit that matches the frozen one within tolerance keeps the committed bytes
    (freeze.settle); refreeze writes it whatever; warn hears of a larger difference.
    """
    folder = audit_dir(project)
    force = force or refreeze
    reasons, record = _stale_reasons(project, force)
    if reasons:
        if frozen:
            raise ResultsError("the claims audit has no up-to-date frozen results ("
                               + "; ".join(reasons) + ")", path=folder / AUDIT_JSON,
                               hint="run `lora-site audit` (or `lora-site build`) and commit "
                                    "content/_freeze/audit")
        from .pipeline import start_draw_pool

        # New results mean new figures: the workers import matplotlib while the audit trains.
        start_draw_pool()
        if progress is not None:
            stop_early()                # a child cannot report progress: compute here
        early = _collect_early(project)
        if early is not None:
            outcome = _freeze_bytes(project, *early, refreeze=refreeze)
        else:
            from .audit import run_audit

            result = run_audit(BUILD_SEEDS, sweeps=BUILD_SWEEPS, device=BUILD_DEVICE,
                               threads=BUILD_THREADS, progress=progress)
            outcome = freeze_results(project, result, refreeze=refreeze)
        record = read_record(project)
        detail = f"; {outcome.detail}" if outcome.detail else ""
        _explain(explain, "audit: ran (" + "; ".join(reasons) + ")" + detail)
        if outcome.reported and warn is not None:
            warn(f"audit: {outcome.detail}")
    else:
        stop_early()                    # nothing to collect (a child is only started if stale)
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


if __name__ == "__main__":
    numerics.pin()          # inherited from the build already; checked again before torch loads
    code = _child_main(sys.argv[1:])
    # Answered and flushed: skip tearing down torch (half a second the build would wait for).
    sys.stdout.flush()
    os._exit(code)
