"""The reference article's claims as named, checkable statements, and the per-run statistics
they are checked on.

A claim is a sentence of the reference, one number computed from a run (or from a pair of runs
with the same seed), and a threshold chosen from what the sentence says, before looking at any
result; each threshold carries its reason. ``run_statistics`` computes every number for a whole
batch at once (numpy, float64), including the geometry the audit reports besides the claims.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from .metrics import numerical_rank

if TYPE_CHECKING:
    from .batched import Batch

# Claims about the query vectors only make sense when the update acts on W_Q.
QUERY_UPDATES = (("q", "lora"), ("q", "full"))


@dataclass(frozen=True)
class Claim:
    name: str
    sentence: str          # the reference's words this claim tests
    statistic: str         # what is measured, in words
    key: str               # the per-run statistic (run_statistics) it reads
    op: str                # "<=", ">=", "<" or "between"
    threshold: float | str | tuple[float, float]   # a number, or a per-run statistic's name
    why: str               # why this threshold says what the sentence says
    partner: str | None = None   # "lora_k" or "full_q": compares with that run of the same seed
    query_only: bool = False     # needs the update on W_Q (Q is unchanged otherwise)

    def threshold_text(self) -> str:
        if self.op == "between":
            lo, hi = self.threshold
            return f"in [{lo:g}, {hi:g}]"
        if isinstance(self.threshold, str):
            value = THRESHOLD_NAMES.get(self.threshold, self.threshold)
        else:
            value = f"{self.threshold:g}"
        return f"{OP_TEXT[self.op]} {value}"


# How thresholds read in tables (plain text that is safe in a Markdown table cell).
OP_TEXT = {"<=": "≤", "<": "<", ">=": "≥"}
THRESHOLD_NAMES = {"stop_prob": "stop probability", "rank": "r"}


CLAIMS: tuple[Claim, ...] = (
    Claim("diffuse_before",
          "For query 0, attention mass is spread across many keys (e.g. A[0,5] ≈ 0.11)",
          "target weight before training, in units of the uniform weight 1/n",
          "target_weight_over_uniform", "between", (0.5, 2.0),
          "'near 1/n' read as within a factor 2 of uniform"),
    Claim("no_key_dominates_before",
          "No single key dominates the attention distribution",
          "largest attention weight anywhere in the map before training",
          "max_weight_before", "<", 0.5,
          "'dominates' read as holding a majority of a row's mass"),
    Claim("reaches_target",
          "LoRA introduces a targeted reallocation of attention mass",
          "target weight when training stops",
          "target_weight_after", ">=", "stop_prob",
          "training is meant to stop at the stop probability; a run that hits the step cap first fails"),
    Claim("only_target_row",
          "Only the intended query changes behavior; the rest of the attention structure is "
          "preserved",
          "largest total-variation change of another row, over that of the target row",
          "tv_other_over_target", "<=", 0.1,
          "'only' read as every other row moving less than a tenth as much as the target row"),
    Claim("score_change_localized",
          "A strong, localized increase appears at (query=0, key=5); most other entries remain "
          "similar to the pre-LoRA matrix",
          "largest absolute score change off the target cell, over the target cell's increase",
          "dscore_offtarget_over_target", "<=", 0.5,
          "'localized' read as no other cell changing by more than half the target's increase"),
    Claim("target_cosine_drops",
          "Token 0 exhibits a large drop in cosine similarity",
          "cosine between the target query before and after training",
          "cos_target", "<=", 0.9,
          "'large drop' read as a rotation of at least 25.8 degrees (cos <= 0.9)",
          query_only=True),
    Claim("other_cosines_near_one",
          "Most other tokens remain close to 1.0",
          "median over the other queries of the cosine before/after",
          "cos_others_median", ">=", 0.95,
          "'most' read as the median, 'close to 1' as cos >= 0.95 (within 18.2 degrees)",
          query_only=True),
    Claim("target_update_dominates",
          "Token 0 shows a significantly larger ‖ΔQ‖; other tokens have near-zero updates",
          "norm of the target query's update, over the mean norm of the others'",
          "dq_ratio", ">=", 10.0,
          "'near-zero' read as the others moving at most a tenth as much on average",
          query_only=True),
    Claim("update_is_rotation",
          "LoRA performs controlled rotations of specific query vectors",
          "length of the target query after training, over its length before",
          "q_norm_ratio_target", "between", (0.9, 1.1),
          "a rotation keeps the norm: within 10% of 1",
          query_only=True),
    Claim("score_change_low_rank",
          "It introduces a structured, low-rank perturbation",
          "numerical rank of the score change ΔS",
          "dscore_rank", "<=", "rank",
          "ΔS = ΔQ Kᵀ / √d cannot exceed the rank r of ΔW; numerical rank as numpy's "
          "matrix rank"),
    Claim("queries_disturb_less_than_keys",
          "Keys serve as anchors; excessive modification destabilizes similarity structure",
          "largest other-row TV change with LoRA on Q, over the same with LoRA on K "
          "(same seed, same stopping rule)",
          "tv_others_max", "<", 1.0,
          "adapting queries should disturb the other rows less than adapting keys",
          partner="lora_k"),
    Claim("lora_more_local_than_full",
          "LoRA enables localized control over attention routing rather than wholesale "
          "retraining",
          "largest other-row TV change with LoRA on Q, over the same with full "
          "fine-tuning of WQ stopped at the same target weight (same seed)",
          "tv_others_max", "<", 1.0,
          "LoRA should be more local than updating all of WQ",
          partner="full_q"),
)

CLAIMS_BY_NAME = {c.name: c for c in CLAIMS}


def claim_values(claim: Claim, stats: Mapping[str, np.ndarray],
                 partner: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The claim's statistic per run, (N,) float64; a ratio to the partner run when paired."""
    value = np.asarray(stats[claim.key], dtype=np.float64)
    if claim.partner is None:
        return value
    if partner is None:
        raise ValueError(f"claim {claim.name} needs the {claim.partner} partner runs")
    other = np.asarray(partner[claim.key], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(other > 0, value / np.where(other > 0, other, 1.0), np.inf)


def claim_holds(claim: Claim, values: np.ndarray, stats: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N,) bool: does the claim hold in each run? NaN never holds."""
    if isinstance(claim.threshold, str):
        limit = np.asarray(stats[claim.threshold], dtype=np.float64)
    else:
        limit = claim.threshold
    with np.errstate(invalid="ignore"):
        if claim.op == "<=":
            held = values <= limit
        elif claim.op == "<":
            held = values < limit
        elif claim.op == ">=":
            held = values >= limit
        elif claim.op == "between":
            lo, hi = limit
            held = (values >= lo) & (values <= hi)
        else:
            raise ValueError(f"unknown op {claim.op!r}")
    return held & np.isfinite(values)


def applies(claim: Claim, site: str, update: str) -> bool:
    """Whether a claim is meaningful for runs whose update acts on (site, update)."""
    if claim.query_only and (site, update) not in QUERY_UPDATES:
        return False
    if claim.partner is not None and (site, update) != ("q", "lora"):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Per-run statistics, vectorised over a batch.

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
