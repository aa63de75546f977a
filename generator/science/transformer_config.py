"""The settings of the trained transformer and of the steering experiment on one of its heads.

Standard library only: the build validates front matter, and checks freshness, without torch.
``from_mapping`` reads either from YAML or JSON data, with one-line errors naming the post and
the field.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, TypeVar

from ..core.errors import ConfigError, unknown_key_error

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


@dataclass(frozen=True)
class SteeringSettings:
    """One head of the trained model steered by LoRA and by full fine-tuning of its W_Q."""

    model: str = "lm"               # the experiment (kind transformer) whose model is steered
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


S = TypeVar("S")


def _coerce(f: dataclasses.Field, value: Any, bad: Callable[[str, str], ConfigError]) -> Any:
    kind = f.type
    if kind == "float":
        if isinstance(value, str):          # YAML reads 1e-2 as a string
            try:
                value = float(value)
            except ValueError:
                raise bad(f.name, f"must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            raise bad(f.name, f"must be a finite number, got {value!r}")
        return float(value)
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad(f.name, f"must be an integer, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise bad(f.name, f"must be a string, got {value!r}")
    return value


def from_mapping(cls: type[S], data: Mapping[str, Any] | None, *, source: object | None = None,
                 prefix: str = "") -> S:
    """``cls`` from front matter (or a result's JSON): unknown keys and bad values are
    ConfigErrors naming the source and the field."""
    data = dict(data or {})
    names = [f.name for f in fields(cls)]
    for key in sorted(map(str, data)):
        if key not in names:
            raise unknown_key_error(key, names, source=source, prefix=prefix)

    def bad(name: str, message: str) -> ConfigError:
        return ConfigError(message, path=source, field=prefix + name)

    values = {f.name: _coerce(f, data[f.name], bad) for f in fields(cls) if f.name in data}
    out = cls(**values)
    CHECKS[cls](out, bad)
    return out


def _at_least(s: Any, bad, minimum: int | float, *names: str) -> None:
    for name in names:
        if getattr(s, name) < minimum:
            raise bad(name, f"must be >= {minimum}, got {getattr(s, name)!r}")


def _check_lm(s: LMSettings, bad) -> None:
    _at_least(s, bad, 1, "n_layer", "n_head", "d_model", "steps", "batch", "eval_every",
              "threads")
    _at_least(s, bad, 2, "ctx", "holdout_every")
    _at_least(s, bad, 0, "warmup", "init_seed", "data_seed", "weight_decay")
    if s.d_model % s.n_head:
        raise bad("d_model", f"must be a multiple of n_head={s.n_head}, got {s.d_model}")
    if s.lr <= 0:
        raise bad("lr", f"must be > 0, got {s.lr!r}")
    if not 0 <= s.min_lr_frac <= 1:
        raise bad("min_lr_frac", f"must lie in [0, 1], got {s.min_lr_frac!r}")
    if s.grad_clip <= 0:
        raise bad("grad_clip", f"must be > 0, got {s.grad_clip!r}")
    if not 0 <= s.holdout_at < s.holdout_every:
        raise bad("holdout_at", f"must lie in 0..{s.holdout_every - 1}, got {s.holdout_at}")
    if len(s.corpus_sha256) != 64 or any(c not in "0123456789abcdef" for c in s.corpus_sha256):
        raise bad("corpus_sha256", "must be a sha256 in lower-case hex (64 characters)")


def _check_steering(s: SteeringSettings, bad) -> None:
    if not s.model:
        raise bad("model", "must name an experiment of kind transformer")
    _at_least(s, bad, 0, "layer", "head", "sequence", "seed")
    _at_least(s, bad, 1, "rank", "max_steps", "heldout", "threads")
    _at_least(s, bad, -1, "query", "key")
    for name in ("alpha", "a_std", "lr", "sgd_lr"):
        if getattr(s, name) <= 0:
            raise bad(name, f"must be > 0, got {getattr(s, name)!r}")
    if not 0 < s.stop_prob < 1:
        raise bad("stop_prob", f"must lie strictly between 0 and 1, got {s.stop_prob!r}")


CHECKS: dict[type, Callable[[Any, Callable], None]] = {LMSettings: _check_lm,
                                                       SteeringSettings: _check_steering}
