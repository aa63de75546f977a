"""Held-out inputs: the trained update applied to fresh sequences it never saw.

A run trains on one sequence X. To ask whether the adapter changes attention elsewhere, each run
also gets ``HELDOUT_SEQUENCES`` fresh sequences drawn from the same distribution as X (the same
token kind and correlation, from a generator of their own so the training draws are untouched),
and the frozen head is evaluated on them with and without the update. Nothing is trained here.

``heldout_attention`` works on stacks of runs (the batched engine calls it with its own frozen
weights); ``heldout_of_run`` is the same evaluation for one run from its config and its update,
which the tests hold the batched path to.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import ExperimentConfig

HELDOUT_SEQUENCES = 16
# The fresh sequences of seed s come from a generator seeded with HELDOUT_SEED_OFFSET + s, far
# outside the seeds any audit trains on, so they never repeat a training sequence's stream.
HELDOUT_SEED_OFFSET = 1 << 40


def fresh_tokens(cfg: ExperimentConfig, m: int = HELDOUT_SEQUENCES) -> torch.Tensor:
    """m fresh sequences of cfg's token distribution, (m, n, d), deterministic in cfg.seed."""
    gen = torch.Generator().manual_seed(HELDOUT_SEED_OFFSET + cfg.seed)
    z = torch.randn(m, cfg.seq_len, cfg.d_model, generator=gen)         # (m, n, d)
    if cfg.tokens == "gaussian":
        return z
    # As experiment.make_tokens: each sequence gets its own shared component.
    shared = torch.randn(m, 1, cfg.d_model, generator=gen)              # (m, 1, d)
    return math.sqrt(1.0 - cfg.token_corr) * z + math.sqrt(cfg.token_corr) * shared


def heldout_attention(X: torch.Tensor, W: dict[str, torch.Tensor], delta_w: torch.Tensor,
                      site: str) -> dict[str, torch.Tensor]:
    """Attention of the frozen head on fresh sequences, before and after adding the update.

    X: (S, m, n, d) fresh tokens; W: "q", "k", "v" -> (S, d, d) frozen weights (out x in, as
    nn.Linear stores them); delta_w: (S, d, d) the trained update of W[site].
    Returns weights_before, weights_after (S, m, n, n) and dproj (S, m, n, d), the change of
    the adapted projection of every fresh token.
    """
    def proj(w: torch.Tensor) -> torch.Tensor:                          # (S, d, d) -> (S, m, n, d)
        return X @ w.transpose(-1, -2).unsqueeze(1)

    d = X.shape[-1]
    base = {k: proj(W[k]) for k in ("q", "k")}
    dproj = proj(delta_w)                                               # (S, m, n, d)
    adapted = dict(base)
    if site in adapted:
        adapted[site] = base[site] + dproj

    def weights(p: dict[str, torch.Tensor]) -> torch.Tensor:
        scores = p["q"] @ p["k"].transpose(-1, -2) / math.sqrt(d)       # (S, m, n, n)
        return F.softmax(scores, dim=-1)

    return {"weights_before": weights(base), "weights_after": weights(adapted), "dproj": dproj}


def heldout_of_run(cfg: ExperimentConfig, delta_w: torch.Tensor,
                   m: int = HELDOUT_SEQUENCES) -> dict[str, torch.Tensor]:
    """heldout_attention for one run (S = 1) from its config and update delta_w (d, d), with
    the frozen weights taken from the modules experiment.build_model makes."""
    from .experiment import build_model

    _, attn, lora = build_model(cfg)
    W = {}
    for k in ("q", "k", "v"):
        layer = lora.base if k == cfg.site else getattr(attn, f"{k}_proj")
        W[k] = layer.weight.detach().unsqueeze(0)                       # (1, d, d)
    out = heldout_attention(fresh_tokens(cfg, m).unsqueeze(0), W, delta_w.unsqueeze(0),
                            cfg.site)
    return {name: value[0] for name, value in out.items()}
