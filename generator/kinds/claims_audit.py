"""The claims audit as a kind: every claim of the reference article over many seeds and
settings (science.audit), with its figures (plots.audit_figures).

A post reads it as ``data.audit`` by listing ``data: [audit]`` (which declares an experiment
named audit of this kind with the default settings, when the post declares none), or declares
it under ``experiments:`` with ``kind: audit`` and its own settings (a test's small audit).
Its files are audit.json (the summary the body reads) and audit.npz (per-run statistics).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import ConfigError, ExperimentError, ResultsError, unknown_key_error
from ..plots.audit_figures import ALT_TEXT, FIGURES
from .base import Kind, Progress

AUDIT_JSON = "audit.json"
AUDIT_NPZ = "audit.npz"
SWEEP_SETS = ("all", "default")
DEVICES = ("cpu", "cuda")
# audit.npz keeps about 7.5 kB of statistics a seed (all sweeps) and is committed in
# content/_freeze, whose files must stay under 50 MB (GitHub refuses them over 100 MB).
MAX_SEEDS = 5000
MAX_THREADS = 64
# audit.json rounds every statistic to six significant digits (science.audit._num), so one unit
# of the sixth digit is the least a last-bit difference upstream can show as.
JSON_RTOL = 1e-5
# Recorded, not compared: what made the bytes (the numeric environment).
NOT_COMPARED = ("numerics",)


@dataclass(frozen=True)
class AuditSettings:
    seeds: int = 200            # seeds 0..seeds-1 per setting; every claim is checked on each
    sweeps: str = "all"         # "all": the default setting and every sweep; "default": it alone
    device: str = "cpu"         # torch device for training
    threads: int = 1            # torch intra-op threads (fixed: reductions run in one order)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_settings(mapping: Mapping[str, Any] | None, *, source: object | None = None,
                   prefix: str = "") -> AuditSettings:
    data = dict(mapping or {})
    names = list(AuditSettings.__dataclass_fields__)
    for key in sorted(map(str, data)):
        if key not in names:
            raise unknown_key_error(key, names, source=source, prefix=prefix)

    def bad(field: str, message: str) -> ConfigError:
        return ConfigError(message, path=source, field=prefix + field)

    out = AuditSettings(**data)
    for field, bound in (("seeds", MAX_SEEDS), ("threads", MAX_THREADS)):
        value = getattr(out, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad(field, f"must be an integer >= 1, got {value!r}")
        if value > bound:
            raise ConfigError(f"must be at most {bound}, got {value}", path=source,
                              field=prefix + field,
                              hint="audit.npz would outgrow the 50 MB a file of content/_freeze"
                              if field == "seeds" else "torch cannot start that many threads")
    if out.sweeps not in SWEEP_SETS:
        raise bad("sweeps", f"must be one of {', '.join(SWEEP_SETS)}, got {out.sweeps!r}")
    if out.device not in DEVICES:
        raise bad("device", f"must be one of {', '.join(DEVICES)}, got {out.device!r}")
    return out


@dataclass(frozen=True)
class SavedAudit:
    """The audit read back: its summary (audit.json as written) and its per-run arrays."""

    name: str
    summary: dict[str, Any]
    path: Path

    def arrays(self) -> dict[str, Any]:
        from ..core.fsio import load_npz

        try:
            return load_npz(self.path / AUDIT_NPZ)
        except (OSError, ValueError) as exc:
            raise ResultsError(f"cannot read the audit's arrays: {exc}",
                               path=self.path / AUDIT_NPZ, hint="run `lora-site audit` again") \
                from None


@dataclass(frozen=True)
class AuditView:
    """The audit as a post body sees it under its experiment name: .config and .data."""

    name: str
    config: AuditSettings
    data: dict[str, Any]


# Every claim in every setting, one row each, for readers' own analysis.
CLAIMS_CSV = "claims.csv"


CLAIMS_COLUMNS = ("setting", "claim", "sentence", "statistic", "threshold", "applies", "held",
                  "n", "fraction", "ci95_low", "ci95_high", "median", "verdict")


def claims_csv(summary: Mapping[str, Any]) -> bytes:
    """audit.json's verdicts as CSV: the default setting first, then the others by name;
    claims in the audit's order; numbers as audit.json holds them; an empty cell where a
    claim does not apply to a setting."""
    import csv
    import io

    claims = summary["claims"]
    settings = summary["settings"]
    order = sorted(settings, key=lambda s: (s != "default", s))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CLAIMS_COLUMNS)
    for setting in order:
        for claim in claims:
            row = settings[setting]["claims"].get(claim["name"])
            if row is None:
                continue
            median = row.get("statistic", {}).get("quantiles", {}).get("0.5")
            lo, hi = row.get("ci95") or (None, None)
            cells = (setting, claim["name"], claim["sentence"], claim["statistic"],
                     claim["threshold_text"], row.get("applies"), row.get("held"), row.get("n"),
                     row.get("fraction"), lo, hi, median, row.get("verdict"))
            writer.writerow(["" if c is None else str(c).lower() if isinstance(c, bool) else c
                             for c in cells])
    return out.getvalue().encode("utf-8")


class ClaimsAudit(Kind):
    name = "audit"
    description = "every claim of the article over many seeds and a sweep of settings"
    result_files = (AUDIT_NPZ, AUDIT_JSON)
    figure_input_files = (AUDIT_JSON, AUDIT_NPZ)
    run_roots = ("science.audit",)
    run_libraries = ("torch", "numpy")
    figure_roots = ("plots.audit_figures",)
    figure_libraries = ("matplotlib", "numpy", "pillow")
    heavy = True
    data_name = "audit"

    def parse(self, mapping, *, source=None, prefix=""):
        return parse_settings(mapping, source=source, prefix=prefix)

    def compute(self, name: str, settings: AuditSettings,
                progress: Progress | None = None) -> dict[str, bytes]:
        from ..science.audit import audit_files, run_audit

        if settings.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ExperimentError("torch finds no CUDA device here", field="device",
                                      hint="use device: cpu")
        runs = None if progress is None else (lambda done, total: progress(done, total, "runs"))
        return audit_files(run_audit(settings.seeds, sweeps=settings.sweeps,
                                     device=settings.device, threads=settings.threads,
                                     progress=runs))

    def load(self, folder: Path, name: str) -> SavedAudit:
        path = Path(folder) / AUDIT_JSON
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ResultsError("the claims audit has not been run", path=path,
                               hint="run `lora-site audit` or `lora-site build`") from None
        except (OSError, ValueError) as exc:
            raise ResultsError(f"cannot read the audit: {exc}", path=path,
                               hint="run `lora-site audit` again") from None
        return SavedAudit(name, summary, Path(folder))

    def check(self, loaded: SavedAudit) -> None:
        loaded.arrays()

    def downloads(self, settings: AuditSettings) -> tuple[str, ...]:
        return (CLAIMS_CSV, *self.result_files)

    def download_bytes(self, folder: Path, loaded: SavedAudit) -> dict[str, bytes]:
        return {CLAIMS_CSV: claims_csv(loaded.summary), **super().download_bytes(folder, loaded)}

    def settings_of(self, loaded: SavedAudit) -> AuditSettings:
        return self.view(loaded.name, loaded).config

    def _frozen(self, folder: Path):
        from ..core.fsio import load_npz

        try:
            return (json.loads((folder / AUDIT_JSON).read_text(encoding="utf-8")),
                    load_npz(folder / AUDIT_NPZ))
        except (OSError, ValueError):
            return None

    def compare(self, files: dict[str, bytes], folder: Path, atol: float, rtol: float):
        """Per-run arrays within (atol, rtol), summary numbers within (atol, max(rtol,
        JSON_RTOL)); counts of runs that hold a claim must match exactly (integers). None when
        the frozen audit is missing, unreadable or was computed with other settings."""
        from ..core.compare import (compare_arrays, compare_values, max_abs_difference,
                                    max_array_difference, npz_from_bytes)

        frozen = self._frozen(Path(folder))
        if frozen is None:
            return None
        frozen_doc, frozen_arrays = frozen
        fresh_doc = json.loads(files[AUDIT_JSON].decode("utf-8"))
        if any(fresh_doc.get(k) != frozen_doc.get(k)
               for k in ("seeds", "sweep_set", "device", "threads")):
            return None
        fresh_arrays = npz_from_bytes(files[AUDIT_NPZ])
        a = {k: v for k, v in fresh_doc.items() if k not in NOT_COMPARED}
        b = {k: v for k, v in frozen_doc.items() if k not in NOT_COMPARED}
        diffs = compare_values(a, b, "audit", atol, max(rtol, JSON_RTOL))
        diffs += compare_arrays(fresh_arrays, frozen_arrays, atol, rtol)
        return diffs, max(max_abs_difference(a, b),
                          max_array_difference(fresh_arrays, frozen_arrays))

    def exact(self, files: dict[str, bytes], folder: Path) -> bool:
        from ..core.compare import arrays_equal, npz_from_bytes

        frozen = self._frozen(Path(folder))
        if frozen is None:
            return False
        fresh_doc = json.loads(files[AUDIT_JSON].decode("utf-8"))
        same = ({k: v for k, v in fresh_doc.items() if k not in NOT_COMPARED}
                == {k: v for k, v in frozen[0].items() if k not in NOT_COMPARED})
        return same and arrays_equal(npz_from_bytes(files[AUDIT_NPZ]), frozen[1])

    def outcome(self, settings: AuditSettings, files: dict[str, bytes]) -> str:
        s = json.loads(files[AUDIT_JSON].decode("utf-8"))
        return f"done: {s['runs_trained']} runs ({s['seeds']['count']} seeds, {s['sweep_set']} sweeps)"

    def summary(self, name: str, loaded: SavedAudit) -> str:
        s = loaded.summary
        return (f"{name}: {s['runs_trained']} runs ({s['seeds']['count']} seeds, "
                f"{s['sweep_set']} sweeps)")

    def figures(self, settings: AuditSettings) -> dict[str, str]:
        # The figures compare settings, so an audit of the default setting alone has none.
        return dict(ALT_TEXT) if settings.sweeps == "all" else {}

    def draw(self, folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
        saved = self.load(folder, "")
        return FIGURES.draw(None, (saved.summary, saved.arrays()), names)

    def view(self, name: str, loaded: SavedAudit) -> AuditView:
        s = loaded.summary
        settings = AuditSettings(seeds=s["seeds"]["count"], sweeps=s["sweep_set"],
                                 device=s["device"], threads=s["threads"])
        return AuditView(name, settings, s)

    def data(self, loaded: SavedAudit) -> dict[str, Any]:
        return loaded.summary

    def listing(self, loaded: SavedAudit) -> dict[str, list[str]]:
        s = loaded.summary
        return {"data": sorted(s), "claims": [c["name"] for c in s["claims"]],
                "settings": list(s["settings"]), "figures": list(ALT_TEXT)}


KIND = ClaimsAudit()
