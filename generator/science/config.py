"""The settings of one LoRA experiment, built from a plain mapping with clear errors.

Only the standard library is imported here, so the CLI can validate settings without torch.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..core.errors import ConfigError, unknown_key_error

SITES = ("q", "k", "v")
A_INITS = ("gaussian", "kaiming")
TOKEN_KINDS = ("gaussian", "correlated")

# Bounds checked before anything is allocated. A run keeps every array it computes, and its
# arrays.npz is committed in content/_freeze: GitHub warns about files over 50 MB and refuses
# them over 100 MB, and d_model 4096 alone makes 134 MB (two d x d float32 matrices).
MAX_SEED = 2**63 - 1            # torch's generators take a 64-bit seed
MAX_D_MODEL = 2048
MAX_SEQ_LEN = 1024
MAX_STEPS = 1_000_000
MAX_THREADS = 64
MAX_RESULT_MB = 50


def result_bytes(cfg: "ExperimentConfig") -> int:
    """The size of the run's arrays (float32; science.experiment saves these): X, the Q, K, V
    before and after (n x d each), ΔW and W_base (d x d), A and B (r x d), the scores and
    weights before and after (n x n), the loss and target probability per step."""
    d, n, r, steps = cfg.d_model, cfg.seq_len, cfg.rank, cfg.max_steps
    return 4 * (2 * d * d + 7 * n * d + 2 * r * d + 4 * n * n + 2 * steps + 1)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides one training run. Two equal configs give bit-identical results."""

    seed: int = 0                # seeds X, the attention weights and the LoRA A matrix, in that order
    d_model: int = 64            # embedding width d; scores are divided by sqrt(d)
    seq_len: int = 10            # number of tokens n in the fixed input sequence X
    tokens: str = "gaussian"     # "gaussian": x_i ~ N(0, I); "correlated": a shared component added
    token_corr: float = 0.5      # weight of the shared component when tokens == "correlated"
    site: str = "q"              # which projection gets the LoRA branch: q, k or v
    rank: int = 4                # r, the rank of the update B A
    alpha: float = 8.0           # LoRA scale numerator; the update is (alpha / r) B A
    a_init: str = "gaussian"     # "gaussian": A ~ N(0, a_std^2) as in the reference; "kaiming": as PEFT/loralib
    a_std: float = 0.01          # standard deviation of A under the gaussian init
    lr: float = 0.01             # Adam learning rate for A and B
    max_steps: int = 500         # hard cap on optimisation steps
    stop_prob: float = 0.9       # stop once weights[query, key] reaches this probability
    query: int = 0               # the query token whose attention we steer
    key: int = 5                 # the key token it should attend to
    threads: int = 1             # torch intra-op threads; fixed so reductions run in one order

    def __post_init__(self) -> None:
        validate_experiment(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_experiment(cfg: ExperimentConfig, *, source: object | None = None,
                        prefix: str = "") -> None:
    """Raise ConfigError on the first invalid value, naming the field and the fix."""

    def bad(name: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, path=source, field=prefix + name, hint=hint)

    def at_most(name: str, bound: int, why: str) -> None:
        value = getattr(cfg, name)
        if value > bound:
            raise bad(name, f"must be at most {bound}, got {value}", hint=why)

    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.type in ("int",) and not _is_int(value):
            raise bad(f.name, f"must be an integer, got {value!r}")
        if f.type in ("float",) and not _is_number(value):
            raise bad(f.name, f"must be a number, got {value!r}")
        if f.type in ("str",) and not isinstance(value, str):
            raise bad(f.name, f"must be a string, got {value!r}")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise bad("seed", f"must be between 0 and 2**63 - 1, got {cfg.seed}",
                  hint="torch seeds its generators with a 64-bit number")
    if cfg.d_model < 1:
        raise bad("d_model", f"must be >= 1, got {cfg.d_model}")
    too_big = (f"the run's arrays go into content/_freeze, whose files must stay under "
               f"{MAX_RESULT_MB} MB")
    at_most("d_model", MAX_D_MODEL, too_big)
    if cfg.seq_len < 2:
        raise bad("seq_len", f"must be >= 2 so a query has more than one key, got {cfg.seq_len}")
    at_most("seq_len", MAX_SEQ_LEN, too_big)
    if not 1 <= cfg.rank <= cfg.d_model:
        raise bad("rank", f"must be between 1 and d_model={cfg.d_model}, got {cfg.rank}")
    if not (math.isfinite(cfg.alpha) and cfg.alpha > 0):
        raise bad("alpha", f"must be a positive finite number, got {cfg.alpha!r}")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise bad("lr", f"must be a positive finite number, got {cfg.lr!r}")
    if not (math.isfinite(cfg.a_std) and cfg.a_std > 0):
        raise bad("a_std", f"must be a positive finite number, got {cfg.a_std!r}")
    if cfg.max_steps < 1:
        raise bad("max_steps", f"must be >= 1, got {cfg.max_steps}")
    at_most("max_steps", MAX_STEPS, "the loss of every step is kept in the results")
    if not (0.0 < cfg.stop_prob < 1.0):
        raise bad("stop_prob", f"must lie strictly between 0 and 1, got {cfg.stop_prob!r}")
    for name in ("query", "key"):
        idx = getattr(cfg, name)
        if not 0 <= idx < cfg.seq_len:
            raise bad(name, f"must index a token of the sequence (0..{cfg.seq_len - 1}), got {idx}")
    if cfg.site not in SITES:
        raise bad("site", f"must be one of {', '.join(SITES)}, got {cfg.site!r}")
    if cfg.a_init not in A_INITS:
        raise bad("a_init", f"must be one of {', '.join(A_INITS)}, got {cfg.a_init!r}")
    if cfg.tokens not in TOKEN_KINDS:
        raise bad("tokens", f"must be one of {', '.join(TOKEN_KINDS)}, got {cfg.tokens!r}")
    if not (math.isfinite(cfg.token_corr) and 0 <= cfg.token_corr < 1):
        raise bad("token_corr", f"must lie in [0, 1), got {cfg.token_corr!r}")
    if cfg.threads < 1:
        raise bad("threads", f"must be >= 1, got {cfg.threads}")
    at_most("threads", MAX_THREADS, "torch cannot start that many threads")
    size = result_bytes(cfg)
    if size > MAX_RESULT_MB * 1_000_000:
        raise bad("d_model" if cfg.d_model * cfg.d_model >= cfg.seq_len * cfg.d_model
                  else "seq_len",
                  f"d_model={cfg.d_model} with seq_len={cfg.seq_len} would make arrays.npz "
                  f"{size / 1e6:.0f} MB, over the {MAX_RESULT_MB} MB limit",
                  hint="lower d_model or seq_len; GitHub refuses files over 100 MB")


def experiment_from_mapping(data: Mapping[str, Any] | None, *, source: object | None = None,
                            prefix: str = "") -> ExperimentConfig:
    """Build an ExperimentConfig from YAML/JSON data: unknown keys and bad values are errors."""
    data = dict(data or {})
    names = [f.name for f in fields(ExperimentConfig)]
    for key in sorted(data):
        if key not in names:
            raise unknown_key_error(str(key), names, source=source, prefix=prefix)
    # YAML reads "1e-2" as a string and "8" as an int; accept ints where floats are wanted.
    kwargs: dict[str, Any] = {}
    for f in fields(ExperimentConfig):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.type == "float" and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"must be a number, got {value!r}", path=source,
                                  field=prefix + f.name) from None
        if f.type == "float" and _is_int(value):
            value = float(value)
        kwargs[f.name] = value
    # Validate before constructing, with the source and field prefix, so the message says where
    # the bad value lives (the constructor's own check cannot know the file).
    draft = object.__new__(ExperimentConfig)
    for f in fields(ExperimentConfig):
        object.__setattr__(draft, f.name, kwargs.get(f.name, f.default))
    validate_experiment(draft, source=source, prefix=prefix)
    return ExperimentConfig(**kwargs)
