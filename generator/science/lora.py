"""LoRA: a frozen linear layer plus a trainable low-rank branch (alpha / r) B A."""
from __future__ import annotations

import math

import torch
import torch.nn as nn


class LoRALinear(nn.Module):
    """A drop-in for ``nn.Linear`` whose weight is ``W + (alpha / r) B A`` with W frozen.

    A is (r, d_in) and B is (d_out, r). B starts at zero, so the product B A is zero and the
    adapted layer computes exactly what its base computed until the first optimiser step; A starts
    random so that B's gradient (which is proportional to A x) is not zero as well.
    """

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float = 8.0,
                 a_init: str = "gaussian", a_std: float = 0.01) -> None:
        super().__init__()
        if not 1 <= r <= min(base.in_features, base.out_features):
            raise ValueError(f"rank r={r} must lie in 1..min(d_in, d_out)")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r = r
        self.alpha = alpha
        self.scale = alpha / r
        self.A = nn.Parameter(torch.empty(r, base.in_features))    # (r, d_in)
        self.B = nn.Parameter(torch.zeros(base.out_features, r))   # (d_out, r), zero: a no-op start
        if a_init == "gaussian":
            # The reference's choice: small isotropic noise.
            nn.init.normal_(self.A, mean=0.0, std=a_std)
        elif a_init == "kaiming":
            # What loralib and PEFT do: the same init nn.Linear gives its own weight.
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        else:
            raise ValueError(f"unknown a_init {a_init!r}: use 'gaussian' or 'kaiming'")

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update added to the base weight: (alpha / r) B A, shape (d_out, d_in), rank <= r."""
        return self.scale * (self.B @ self.A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Two thin matmuls instead of forming B A: the branch costs O(r (d_in + d_out)) per token.
        return self.base(x) + self.scale * ((x @ self.A.T) @ self.B.T)   # (..., d_out)

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A plain nn.Linear holding W + delta W: same outputs, no extra cost at inference."""
        merged = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None)
        merged.weight.copy_(self.base.weight + self.delta_weight())
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        return merged


def inject_lora(attn: nn.Module, site: str = "q", r: int = 4, alpha: float = 8.0,
                a_init: str = "gaussian", a_std: float = 0.01) -> LoRALinear:
    """Freeze every weight of ``attn`` and wrap its ``{site}_proj`` in a LoRALinear."""
    for p in attn.parameters():
        p.requires_grad_(False)
    name = f"{site}_proj"
    lora = LoRALinear(getattr(attn, name), r=r, alpha=alpha, a_init=a_init, a_std=a_std)
    setattr(attn, name, lora)
    return lora
