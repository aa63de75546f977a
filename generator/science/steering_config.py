"""The settings of the steering experiment on one head of a trained transformer (kind steering).

Standard library only. Whether the head, query and key exist in the model is checked when the
model is known (science.steering.locate).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .settings_io import at_least


@dataclass(frozen=True)
class SteeringSettings:
    """One head of the trained model steered by LoRA and by full fine-tuning of its W_Q."""

    model: str = "tinygpt"          # the experiment (kind transformer) whose model is steered
    layer: int = 3                  # the most diffuse head outside layer 0 of the default model
    head: int = 0
    sequence: int = 0               # which held-out window is the training sequence
    query: int = -1                 # the steered query position; -1: the last one
    key: int = -1                   # the target key; -1: the key of median weight in that row
    rank: int = 4                   # LoRA r
    alpha: float = 8.0              # LoRA scale numerator: the update is (alpha / r) B A
    a_std: float = 0.01             # A ~ N(0, a_std^2); B = 0
    lr: float = 0.01                # Adam, both methods
    sgd_lr: float = 1.0             # plain gradient descent (the control), full fine-tuning
    stop_prob: float = 0.9          # stop once the head puts this weight on the key
    max_steps: int = 500
    seed: int = 0                   # LoRA's A
    heldout: int = 32               # held-out windows the locality is measured on
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self, bad) -> None:
        """Refuse the first value the experiment cannot take."""
        if not self.model:
            raise bad("model", "must name an experiment of kind transformer")
        at_least(self, bad, 0, "layer", "head", "sequence", "seed")
        at_least(self, bad, 1, "rank", "max_steps", "heldout", "threads")
        at_least(self, bad, -1, "query", "key")
        for name in ("alpha", "a_std", "lr", "sgd_lr"):
            if getattr(self, name) <= 0:
                raise bad(name, f"must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.stop_prob < 1:
            raise bad("stop_prob", f"must lie strictly between 0 and 1, got {self.stop_prob!r}")
