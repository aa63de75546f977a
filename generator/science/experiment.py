"""Run one experiment: steer query `query` towards key `key` by training only a LoRA branch.

``run_experiment(cfg)`` is pure computation: it reads no files and writes none. It returns the
arrays the figures and metrics are computed from; ``results.py`` saves them.
"""
from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .attention import TinySelfAttention
from .config import ExperimentConfig
from ..core.errors import ExperimentError
from .lora import inject_lora
from .metrics import compute_metrics
from ..core.numerics import in_use as numerics_in_use

# Called after every optimiser step with (step, loss, target weight); the CLI draws progress.
Progress = Callable[[int, float, float], None]


@dataclass(frozen=True)
class Result:
    config: ExperimentConfig
    arrays: dict[str, np.ndarray]   # name -> array, all float32 except where noted
    metrics: dict                   # JSON-able numbers and lists, see metrics.compute_metrics
    provenance: dict                # versions, threads, steps, wall time


def make_tokens(cfg: ExperimentConfig, gen: torch.Generator) -> torch.Tensor:
    """The fixed input sequence X, (n, d). Correlated tokens share one random component."""
    z = torch.randn(cfg.seq_len, cfg.d_model, generator=gen)            # (n, d)
    if cfg.tokens == "gaussian":
        return z
    shared = torch.randn(1, cfg.d_model, generator=gen)                # (1, d)
    # Unit variance per coordinate is kept; the expected cosine between two tokens is token_corr.
    return math.sqrt(1.0 - cfg.token_corr) * z + math.sqrt(cfg.token_corr) * shared


def build_model(cfg: ExperimentConfig) -> tuple[torch.Tensor, TinySelfAttention, torch.nn.Module]:
    """Seeded X, attention weights and LoRA branch, drawn in that order from one generator."""
    gen = torch.Generator().manual_seed(cfg.seed)
    X = make_tokens(cfg, gen)
    # nn.Linear draws its init from the global RNG: fork it so a run never disturbs its caller.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        attn = TinySelfAttention(cfg.d_model)
        lora = inject_lora(attn, site=cfg.site, r=cfg.rank, alpha=cfg.alpha,
                           a_init=cfg.a_init, a_std=cfg.a_std)
    return X, attn, lora


def _snapshot(out) -> dict[str, np.ndarray]:
    return {name: getattr(out, name).detach().numpy().copy()
            for name in ("Q", "K", "V", "scores", "weights")}


def run_experiment(cfg: ExperimentConfig, progress: Progress | None = None) -> Result:
    """Train the LoRA parameters (Adam, or plain gradient descent) on the cross-entropy of
    scores[query] against key."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, progress)
    finally:
        torch.set_num_threads(threads_before)


def _run(cfg: ExperimentConfig, progress: Progress | None) -> Result:
    X, attn, lora = build_model(cfg)
    params = [lora.A, lora.B]
    if cfg.optimizer == "sgd":     # plain gradient descent: no momentum, no normalisation
        opt = torch.optim.SGD(params, lr=cfg.lr)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr)
    target = torch.tensor([cfg.key])                                    # (1,)

    with torch.no_grad():
        before = _snapshot(attn(X))

    losses: list[float] = []
    probs: list[float] = []
    maps: list[np.ndarray] = []        # the attention map before each step, and at the end
    steps = 0
    while True:
        out = attn(X)
        p = float(out.weights[cfg.query, cfg.key].detach())
        probs.append(p)
        maps.append(out.weights.detach().numpy().copy())                # (n, n)
        # Check before stepping: a run that starts above stop_prob takes zero steps.
        if p >= cfg.stop_prob or steps >= cfg.max_steps:
            break
        loss = F.cross_entropy(out.scores[cfg.query:cfg.query + 1], target)   # scalar
        if not torch.isfinite(loss):
            raise ExperimentError(
                f"non-finite loss ({float(loss.detach())}) at step {steps + 1}",
                field="experiment",
                hint="lower lr or alpha, or reduce a_std; the update has diverged")
        opt.zero_grad(set_to_none=True)
        # With LoRA on V the scores do not depend on A or B: the loss has no gradient, the
        # optimizer skips parameters without one, and the run honestly ends at max_steps without
        # reaching the target.
        if loss.requires_grad:
            loss.backward()
        opt.step()
        steps += 1
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(steps, losses[-1], p)

    with torch.no_grad():
        after = _snapshot(attn(X))
        delta_w = lora.delta_weight().numpy().copy()                   # (d, d)
    arrays = {"X": X.numpy().copy(), "delta_w": delta_w,
              "A": lora.A.detach().numpy().copy(), "B": lora.B.detach().numpy().copy(),
              "W_base": lora.base.weight.detach().numpy().copy(),
              "loss": np.asarray(losses, dtype=np.float32),
              "target_prob": np.asarray(probs, dtype=np.float32),
              "weights_steps": np.stack(maps).astype(np.float32)}             # (T+1, n, n)
    for name, value in before.items():
        arrays[f"{name}_before"] = value
    for name, value in after.items():
        arrays[f"{name}_after"] = value
    metrics = compute_metrics(cfg, arrays)
    provenance = {
        "seed": cfg.seed,
        "threads": cfg.threads,
        "steps": steps,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        # The kernels that computed these numbers (numerics.py): identical on every x86-64
        # machine where the pins hold, so the file does not change with the machine.
        "numerics": numerics_in_use(),
        # No wall time: results are committed in the freeze, and a clock reading would make
        # every retrain a new file. Timing is the benchmark's job (make bench).
    }
    return Result(cfg, arrays, metrics, provenance)
