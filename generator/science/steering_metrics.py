"""What the steering experiment measures: the model before and after an adapter, compared.

A snapshot is the model's state on the experiment's sequences: every layer's attention weights
on the training sequence, the steered head's queries and weights on the held-out windows, and
the loss of every held-out window. ``measure`` compares a snapshot after training (the adapter
as a branch, then merged into W_Q) with the one before.

The leak of a rank-one update. A change u v^T of W_Q^h moves query m by u (v . x_m), so every
other query moves |v . x_m| / |v . x_i| as far as the steered query i, whatever u is. Plain
gradient descent has v = x_i exactly (the gradient of row i's loss is g x_i^T); Adam's
per-coordinate normalisation of g x_i^T gives v ~ sign(x_i). Both predictions are computed from
the layer's input before training and set against the measured per-token changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np
import torch
import torch.nn.functional as F

from .transformer import TinyGPT

TV_MOVED = 0.1          # a row "moves" when its total-variation change exceeds this


@dataclass(frozen=True)
class Where:
    """What the settings resolve to on this model: the head, the pair, the sequences."""

    layer: int
    head: int
    query: int
    key: int
    x_train: torch.Tensor       # (1, T) the training sequence
    y_train: torch.Tensor       # (1, T) its next characters
    x_loc: torch.Tensor         # (N, T) held-out windows for locality
    y_loc: torch.Tensor
    loc_windows: np.ndarray     # (N,) their indices among the held-out windows
    held_x: torch.Tensor        # (W, T) every held-out window, for the loss change
    held_y: torch.Tensor


@torch.no_grad()
def head_entropy(model: TinyGPT, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per (layer, head), over the windows x (N, T) and rows 1..T-1 (row 0 has one key): the
    mean normalised entropy H(row) / log(keys) (1 = uniform) and the mean largest weight."""
    records: list = []
    model(x, records)
    keys = torch.arange(1, x.shape[1] + 1, dtype=torch.float64)              # (T,)
    ent, top = [], []
    for rec in records:
        w = rec["weights"].double()                                           # (N, nh, T, T)
        h = -(w * torch.log(w.clamp_min(1e-300))).sum(-1)                     # (N, nh, T)
        ent.append((h[..., 1:] / torch.log(keys[1:])).mean((0, 2)))           # (nh,)
        top.append(w.amax(-1)[..., 1:].mean((0, 2)))                          # (nh,)
    return torch.stack(ent).numpy(), torch.stack(top).numpy()                # (L, nh) each


@torch.no_grad()
def window_losses(model: TinyGPT, x: torch.Tensor, y: torch.Tensor, batch: int = 64) -> np.ndarray:
    """Mean next-character loss (nats) of each window: (W,) float64."""
    out = []
    for s in range(0, len(x), batch):
        logits = model(x[s:s + batch])                                        # (b, T, V)
        nll = F.cross_entropy(logits.transpose(1, 2), y[s:s + batch], reduction="none")  # (b, T)
        out.append(nll.double().mean(-1))
    return torch.cat(out).numpy()


@dataclass(frozen=True)
class Snapshot:
    weights: torch.Tensor       # (L, nh, T, T) every head's attention on the training sequence
    q: torch.Tensor             # (T, hs) the steered head's queries there
    attn_in: torch.Tensor       # (T, d) the steered layer's input there
    loc_weights: torch.Tensor   # (N, T, T) the steered head on the held-out windows
    loc_q: torch.Tensor         # (N, T, hs)
    train_loss: float           # the model's loss on the training sequence
    held: np.ndarray            # (W,) every held-out window's loss


@torch.no_grad()
def snapshot(model: TinyGPT, w: Where) -> Snapshot:
    L, h = w.layer, w.head
    rec: list = []
    logits = model(w.x_train, rec)                                            # (1, T, V)
    loc: list = []
    model(w.x_loc, loc)
    return Snapshot(
        weights=torch.stack([r["weights"][0] for r in rec]),                  # (L, nh, T, T)
        q=rec[L]["q"][0, h], attn_in=rec[L]["attn_in"][0],
        loc_weights=loc[L]["weights"][:, h], loc_q=loc[L]["q"][:, h],
        train_loss=float(F.cross_entropy(logits[0], w.y_train[0])),
        held=window_losses(model, w.held_x, w.held_y))


def _tv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Total variation between attention rows: 0.5 sum_keys |b - a|, (...,)."""
    return 0.5 * (b.double() - a.double()).abs().sum(-1)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double(), b.double()
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def _fit(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Pearson r and the least-squares slope through the origin of measured on predicted."""
    r = float(np.corrcoef(measured, predicted)[0, 1])
    slope = float((measured * predicted).sum() / (predicted * predicted).sum())
    return {"r": r, "slope": slope}


def leak_predictions(x: torch.Tensor, i: int) -> dict[str, np.ndarray]:
    """|v . x_m| / |v . x_i| for every token m, with v = sign(x_i) (Adam) and v = x_i (gradient
    descent); x (T, d) the layer's input."""
    x = x.double()
    out = {}
    for name, v in (("sign", torch.sign(x[i])), ("x", x[i])):
        proj = (x @ v).abs()                                                   # (T,)
        out[name] = (proj / proj[i]).numpy()
    return out


def measure(model: TinyGPT, w: Where, adapter, probs: list | None,
            base: dict | None = None) -> tuple[dict, dict]:
    """Without an adapter: the model before (metrics, and the arrays later calls compare
    with; base=None). With one attached: (metrics, arrays) of the change it makes."""
    snap = snapshot(model, w)
    i, j, L, h = w.query, w.key, w.layer, w.head
    if adapter is None:
        pred = leak_predictions(snap.attn_in, i)
        others = np.arange(snap.q.shape[0]) != i
        metrics = {"target_weight": float(snap.weights[L, h, i, j]),
                   "uniform_weight": 1.0 / (i + 1), "row_max": float(snap.weights[L, h, i].max()),
                   "train_loss": snap.train_loss, "held_loss": float(snap.held.mean()),
                   "leak_sign": float(1.0 / pred["sign"][others].mean()),
                   "leak_x": float(1.0 / pred["x"][others].mean()),
                   "x_cos_others_mean": float(_cos(snap.attn_in, snap.attn_in[i].expand_as(
                       snap.attn_in))[torch.from_numpy(others)].mean())}
        arrays = {"row": snap.weights[L, h, i].double().numpy(),
                  "head_weights": snap.weights[L, h].double().numpy(),
                  "held_loss": snap.held, "pred_sign": pred["sign"], "pred_x": pred["x"]}
        return metrics, {**arrays, "_snapshot": snap}
    before: Snapshot = base["_snapshot"]
    T = snap.q.shape[0]
    others_q = torch.arange(T) != i
    others_rows = others_q.clone()
    others_rows[0] = False              # row 0 has one key: its weight is 1 whatever changes
    tv = _tv(before.weights[L, h], snap.weights[L, h])                       # (T,)
    dq = (snap.q.double() - before.q.double()).norm(dim=-1)                  # (T,)
    cos_q = _cos(before.q, snap.q)                                           # (T,)
    qratio = snap.q.double().norm(dim=-1) / before.q.double().norm(dim=-1)  # (T,)
    tv_layers = _tv(before.weights, snap.weights).amax(-1)                   # (L, nh)
    same = [tv_layers[L, k] for k in range(tv_layers.shape[1]) if k != h]
    held_tv = _tv(before.loc_weights, snap.loc_weights)[:, 1:]              # (N, T-1), rows 1..
    # The merged model: W_Q^h + dW with no branch; then the base weights are put back.
    dW = adapter.delta_weight().detach().double()                            # (dh, d)
    W0 = model.head_wq(L, h).detach().clone()
    model.merge_q_delta(L)
    merged = window_losses(model, w.held_x, w.held_y)
    with torch.no_grad():
        model.head_wq(L, h).copy_(W0)
    x_i = before.attn_in[i].double()                                         # (d,)
    U, S, Vt = np.linalg.svd(dW.numpy())
    v1 = Vt[0]

    def abs_cos(v: torch.Tensor) -> float:
        return float(abs(v1 @ v.numpy()) / np.linalg.norm(v.numpy()))
    dq_rel = (dq / dq[i]).numpy()                                            # (T,)
    m_other = others_q.numpy()
    pred = {k: base[f"pred_{k}"] for k in ("sign", "x")}
    metrics = {
        "steps": len(probs) - 1, "target_before": probs[0], "target_after": probs[-1],
        "tv_target_row": float(tv[i]),
        "tv_others_mean": float(tv[others_rows].mean()),
        "tv_others_max": float(tv[others_rows].max()),
        "others_moved": int((tv[others_rows] > TV_MOVED).sum()), "others": int(others_rows.sum()),
        "cos_q_target": float(cos_q[i]), "cos_q_others_mean": float(cos_q[others_q].mean()),
        "cos_q_others_min": float(cos_q[others_q].min()),
        "qnorm_ratio_target": float(qratio[i]),
        "qnorm_ratio_others_min": float(qratio[others_q].min()),
        "qnorm_ratio_others_max": float(qratio[others_q].max()),
        "dq_ratio": float(dq[i] / dq[others_q].mean()),
        "tv_same_layer_max": float(max(same)) if same else 0.0,
        "tv_earlier_layers_max": float(tv_layers[:L].max()) if L else 0.0,
        "tv_later_layers_max": float(tv_layers[L + 1:].max()) if L + 1 < len(tv_layers) else 0.0,
        "train_loss_after": snap.train_loss,
        "held_tv_mean": float(held_tv.mean()), "held_tv_max": float(held_tv.max()),
        "held_moved_frac": float((held_tv > TV_MOVED).double().mean()),
        "held_tv_last_mean": float(held_tv[:, -1].mean()),
        "held_loss_branch": float(snap.held.mean()), "held_loss_merged": float(merged.mean()),
        "held_loss_delta": float(merged.mean() - base["held_loss"].mean()),
        "held_windows_worse": float((merged > base["held_loss"]).mean()),
        "merge_max_abs_diff": float(np.abs(merged - snap.held).max()),
        "dw_rel_fro": float(dW.norm() / W0.double().norm()),
        "dw_rank": int((S > S[0] * max(dW.shape) * np.finfo(np.float32).eps).sum()),
        "dw_sigma2_over_sigma1": float(S[1] / S[0]),
        "dw_v1_cos_sign_x": abs_cos(torch.sign(x_i)), "dw_v1_cos_x": abs_cos(x_i),
        "fit_sign": _fit(dq_rel[m_other], pred["sign"][m_other]),
        "fit_x": _fit(dq_rel[m_other], pred["x"][m_other]),
    }
    if not math.isfinite(metrics["dw_sigma2_over_sigma1"]):
        metrics["dw_sigma2_over_sigma1"] = 0.0
    arrays = {"prob_curve": np.asarray(probs, dtype=np.float64),
              "row": snap.weights[L, h, i].double().numpy(), "tv_rows": tv.numpy(),
              "dq_rel": dq_rel, "cos_q": cos_q.numpy(),
              "held_tv_rows": held_tv.numpy(), "held_loss_change": merged - base["held_loss"],
              "delta_w": dW.numpy()}
    return metrics, arrays
