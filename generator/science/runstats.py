"""Per-run statistics of a batch of runs: every number the claims and the audit's geometry
analyses read, vectorised over the batch (numpy, float64).

``run_statistics`` agrees with metrics.compute_metrics wherever both define a number (the tests
check it); it adds what only many runs make meaningful: the leakage against its two
predictions, the update's spectrum, the alignment of A, and, when the batch was trained with
held-out sequences, the change the update causes on them.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .metrics import numerical_rank

if TYPE_CHECKING:
    from .batched import Batch


def _norm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sqrt((x * x).sum(axis))


def _delta_w_svd(batch: "Batch", rows: np.ndarray, lora: bool, r: int):
    """Top singular values (S, k) and the top-r singular vectors U (S, d, r), V (S, d, r).

    LoRA updates are (alpha/r) B A of rank <= r: the SVD of the r x r core R_B R_A^T from two
    thin QRs gives them exactly and cheaply. Full fine-tuning updates need a dense SVD.
    """
    if lora:
        A = batch.arrays["A"][rows].astype(np.float64)                      # (S, r, d)
        B = batch.arrays["B"][rows].astype(np.float64)                      # (S, d, r)
        scale = np.array([batch.specs[i].config.alpha / batch.specs[i].config.rank
                          for i in rows]).reshape(-1, 1, 1)
        qb, rb = np.linalg.qr(B)                                            # (S, d, r), (S, r, r)
        qa, ra = np.linalg.qr(np.swapaxes(A, 1, 2))                         # (S, d, r), (S, r, r)
        core = scale * (rb @ np.swapaxes(ra, 1, 2))                         # (S, r, r)
        uc, s, vct = np.linalg.svd(core)
        U = qb @ uc                                                         # (S, d, r)
        V = qa @ np.swapaxes(vct, 1, 2)                                     # (S, d, r)
        return s, U, V
    # Dense case: eigh of the Gram matrix dW dW^T = U S^2 U^T in torch, which is several times
    # faster than a dense SVD and runs on torch's fixed thread count (numpy's BLAS picks its
    # own and can stall badly on a busy machine). Singular values come out with an absolute
    # error near sqrt(eps) * sigma_1 ~ 1e-8 sigma_1, far below anything reported.
    import torch

    dw = torch.from_numpy(batch.arrays["delta_w"][rows].astype(np.float64))   # (S, d, d)
    evals, evecs = torch.linalg.eigh(dw @ dw.transpose(-1, -2))              # ascending
    s = evals.flip(-1).clamp_min(0.0).sqrt()                                 # (S, d)
    U = evecs.flip(-1)[..., :r]                                              # (S, d, r)
    with np.errstate(divide="ignore", invalid="ignore"):
        V = (dw.transpose(-1, -2) @ U) / s[:, None, :r]                       # (S, d, r)
    return s.numpy(), U.numpy(), V.numpy()


def run_statistics(batch: "Batch") -> dict[str, np.ndarray]:
    """Every per-run number the claims and the geometry analyses use: name -> (S, ...) array.

    Agrees with metrics.compute_metrics where both define a number (tests check it).
    """
    a = batch.arrays
    S = len(batch)
    cfgs = [s.config for s in batch.specs]
    n, d, r = cfgs[0].seq_len, cfgs[0].d_model, cfgs[0].rank
    rows = np.arange(S)
    q = np.array([c.query for c in cfgs])
    k = np.array([c.key for c in cfgs])
    others = np.ones((S, n), dtype=bool)
    others[rows, q] = False                                                 # (S, n)

    def other_rows(x: np.ndarray) -> np.ndarray:                           # (S, n) -> (S, n-1)
        return x[others].reshape(S, n - 1)

    w0 = a["weights_before"].astype(np.float64)                            # (S, n, n)
    w1 = a["weights_after"].astype(np.float64)
    s0 = a["scores_before"].astype(np.float64)
    s1 = a["scores_after"].astype(np.float64)
    Q0 = a["Q_before"].astype(np.float64)                                  # (S, n, d)
    Q1 = a["Q_after"].astype(np.float64)
    X = a["X"].astype(np.float64)                                          # (S, n, d)

    out: dict[str, np.ndarray] = {
        "seed": np.array([c.seed for c in cfgs], dtype=np.int64),
        "stop_prob": np.array([c.stop_prob for c in cfgs]),
        "rank": np.full(S, r, dtype=np.int64),
        "steps": a["steps"].astype(np.int64),
    }
    tw0, tw1 = w0[rows, q, k], w1[rows, q, k]
    out["target_weight_before"] = tw0
    out["target_weight_after"] = tw1
    out["target_weight_over_uniform"] = tw0 * n
    out["reached_stop_prob"] = tw1 >= out["stop_prob"]
    out["max_weight_before"] = w0.reshape(S, -1).max(-1)

    tv = 0.5 * np.abs(w1 - w0).sum(-1)                                     # (S, n)
    out["tv_rows"] = tv
    out["tv_target"] = tv[rows, q]
    out["tv_others_max"] = other_rows(tv).max(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["tv_other_over_target"] = out["tv_others_max"] / out["tv_target"]

    dS = s1 - s0                                                            # (S, n, n)
    off = np.ones((S, n, n), dtype=bool)
    off[rows, q, k] = False
    out["dscore_target"] = dS[rows, q, k]
    out["dscore_offtarget_absmax"] = np.abs(dS)[off].reshape(S, -1).max(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["dscore_offtarget_over_target"] = np.where(
            out["dscore_target"] > 0, out["dscore_offtarget_absmax"] / out["dscore_target"],
            np.inf)
    out["dscore_rank"] = numerical_rank(dS.astype(np.float32))

    # Queries: direction and length of each one's change.
    dQ = Q1 - Q0                                                            # (S, n, d)
    nq0, nq1, ndq = _norm(Q0), _norm(Q1), _norm(dQ)                         # (S, n)
    cos = (Q0 * Q1).sum(-1) / (nq0 * nq1)                                   # (S, n)
    out["cos_q"] = cos
    out["angle_q_deg"] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    out["cos_target"] = cos[rows, q]
    out["cos_others_median"] = np.median(other_rows(cos), -1)
    out["cos_others_min"] = other_rows(cos).min(-1)
    out["dq_norm"] = ndq
    out["dq_norm_target"] = ndq[rows, q]
    mean_others = other_rows(ndq).mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["dq_ratio"] = np.where(mean_others > 0, ndq[rows, q] / mean_others, np.nan)
    out["q_norm_ratio"] = nq1 / nq0
    out["q_norm_ratio_target"] = out["q_norm_ratio"][rows, q]
    out["angle_target_deg"] = out["angle_q_deg"][rows, q]

    # Leakage: how much each token's adapted projection moves relative to the target token's,
    # against two predictions. If delta W ~ sigma u v^T then |dP_i| / |dP_q| = |v.x_i| / |v.x_q|:
    # v = x_q / |x_q| gives the dot-product prediction |x_q.x_i| / |x_q|^2; Adam's sign-like
    # steps on A's rank-1 gradient (B^T g) x_q^T point A along sign(x_q) instead, giving
    # |sign(x_q).x_i| / |x_q|_1.
    # Only the query side has a single token the update is aimed at, so leakage is measured
    # for updates of W_Q (NaN otherwise).
    xq = X[rows, q]                                                         # (S, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        leak = ndq / ndq[rows, q][:, None]                                  # (S, n)
    if cfgs[0].site != "q":
        leak = np.full((S, n), np.nan)
    dot_pred = np.abs((X * xq[:, None, :]).sum(-1)) / (xq * xq).sum(-1)[:, None]
    sgn = np.sign(xq)
    sign_pred = np.abs((X * sgn[:, None, :]).sum(-1)) / np.abs(xq).sum(-1)[:, None]
    out["leakage"] = leak
    out["leakage_dot_pred"] = dot_pred
    out["leakage_sign_pred"] = sign_pred
    out["leakage_others_mean"] = other_rows(leak).mean(-1)
    out["dot_pred_others_mean"] = other_rows(dot_pred).mean(-1)
    out["sign_pred_others_mean"] = other_rows(sign_pred).mean(-1)
    # Which prediction explains the other queries' leakage, with no constant fitted: the mean
    # absolute error of each over the other queries, sign over dot (below 1: sign is better).
    with np.errstate(divide="ignore", invalid="ignore"):
        out["leakage_sign_error_over_dot"] = (
            np.abs(other_rows(leak) - other_rows(sign_pred)).mean(-1)
            / np.abs(other_rows(leak) - other_rows(dot_pred)).mean(-1))
    if "heldout_weights_before" in a:
        out.update(_heldout_statistics(a, out, xq, sgn, cfgs[0].site == "q"))

    # Spectrum of delta W and the LoRA paper's amplification factor.
    lora = batch.specs[0].update == "lora"
    sv, U, V = _delta_w_svd(batch, rows, lora, r)
    top = min(sv.shape[1], 8)
    out["delta_w_singular_values"] = np.pad(sv[:, :top], ((0, 0), (0, 8 - top)),
                                            constant_values=np.nan)       # (S, 8)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["sigma2_over_sigma1"] = np.where(sv[:, 0] > 0, sv[:, 1] / sv[:, 0], 0.0) \
            if sv.shape[1] > 1 else np.zeros(S)
    dw_fro = np.sqrt((sv ** 2).sum(-1))
    out["delta_w_fro"] = dw_fro
    W = a["W_base"].astype(np.float64)                                      # (S, d, d)
    w_fro = np.sqrt((W ** 2).sum((1, 2)))

    def amplification(k: int) -> tuple[np.ndarray, np.ndarray]:
        proj = np.swapaxes(U[:, :, :k], 1, 2) @ W @ V[:, :, :k]             # (S, k, k)
        proj_fro = np.sqrt((proj ** 2).sum((1, 2)))
        with np.errstate(divide="ignore", invalid="ignore"):
            # A random pair of k-dimensional subspaces keeps about (k/d) of |W|_F.
            return dw_fro / proj_fro, proj_fro / (w_fro * k / d)

    # The LoRA paper's factor uses the top-r singular vectors of delta W. Full fine-tuning's
    # delta W here is rank one plus a flat floor of tiny singular values, so its vectors past
    # the first are not determined by the run (any rotation within the floor is as good) and
    # the factor at r > 1 is left undefined (NaN); the top-1 factor is defined for every run.
    out["amplification"], out["w_projection_over_random"] = amplification(r)
    if not lora and r > 1:
        out["amplification"] = np.full(S, np.nan)
        out["w_projection_over_random"] = np.full(S, np.nan)
    out["amplification_top1"], _ = amplification(1)

    # Row space of A against x_q: at init, at the stopping step, and against sign(x_q).
    # Only meaningful for LoRA on W_Q (NaN otherwise).
    align = a["a_align"].astype(np.float64)
    lora_q = lora and cfgs[0].site == "q"
    if not lora_q:
        align = np.full_like(align, np.nan)
    out["a_align_trace"] = align                                            # (S, T+1)
    out["a_align_init"] = align[:, 0] if align.shape[1] else np.full(S, np.nan)
    last = np.minimum(out["steps"], align.shape[1] - 1)
    out["a_align_final"] = align[rows, last] if align.shape[1] else np.full(S, np.nan)
    if lora_q:
        basis, _ = np.linalg.qr(np.swapaxes(a["A"].astype(np.float64), 1, 2))   # (S, d, r)
        unit = sgn / math.sqrt(d)
        out["a_align_sign_final"] = _norm((basis * unit[:, :, None]).sum(1))
    else:
        out["a_align_sign_final"] = np.full(S, np.nan)
    return out


def _heldout_statistics(a, out, xq: np.ndarray, sgn: np.ndarray, query_site: bool
                        ) -> dict[str, np.ndarray]:
    """What the update does on the fresh sequences (science.heldout): the largest row change
    of each fresh sequence, averaged over them, against the training sequence's own rows; and
    the fresh tokens' leakage against the sign prediction from the training target token."""
    hw0 = a["heldout_weights_before"].astype(np.float64)                   # (S, m, n, n)
    hw1 = a["heldout_weights_after"].astype(np.float64)
    tv_rowmax = (0.5 * np.abs(hw1 - hw0).sum(-1)).max(-1).mean(-1)         # (S,)
    hX = a["heldout_X"].astype(np.float64)                                 # (S, m, n, d)
    dp = a["heldout_dproj_norm"].astype(np.float64)                        # (S, m, n)
    sign_pred = np.abs((hX * sgn[:, None, None, :]).sum(-1)) / np.abs(xq).sum(-1)[:, None, None]
    res: dict[str, np.ndarray] = {"heldout_tv_rowmax": tv_rowmax,
                                  "heldout_sign_pred_mean": sign_pred.mean((1, 2))}
    with np.errstate(divide="ignore", invalid="ignore"):
        res["heldout_tv_over_target"] = tv_rowmax / out["tv_target"]
        res["heldout_tv_over_others"] = tv_rowmax / out["tv_others_max"]
        target = out["dq_norm_target"][:, None, None]
        res["heldout_leakage_mean"] = ((dp / target).mean((1, 2)) if query_site
                                       else np.full(len(tv_rowmax), np.nan))
    return res

