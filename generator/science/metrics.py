"""Metrics of one run, from its arrays only (numpy; no torch), so saved runs can be re-measured."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .config import ExperimentConfig


def numerical_rank(m: np.ndarray) -> int | np.ndarray:
    """Singular values above max(a, b) * eps * sigma_1 count, as numpy.linalg.matrix_rank does,
    with eps of the matrix's own dtype. m: (a, b) -> int, or a stack (S, a, b) -> (S,) ints."""
    s = np.linalg.svd(m.astype(np.float64), compute_uv=False)           # (..., min(a, b))
    if s.shape[-1] == 0:
        return 0 if m.ndim == 2 else np.zeros(m.shape[0], dtype=np.int64)
    tol = s[..., :1] * max(m.shape[-2:]) * np.finfo(m.dtype).eps
    rank = np.where(s[..., 0] > 0, (s > tol).sum(-1), 0)
    return int(rank) if m.ndim == 2 else rank


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # a, b: (n, d) -> (n,)
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _floats(x: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]


# Which token's projection the training aims at, per adapted site: the target query for W_Q,
# the target key for W_K and W_V (the value of key j is what query i reads from it).
def target_token(cfg: ExperimentConfig, site: str) -> int:
    return cfg.query if site == "q" else cfg.key


def projection_metrics(P0: np.ndarray, P1: np.ndarray, target: int, p: str) -> dict[str, Any]:
    """How each token's projection p (q, k or v) moved: direction, length, the target token
    against the others. P0, P1: (n, d) before and after."""
    n = P0.shape[0]
    others = np.arange(n) != target                                     # (n,) bool
    dP = P1 - P0                                                        # (n, d)
    dp_norm = np.linalg.norm(dP, axis=-1)                               # (n,)
    norm_before = np.linalg.norm(P0, axis=-1)                           # (n,)
    norm_after = np.linalg.norm(P1, axis=-1)                            # (n,)
    cos = _row_cosine(P0, P1)                                           # (n,)
    mean_others = float(dp_norm[others].mean())
    return {
        f"cos_{p}": _floats(cos),
        f"angle_{p}_deg": _floats(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))),
        f"cos_{p}_target": float(cos[target]),
        f"cos_{p}_others_min": float(cos[others].min()),
        f"d{p}_norm": _floats(dp_norm),
        f"d{p}_norm_target": float(dp_norm[target]),
        f"d{p}_norm_others_mean": mean_others,
        f"d{p}_norm_others_max": float(dp_norm[others].max()),
        f"d{p}_ratio": float(dp_norm[target] / mean_others) if mean_others > 0 else None,
        f"{p}_norm_before": _floats(norm_before),
        f"{p}_norm_after": _floats(norm_after),
        f"{p}_norm_ratio": _floats(norm_after / norm_before),
        f"{p}_norm_ratio_target": float(norm_after[target] / norm_before[target]),
    }


def compute_metrics(cfg: ExperimentConfig, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Every number the article may quote, as plain floats and lists (JSON-able).

    The q, k and v families (cos_q, dk_norm, v_norm_ratio_target, ...) say how each projection
    moved; only the adapted one (``adapted``) can move. Their "target" is the target query for
    q and the target key for k and v (``target_token``)."""
    q, k, n = cfg.query, cfg.key, cfg.seq_len
    w0, w1 = arrays["weights_before"].astype(np.float64), arrays["weights_after"].astype(np.float64)
    s0, s1 = arrays["scores_before"].astype(np.float64), arrays["scores_after"].astype(np.float64)
    others = np.arange(n) != q                                          # (n,) bool

    tv_rows = 0.5 * np.abs(w1 - w0).sum(-1)                             # (n,) total variation
    dS = s1 - s0                                                        # (n, n)
    abs_dS = np.abs(dS)
    off_target = np.ones_like(abs_dS, dtype=bool)
    off_target[q, k] = False
    sv = np.linalg.svd(arrays["delta_w"].astype(np.float64), compute_uv=False)
    loss = arrays["loss"]

    out: dict[str, Any] = {
        "n": n,
        "adapted": cfg.site,
        "target_token": target_token(cfg, cfg.site),
        "uniform_weight": 1.0 / n,
        "target_weight_before": float(w0[q, k]),
        "target_weight_after": float(w1[q, k]),
        "target_row_max_before": float(w0[q].max()),
        "max_weight_before": float(w0.max()),
        "reached_stop_prob": bool(w1[q, k] >= cfg.stop_prob),
        "steps": int(loss.shape[0]),
        "loss_first": float(loss[0]) if loss.size else None,
        "loss_last": float(loss[-1]) if loss.size else None,
    }
    for p in ("q", "k", "v"):
        P = p.upper()
        out.update(projection_metrics(arrays[f"{P}_before"].astype(np.float64),
                                      arrays[f"{P}_after"].astype(np.float64),
                                      target_token(cfg, p), p))
    out.update({
        "tv_rows": _floats(tv_rows),
        "tv_target": float(tv_rows[q]),
        "tv_others_max": float(tv_rows[others].max()),
        "score_before_absmax": float(np.abs(s0).max()),
        "score_before_target": float(s0[q, k]),
        "score_after_target": float(s1[q, k]),
        "dscore_target": float(dS[q, k]),
        "dscore_offtarget_absmax": float(abs_dS[off_target].max()),
        "dscore_other_rows_absmax": float(abs_dS[others].max()),
        "dscore_rank": numerical_rank(dS.astype(np.float32)),
        "delta_w_rank": numerical_rank(arrays["delta_w"]),
        "delta_w_singular_values": _floats(sv[: cfg.rank]),
        "delta_w_sigma2_over_sigma1": float(sv[1] / sv[0]) if sv[0] > 0 and sv.size > 1 else 0.0,
        "delta_w_fro": float(np.sqrt((sv ** 2).sum())),
        "trainable_params": cfg.rank * 2 * cfg.d_model,
        "frozen_params": 3 * cfg.d_model * cfg.d_model,
    })
    return out
