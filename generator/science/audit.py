"""The claims audit: every claim over many seeds, in the default setting and in sweeps.

``run_audit`` trains the runs (batched), computes per-run statistics, and returns the audit as
plain data: a JSON-able summary (claims table, held fractions with Wilson intervals, quantiles
of each statistic, geometry analyses, the controls' tests) and a dict of per-run arrays for the
.npz. It writes nothing (``audit_files`` gives the two files' bytes; the stages write them).
The settings and sweeps are science.sweeps'. Every setting's main runs are also evaluated on
fresh sequences (science.heldout).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np

from .claims import CLAIMS, CONTROL_CLAIMS, Claim, applies
from ..core.numerics import in_use as numerics_in_use
from .summaries import (FAILS_IF_UPPER_BELOW, HOLDS_IF_LOWER_AT_LEAST, claim_summary,
                        geometry_summary, min_seeds_to_hold, verdict, wilson)
from .sweeps import (DEFAULT, SGD_LR_RULE, SGD_LR_SWEEP, SWEEP_CHOICES, SWEEPS, RunSet, Setting,
                     canonical, choose_sgd_lr, run_sets, setting_for, settings_for)

__all__ = ["AuditResult", "run_audit", "audit_files", "format_table", "wilson", "verdict",
           "min_seeds_to_hold", "settings_for", "run_sets", "train_run_sets", "DEFAULT",
           "SWEEPS", "SWEEP_CHOICES", "Setting", "RunSet", "canonical", "setting_for"]

FORMAT_VERSION = 2
DEFAULT_SEEDS = 200
# Batches are split so one (S, d, d) float32 tensor stays under 16 MB.
CHUNK_FLOATS = 1 << 22

# Per-run arrays kept in the .npz (the JSON holds their summaries).
NPZ_STATS = (
    "seed", "steps", "reached_stop_prob", "target_weight_before", "target_weight_after",
    "tv_target", "tv_others_max", "tv_other_over_target", "dscore_target",
    "dscore_offtarget_over_target", "dscore_rank", "cos_target", "cos_others_median",
    "dq_ratio", "q_norm_ratio_target", "angle_target_deg", "leakage", "leakage_dot_pred",
    "leakage_sign_pred", "sigma2_over_sigma1", "delta_w_singular_values", "amplification",
    "amplification_top1",
    "w_projection_over_random", "a_align_init", "a_align_final", "a_align_sign_final",
    "max_weight_before", "target_weight_over_uniform", "leakage_sign_error_over_dot",
    "heldout_tv_rowmax", "heldout_tv_over_target", "heldout_leakage_mean",
)


Progress = Callable[[int, int], None]


def train_run_sets(sets: Sequence[RunSet], seeds: Sequence[int], *, device: str = "cpu",
                   threads: int = 1, heldout: Collection[RunSet] = (),
                   progress: Progress | None = None) -> dict[RunSet, dict[str, np.ndarray]]:
    """Per-run statistics of every run set, trained in batches (chunked to bound memory); the
    run sets in ``heldout`` are also evaluated on fresh sequences."""
    from .batched import torch_threads, train_batched
    from .heldout import HELDOUT_SEQUENCES
    from .runstats import run_statistics

    total = len(sets) * len(seeds)
    done = 0
    out: dict[RunSet, dict[str, np.ndarray]] = {}
    for rs in sets:
        specs = rs.specs(seeds)
        d = specs[0].config.d_model
        size = max(1, CHUNK_FLOATS // (d * d))
        parts = []
        for start in range(0, len(specs), size):
            chunk = specs[start:start + size]
            batch = train_batched(chunk, device=device, threads=threads,
                                  heldout=HELDOUT_SEQUENCES if rs in heldout else 0)
            with torch_threads(threads):
                parts.append(run_statistics(batch))
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        out[rs] = _concat(parts)
    return out


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    out = {}
    for name in parts[0]:
        arrays = [p[name] for p in parts]
        if arrays[0].ndim == 2:   # traces: pad to the longest chunk
            width = max(a.shape[1] for a in arrays)
            arrays = [np.pad(a.astype(np.float64), ((0, 0), (0, width - a.shape[1])),
                             constant_values=np.nan) if a.shape[1] < width else a
                      for a in arrays]
        out[name] = np.concatenate(arrays)
    return out


@dataclass
class AuditResult:
    summary: dict[str, Any]                     # JSON-able
    arrays: dict[str, np.ndarray] = field(default_factory=dict)   # name -> per-run array

    def table(self) -> list[dict[str, Any]]:
        return self.summary["table"]

    def failed_default(self) -> list[str]:
        return [row["claim"] for row in self.table() if row["verdict"] != "holds"]


def _claims_of(claims: Sequence[Claim], s: Setting, site: str, main, partners, arrays):
    """Each claim's summary in setting s (or that it does not apply); its per-run values go
    into ``arrays``."""
    out = {}
    for claim in claims:
        if not applies(claim, site, s.update):
            out[claim.name] = {"applies": False}
            continue
        partner = partners[claim.partner] if claim.partner else None
        summary, values = claim_summary(claim, main, partner)
        out[claim.name] = {"applies": True, **summary}
        arrays[f"{s.name}__claim__{claim.name}"] = values.astype(np.float32)
    return out


def _registry(claims: Sequence[Claim]) -> list[dict[str, Any]]:
    return [{"name": c.name, "sentence": c.sentence, "statistic": c.statistic, "key": c.key,
             "op": c.op,
             "threshold": list(c.threshold) if isinstance(c.threshold, tuple) else c.threshold,
             "threshold_text": c.threshold_text(), "why": c.why, "partner": c.partner,
             "query_only": c.query_only, "label": c.label,
             "sites": list(c.sites) if c.sites is not None else None} for c in claims]


def _sweeps_out(settings_out: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every sweep's points (value, setting name) in order, and how the gradient-descent
    learning rate of the optimizer sweep was chosen from the measured steps."""
    _, grid = SWEEPS[SGD_LR_SWEEP]
    names = [setting_for(SGD_LR_SWEEP, v).name for v in grid]
    steps = [settings_out[n]["geometry"]["steps"]["quantiles"]["0.5"] for n in names]
    adam = settings_out["default"]["geometry"]["steps"]["quantiles"]["0.5"]
    pick = choose_sgd_lr(steps, adam)
    sgd_lr = {"rule": SGD_LR_RULE, "grid": list(grid), "median_steps": steps,
              "adam_median_steps": adam, "chosen": grid[pick], "setting": names[pick]}
    out = {}
    for sweep, (label, values) in SWEEPS.items():
        points = []
        for v in values:
            chosen = setting_for(sweep, v)
            points.append({"value": list(v) if isinstance(v, tuple) else v,
                           "setting": names[pick] if chosen is None else chosen.name})
        out[sweep] = {"label": label, "points": points}
    return out, sgd_lr


def run_audit(seeds: int | Sequence[int] = DEFAULT_SEEDS, *, sweeps: str = "default",
              device: str = "cpu", threads: int = 1,
              progress: Progress | None = None) -> AuditResult:
    """Train and summarise every setting of the chosen sweep set. Pure: writes nothing."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        from ..core.errors import ConfigError
        raise ConfigError("at least one seed is needed", field="--seeds")
    settings = settings_for(sweeps)
    roles = {s.name: {role: canonical(rs) for role, rs in run_sets(s).items()}
             for s in settings}
    unique: list[RunSet] = []
    for s in settings:
        for rs in roles[s.name].values():
            if rs not in unique:
                unique.append(rs)
    mains = {roles[s.name]["main"] for s in settings}
    stats = train_run_sets(unique, seed_list, device=device, threads=threads, heldout=mains,
                           progress=progress)

    summary_settings: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for s in settings:
        main = stats[roles[s.name]["main"]]
        partners = {role: stats[rs] for role, rs in roles[s.name].items()}
        cfg = s.config(seed_list[0]).to_dict()
        cfg.pop("seed")
        summary_settings[s.name] = {
            "sweep": s.sweep, "value": list(s.value) if isinstance(s.value, tuple) else s.value,
            "update": s.update, "config": cfg, "runs": len(seed_list),
            "claims": _claims_of(CLAIMS, s, cfg["site"], main, partners, arrays),
            "controls": _claims_of(CONTROL_CLAIMS, s, cfg["site"], main, partners, arrays),
            "geometry": geometry_summary(s.config(0), main),
        }
        for role, rs in roles[s.name].items():
            if role != "main" and s.name != "default":
                continue      # partner runs are kept once, under the default setting
            for name in NPZ_STATS:
                if name not in stats[rs]:
                    continue  # the held-out statistics: main runs only
                value = stats[rs][name]
                arrays[f"{s.name}__{role}__{name}"] = (
                    value.astype(np.float32) if value.dtype.kind == "f" else value)
        if s.lora_q:   # the only runs with an A whose row space is traced against x_q
            arrays[f"{s.name}__main__a_align_trace"] = main["a_align_trace"].astype(np.float32)

    default = summary_settings["default"]["claims"]
    table = []
    for claim in CLAIMS:
        c = default[claim.name]
        table.append({"claim": claim.name, "statistic": claim.statistic,
                      "threshold": claim.threshold_text(), "held": c["held"], "n": c["n"],
                      "fraction": c["fraction"], "ci95": c["ci95"], "verdict": c["verdict"],
                      "median": c["statistic"]["quantiles"]["0.5"]})
    sweeps_out, sgd_lr = _sweeps_out(summary_settings) if sweeps == "all" else ({}, None)
    summary = {
        "format": FORMAT_VERSION,
        "seeds": {"first": seed_list[0], "last": seed_list[-1], "count": len(seed_list),
                  "contiguous": seed_list == list(range(seed_list[0], seed_list[-1] + 1))},
        "sweep_set": sweeps,
        "device": device,
        "threads": threads,
        # The kernels that computed it (numerics.py), the same on every pinned x86-64 machine.
        "numerics": numerics_in_use(),
        "verdict_rule": {"holds": f"95% Wilson lower bound >= {HOLDS_IF_LOWER_AT_LEAST:g}",
                         "fails": f"95% Wilson upper bound < {FAILS_IF_UPPER_BELOW:g}",
                         "fragile": "otherwise",
                         "holds_if_lower_at_least": HOLDS_IF_LOWER_AT_LEAST,
                         "fails_if_upper_below": FAILS_IF_UPPER_BELOW,
                         "confidence": 0.95, "min_seeds_to_hold": min_seeds_to_hold()},
        "runs_trained": len(unique) * len(seed_list),
        "heldout_sequences": _heldout_count(),
        "claims": _registry(CLAIMS),
        "control_claims": _registry(CONTROL_CLAIMS),
        "table": table,
        "settings": summary_settings,
        "sweeps": sweeps_out,
        "sgd_lr": sgd_lr,
    }
    return AuditResult(summary, arrays)


def _heldout_count() -> int:
    from .heldout import HELDOUT_SEQUENCES

    return HELDOUT_SEQUENCES


def audit_json_bytes(result: AuditResult) -> bytes:
    return (json.dumps(result.summary, sort_keys=True, indent=2, ensure_ascii=False,
                       allow_nan=False) + "\n").encode("utf-8")


AUDIT_JSON = "audit.json"
AUDIT_NPZ = "audit.npz"


def audit_files(result: AuditResult) -> dict[str, bytes]:
    """The audit as its two files: audit.json (the summary) and audit.npz (per-run arrays)."""
    from ..core.fsio import npz_bytes

    return {AUDIT_JSON: audit_json_bytes(result), AUDIT_NPZ: npz_bytes(result.arrays)}


def format_table(result: AuditResult | Mapping[str, Any]) -> str:
    """The default setting's claims table (of an AuditResult or its summary) as fixed-width
    text."""
    table = result.table() if isinstance(result, AuditResult) else result["table"]
    rows = [("claim", "statistic (median)", "threshold", "held", "95% interval", "verdict")]
    for r in table:
        lo, hi = r["ci95"]
        med = "n/a" if r["median"] is None else f"{r['median']:.3g}"
        rows.append((r["claim"], med, r["threshold"], f"{r['held']}/{r['n']}",
                     f"[{lo:.3f}, {hi:.3f}]", r["verdict"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
