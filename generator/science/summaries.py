"""What the claims audit reports of a set of runs: held fractions with Wilson intervals and a
verdict, distributions of each statistic, and the geometry analyses (leakage against its two
predictions, the update's spectrum, A's alignment). numpy only, float64; plain JSON out.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .claims import Claim, claim_holds, claim_values
from .config import ExperimentConfig

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
Z95 = 1.959963984540054          # the standard normal's 97.5% quantile
# Verdicts from the Wilson interval of the held fraction.
HOLDS_IF_LOWER_AT_LEAST = 0.9    # "holds": confidently in at least 90% of seeds
FAILS_IF_UPPER_BELOW = 0.5       # "fails": confidently in fewer than half of them


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 or k = n one end is exactly 0 or 1; say so rather than 1 - 1e-16.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def min_seeds_to_hold(z: float = Z95) -> int:
    """The fewest seeds with which a claim holding in every run gets the verdict "holds"."""
    n = 1
    while wilson(n, n, z)[0] < HOLDS_IF_LOWER_AT_LEAST:
        n += 1
    return n


def verdict(lo: float, hi: float) -> str:
    if lo >= HOLDS_IF_LOWER_AT_LEAST:
        return "holds"
    if hi < FAILS_IF_UPPER_BELOW:
        return "fails"
    return "fragile"


def _num(x: float) -> float | None:
    """Six significant digits, so the JSON reads well; NaN and inf become null."""
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def distribution(values: np.ndarray) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = v[np.isfinite(v)]
    out: dict[str, Any] = {"count": int(v.size), "finite": int(finite.size)}
    if finite.size:
        qs = np.quantile(finite, QUANTILES)
        out["quantiles"] = {f"{q:g}": _num(x) for q, x in zip(QUANTILES, qs)}
        out["mean"] = _num(finite.mean())
    else:
        out["quantiles"] = {f"{q:g}": None for q in QUANTILES}
        out["mean"] = None
    return out


def claim_summary(claim: Claim, stats: Mapping[str, np.ndarray],
                  partner: Mapping[str, np.ndarray] | None) -> tuple[dict, np.ndarray]:
    values = claim_values(claim, stats, partner)
    held = claim_holds(claim, values, stats)
    k, n = int(held.sum()), int(held.size)
    lo, hi = wilson(k, n)
    return ({"held": k, "n": n, "fraction": _num(k / n), "ci95": [_num(lo), _num(hi)],
             "verdict": verdict(lo, hi), "statistic": distribution(values)}, values)


def _nanmean_columns(x: np.ndarray) -> list[float | None]:
    """Column means over finite entries; None for a column with none (no warning)."""
    ok = np.isfinite(x)
    count = ok.sum(0)
    total = np.where(ok, x, 0.0).sum(0)
    return [_num(t / c) if c else None for t, c in zip(total, count)]


def _fit_through_origin(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or not (x * x).sum() > 0:
        return {"slope": None, "pearson_r": None, "median_ratio": None, "points": int(x.size)}
    slope = (x * y).sum() / (x * x).sum()
    r = np.corrcoef(x, y)[0, 1] if x.std() > 0 and y.std() > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.median(y[x > 0] / x[x > 0])
    return {"slope": _num(slope), "pearson_r": _num(r), "median_ratio": _num(ratio),
            "points": int(x.size)}


def geometry_summary(cfg: ExperimentConfig, stats: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The geometry analyses of one setting's main runs (see claims.run_statistics); cfg is the
    setting's experiment config (any seed)."""
    n, d = cfg.seq_len, cfg.d_model
    others = np.ones((len(stats["seed"]), n), dtype=bool)
    others[:, cfg.query] = False
    leak = stats["leakage"][others]
    dot = stats["leakage_dot_pred"][others]
    sign = stats["leakage_sign_pred"][others]
    sv = stats["delta_w_singular_values"]
    with np.errstate(divide="ignore", invalid="ignore"):
        spectrum = sv / sv[:, :1]
    trace = stats["a_align_trace"]
    active = np.isfinite(trace).sum(0)
    trace_mean = _nanmean_columns(trace)
    # Report the mean trace only over steps where at least half of the runs still train.
    trace_mean = [m for m, a in zip(trace_mean, active) if a >= max(1, len(stats["seed"]) // 2)]
    return {
        "steps": distribution(stats["steps"]),
        "reached_stop_prob": _num(np.mean(stats["reached_stop_prob"])),
        "leakage": {
            "mean": _nanmean_columns(leak[:, None])[0],
            "dot_prediction_mean": _num(np.mean(dot)),
            "sign_prediction_mean": _num(np.mean(sign)),
            "gaussian_prediction": _num(math.sqrt(2.0 / (math.pi * d))),
            "sign_gaussian_prediction": _num(1.0 / math.sqrt(d)),
            "vs_dot": _fit_through_origin(dot, leak),
            "vs_sign": _fit_through_origin(sign, leak),
            "per_run_mean": distribution(stats["leakage_others_mean"]),
        },
        "spectrum": {
            "sigma2_over_sigma1": distribution(stats["sigma2_over_sigma1"]),
            "normalized_mean": _nanmean_columns(spectrum),
        },
        "alignment": {
            "init": distribution(stats["a_align_init"]),
            "final": distribution(stats["a_align_final"]),
            "sign_final": distribution(stats["a_align_sign_final"]),
            "random_prediction": _num(math.sqrt(cfg.rank / d)),
            "trace_mean": trace_mean,
        },
        "queries": {
            "norm_ratio_target": distribution(stats["q_norm_ratio_target"]),
            "angle_target_deg": distribution(stats["angle_target_deg"]),
            "cos_others_median": distribution(stats["cos_others_median"]),
            "dq_ratio": distribution(stats["dq_ratio"]),
        },
        "leakage_sign_error_over_dot": distribution(stats["leakage_sign_error_over_dot"]),
        "amplification": distribution(stats["amplification"]),
        "amplification_top1": distribution(stats["amplification_top1"]),
        "w_projection_over_random": distribution(stats["w_projection_over_random"]),
        "tv_other_over_target": distribution(stats["tv_other_over_target"]),
        "heldout": _heldout_summary(stats),
    }


def _heldout_summary(stats: Mapping[str, np.ndarray]) -> dict[str, Any] | None:
    """The update on fresh sequences (runstats._heldout_statistics), next to the training
    sequence's own other rows; None for runs trained without held-out sequences."""
    if "heldout_tv_rowmax" not in stats:
        return None
    return {
        "tv_rowmax": distribution(stats["heldout_tv_rowmax"]),
        "tv_over_target": distribution(stats["heldout_tv_over_target"]),
        "tv_over_others": distribution(stats["heldout_tv_over_others"]),
        "train_tv_others_max": distribution(stats["tv_others_max"]),
        "train_tv_target": distribution(stats["tv_target"]),
        "leakage_mean": distribution(stats["heldout_leakage_mean"]),
        "sign_prediction_mean": distribution(stats["heldout_sign_pred_mean"]),
    }
