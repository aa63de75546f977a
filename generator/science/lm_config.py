"""The settings of the trained transformer (kind transformer).

Standard library only. Kept apart from the steering settings: the model's results are keyed by
this module's source, so an edit to the steering experiment's settings never retrains it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .settings_io import at_least

# sha256 of pydoc_data/topics.py as CPython 3.11.7 ships it (science.corpus refuses another).
TOPICS_SHA256_3_11_7 = "abaa56a64551d8eead1b19cbae3c6db443f99f0cab81df07bed3cb75c0db9346"


@dataclass(frozen=True)
class LMSettings:
    """Everything that decides the trained model. Equal settings give bit-identical weights."""

    n_layer: int = 4
    n_head: int = 4
    d_model: int = 64               # d; each head has d_model / n_head dimensions
    ctx: int = 64                   # context length T (training windows and the steered sequence)
    steps: int = 1200               # the training budget: AdamW steps ...
    batch: int = 24                 # ... of this many random windows (batch * ctx characters)
    lr: float = 0.01                # peak learning rate, after a linear warm-up
    warmup: int = 80
    min_lr_frac: float = 0.1        # cosine decay to lr * min_lr_frac at the last step
    weight_decay: float = 0.1       # on matrices only (not LayerNorm)
    grad_clip: float = 1.0          # global gradient norm
    init_seed: int = 0              # the weights' initial draw
    data_seed: int = 1              # the batch sampler
    eval_every: int = 120           # held-out loss on all held-out text every this many steps
    holdout_every: int = 10         # topic k is held out when k % holdout_every == holdout_at
    holdout_at: int = 6
    corpus_sha256: str = TOPICS_SHA256_3_11_7
    threads: int = 1                # torch intra-op threads: they change the bits, so fixed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self, bad) -> None:
        """Refuse the first value the model cannot take."""
        at_least(self, bad, 1, "n_layer", "n_head", "d_model", "steps", "batch", "eval_every",
                  "threads")
        at_least(self, bad, 2, "ctx", "holdout_every")
        at_least(self, bad, 0, "warmup", "init_seed", "data_seed", "weight_decay")
        if self.d_model % self.n_head:
            raise bad("d_model",
                      f"must be a multiple of n_head={self.n_head}, got {self.d_model}")
        if self.lr <= 0:
            raise bad("lr", f"must be > 0, got {self.lr!r}")
        if not 0 <= self.min_lr_frac <= 1:
            raise bad("min_lr_frac", f"must lie in [0, 1], got {self.min_lr_frac!r}")
        if self.grad_clip <= 0:
            raise bad("grad_clip", f"must be > 0, got {self.grad_clip!r}")
        if not 0 <= self.holdout_at < self.holdout_every:
            raise bad("holdout_at",
                      f"must lie in 0..{self.holdout_every - 1}, got {self.holdout_at}")
        sha = self.corpus_sha256
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise bad("corpus_sha256", "must be a sha256 in lower-case hex (64 characters)")
