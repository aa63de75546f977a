"""A single-head self-attention that shows its work: every intermediate tensor is returned."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class AttentionOutput(NamedTuple):
    out: torch.Tensor      # (n, d) weights @ V
    Q: torch.Tensor        # (n, d) queries
    K: torch.Tensor        # (n, d) keys
    V: torch.Tensor        # (n, d) values
    scores: torch.Tensor   # (n, n) Q K^T / sqrt(d), before softmax
    weights: torch.Tensor  # (n, n) softmax over keys; each row sums to 1


class TinySelfAttention(nn.Module):
    """Bias-free q, k, v projections of width d_model and scaled dot-product attention."""

    def __init__(self, d_model: int = 64) -> None:
        super().__init__()
        self.d_model = d_model
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> AttentionOutput:
        # x: (..., n, d); the leading dimensions, if any, are batch dimensions.
        Q = self.q_proj(x)                                               # (..., n, d)
        K = self.k_proj(x)                                               # (..., n, d)
        V = self.v_proj(x)                                               # (..., n, d)
        scores = Q @ K.transpose(-2, -1) / math.sqrt(self.d_model)       # (..., n, n)
        weights = F.softmax(scores, dim=-1)                              # (..., n, n), rows sum to 1
        out = weights @ V                                                # (..., n, d)
        return AttentionOutput(out, Q, K, V, scores, weights)
