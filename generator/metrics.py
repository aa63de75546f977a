"""Metrics of one run, from its arrays only (numpy; no torch), so saved runs can be re-measured."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .config import ExperimentConfig


def numerical_rank(m: np.ndarray) -> int:
    """Singular values above max(shape) * eps * sigma_1 count, as numpy.linalg.matrix_rank does."""
    s = np.linalg.svd(m.astype(np.float64), compute_uv=False)
    if s.size == 0 or s[0] == 0.0:
        return 0
    tol = s[0] * max(m.shape) * np.finfo(m.dtype).eps
    return int((s > tol).sum())


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # a, b: (n, d) -> (n,)
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _floats(x: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]


def compute_metrics(cfg: ExperimentConfig, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Every number the article may quote, as plain floats and lists (JSON-able)."""
    q, k, n = cfg.query, cfg.key, cfg.seq_len
    w0, w1 = arrays["weights_before"].astype(np.float64), arrays["weights_after"].astype(np.float64)
    s0, s1 = arrays["scores_before"].astype(np.float64), arrays["scores_after"].astype(np.float64)
    Q0, Q1 = arrays["Q_before"].astype(np.float64), arrays["Q_after"].astype(np.float64)
    others = np.arange(n) != q                                          # (n,) bool

    dQ = Q1 - Q0                                                        # (n, d)
    dq_norm = np.linalg.norm(dQ, axis=-1)                               # (n,)
    q_norm_before = np.linalg.norm(Q0, axis=-1)                         # (n,)
    q_norm_after = np.linalg.norm(Q1, axis=-1)                          # (n,)
    cos_q = _row_cosine(Q0, Q1)                                         # (n,)
    tv_rows = 0.5 * np.abs(w1 - w0).sum(-1)                             # (n,) total variation
    dS = s1 - s0                                                        # (n, n)
    abs_dS = np.abs(dS)
    off_target = np.ones_like(abs_dS, dtype=bool)
    off_target[q, k] = False
    sv = np.linalg.svd(arrays["delta_w"].astype(np.float64), compute_uv=False)
    loss = arrays["loss"]

    mean_dq_others = float(dq_norm[others].mean())
    return {
        "n": n,
        "uniform_weight": 1.0 / n,
        "target_weight_before": float(w0[q, k]),
        "target_weight_after": float(w1[q, k]),
        "target_row_max_before": float(w0[q].max()),
        "max_weight_before": float(w0.max()),
        "reached_stop_prob": bool(w1[q, k] >= cfg.stop_prob),
        "steps": int(loss.shape[0]),
        "loss_first": float(loss[0]) if loss.size else None,
        "loss_last": float(loss[-1]) if loss.size else None,
        "cos_q": _floats(cos_q),
        "angle_q_deg": _floats(np.degrees(np.arccos(np.clip(cos_q, -1.0, 1.0)))),
        "cos_q_target": float(cos_q[q]),
        "cos_q_others_min": float(cos_q[others].min()),
        "dq_norm": _floats(dq_norm),
        "dq_norm_target": float(dq_norm[q]),
        "dq_norm_others_mean": mean_dq_others,
        "dq_norm_others_max": float(dq_norm[others].max()),
        "dq_ratio": float(dq_norm[q] / mean_dq_others) if mean_dq_others > 0 else None,
        "q_norm_before": _floats(q_norm_before),
        "q_norm_after": _floats(q_norm_after),
        "q_norm_ratio": _floats(q_norm_after / q_norm_before),
        "q_norm_ratio_target": float(q_norm_after[q] / q_norm_before[q]),
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
    }
