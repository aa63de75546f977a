"""Train many independent runs as one batched tensor program.

``run_experiment`` trains one run: a dozen optimiser steps on 10 x 64 tensors, so its time is
almost all Python and dispatch overhead. An audit needs thousands of runs; here every tensor gets
a leading run dimension S and each step is one batched matmul chain, one backward and one Adam
update for all runs still training.

Exactness, not just similarity, is the contract: run s of a batch reproduces
``run_experiment(specs[s].config)`` (same init draws, same forward, same Adam arithmetic), up to
the rounding of batched versus unbatched matmul kernels. Three rules make that hold:

- the initial tensors are drawn exactly as ``experiment.build_model`` draws them (same generator,
  same order, same init functions), without building modules;
- a run stops by the same test as the single engine (target weight >= stop_prob, checked before
  each step, or max_steps reached) and is then *removed* from the active set: its parameters and
  its Adam state are never touched again (compaction, rather than a masked update, so finished
  runs cost nothing);
- Adam is torch.optim.Adam's single-tensor CPU formula, written out on stacked tensors. Every run
  still training has taken the same number of steps (all start together and none pauses), so the
  bias corrections are shared scalars; runs are grouped by learning rate so the step size is the
  same Python float the single engine uses. Plain gradient descent (optimizer "sgd") is
  torch.optim.SGD's formula without momentum, p -= lr g, likewise.

Runs in one call share the shape (d_model, seq_len, rank); seeds and every other setting may
differ. Runs are sub-grouped internally by (site, update, optimizer, lr) and each group trains as
one program.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import ExperimentConfig
from ..core.errors import ConfigError, ExperimentError
from .experiment import make_tokens
from .heldout import fresh_tokens, heldout_attention

UPDATES = ("lora", "full")
SITE_NAMES = ("q", "k", "v")
SNAPSHOT = ("Q", "K", "V", "scores", "weights")

# torch.optim.Adam defaults, which run_experiment uses.
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8

# Called after each batched step with (runs finished so far, runs in total).
BatchProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class RunSpec:
    """One run of a batch: an experiment config and what is trained.

    update == "lora": the LoRA factors A, B on ``config.site`` (exactly run_experiment).
    update == "full": the whole weight of ``config.site``, with the same loss, optimiser,
    learning rate and stopping rule (the full fine-tuning baseline; there is no single-run
    engine for it, the tests check it against a plain torch loop).
    """

    config: ExperimentConfig
    update: str = "lora"

    def __post_init__(self) -> None:
        if self.update not in UPDATES:
            raise ConfigError(f"must be one of {', '.join(UPDATES)}, got {self.update!r}",
                              field="update")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with n torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def initial_tensors(cfg: ExperimentConfig) -> dict[str, torch.Tensor]:
    """X, W_q, W_k, W_v and A exactly as experiment.build_model draws them (bit for bit).

    build_model seeds a generator with cfg.seed, draws X, then a second seed that reseeds a
    forked global RNG for nn.Linear's init (q, k, v in that order) and then the LoRA A matrix.
    A private generator seeded with that second seed yields the same stream, and calling the
    same init functions with it avoids building modules (about 5x cheaper per run).
    """
    d, n, r = cfg.d_model, cfg.seq_len, cfg.rank
    X, W, A = torch.empty(n, d), torch.empty(3, d, d), torch.empty(r, d)
    _draw_into(cfg, X, W, A)
    return {"X": X, "W_q": W[0], "W_k": W[1], "W_v": W[2], "A": A}


def _linear_bound(d: int) -> float:
    """nn.init.kaiming_uniform_(w, a=sqrt(5))'s bound for fan-in d (nn.Linear's init), by the
    same expression."""
    return math.sqrt(3.0) * (torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
                             / math.sqrt(d))


def _draw_into(cfg: ExperimentConfig, X: torch.Tensor, W: torch.Tensor, A: torch.Tensor,
               gens: tuple[torch.Generator, torch.Generator] | None = None,
               bound: float | None = None) -> None:
    """Fill X (n, d), W (3, d, d) = (q, k, v) and A (r, d) in place with one run's init.

    gens: two generators to reseed (reseeding resets a generator's whole state, so reusing
    them draws what fresh ones would); bound: _linear_bound(cfg.d_model), if known."""
    gen, inner = gens if gens is not None else (torch.Generator(), torch.Generator())
    gen.manual_seed(cfg.seed)
    X.copy_(make_tokens(cfg, gen))                                      # (n, d)
    inner.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
    # uniform_ draws element by element, so one call for the three (d, d) weights q, k, v
    # yields exactly the three calls nn.Linear makes in that order.
    bound = _linear_bound(cfg.d_model) if bound is None else bound
    W.uniform_(-bound, bound, generator=inner)                          # (3, d_out, d_in)
    if cfg.a_init == "gaussian":
        A.normal_(0.0, cfg.a_std, generator=inner)                      # (r, d_in)
    else:   # kaiming_uniform_(A, a=sqrt(5)): fan_in is d again, so the same bound
        A.uniform_(-bound, bound, generator=inner)


@dataclass
class Batch:
    """Stacked results of S runs; arrays[name][s] belongs to specs[s].

    Per-run arrays have the single engine's names and shapes with a leading S:
    X (S, n, d); W_base (S, d, d) the adapted projection's initial weight; A (S, r, d) and
    B (S, d, r) (NaN for full fine-tuning); delta_w (S, d, d); {Q,K,V,scores,weights}_{before,after}.
    Traces are padded with NaN past each run's end: target_prob (S, T+1), loss (S, T) and
    a_align (S, T+1), the fraction of x_query's norm inside A's row space (NaN for "full");
    with trace_weights, weights_steps (S, T+1, n, n), the attention map before each step;
    with heldout=m, heldout_X (S, m, n, d), heldout_weights_{before,after} (S, m, n, n) and
    heldout_dproj_norm (S, m, n) (science.heldout).
    steps (S,) int64 counts the optimiser steps each run took.
    """

    specs: tuple[RunSpec, ...]
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.specs)

    def run_arrays(self, i: int) -> dict[str, np.ndarray]:
        """Run i's arrays under run_experiment's names, traces trimmed to its own length."""
        steps = int(self.arrays["steps"][i])
        out = {}
        for name, value in self.arrays.items():
            if name in ("steps", "a_align"):
                continue
            if name == "loss":
                out[name] = value[i, :steps].copy()
            elif name in ("target_prob", "weights_steps"):
                out[name] = value[i, :steps + 1].copy()
            else:
                out[name] = value[i].copy()
        return out


def _group_key(spec: RunSpec) -> tuple:
    c = spec.config
    return (c.site, spec.update, c.optimizer, c.lr)


def train_batched(specs: Sequence[RunSpec | ExperimentConfig], *, device: str = "cpu",
                  threads: int = 1, trace_alignment: bool = True, trace_weights: bool = False,
                  heldout: int = 0, progress: BatchProgress | None = None) -> Batch:
    """Train every spec (ExperimentConfig alone means LoRA) and return the stacked results.

    device: "cpu" (default) or "cuda"; threads: torch intra-op threads for the duration (fixed,
    so reductions run in one order and two calls give identical bytes). trace_weights: keep the
    whole attention map at every step (as run_experiment does), not only the target weight.
    heldout: evaluate each trained update on that many fresh sequences (science.heldout).
    """
    specs = tuple(s if isinstance(s, RunSpec) else RunSpec(s) for s in specs)
    if not specs:
        raise ConfigError("no runs to train", field="specs")
    shape = {(s.config.d_model, s.config.seq_len, s.config.rank) for s in specs}
    if len(shape) != 1:
        raise ConfigError(f"runs of one batch must share (d_model, seq_len, rank), got "
                          f"{sorted(shape)}", field="specs", hint="call once per shape")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA is not available on this machine", field="--device",
                          hint="use --device cpu")
    with torch_threads(threads):
        groups: dict[tuple, list[int]] = {}
        for i, s in enumerate(specs):
            groups.setdefault(_group_key(s), []).append(i)
        done_so_far = [0]

        def tick(n_done: int) -> None:
            done_so_far[0] += n_done
            if progress is not None:
                progress(done_so_far[0], len(specs))

        parts = [(idx, _train_group([specs[i] for i in idx], dev, trace_alignment, tick,
                                    trace_weights, heldout))
                 for _, idx in sorted(groups.items(), key=lambda kv: kv[1][0])]
    return Batch(specs, _scatter(parts, len(specs)))


def _scatter(parts: list[tuple[list[int], dict[str, np.ndarray]]], S: int) -> dict[str, np.ndarray]:
    """Put each group's rows back in input order; pad traces to the longest group."""
    if len(parts) == 1:
        return parts[0][1]      # one group holds every run, in input order
    out: dict[str, np.ndarray] = {}
    names = parts[0][1].keys()
    for name in names:
        first = parts[0][1][name]
        if name in ("target_prob", "loss", "a_align", "weights_steps"):
            T = max(p[name].shape[1] for _, p in parts)
            arr = np.full((S, T) + first.shape[2:], np.nan, dtype=first.dtype)
            for idx, p in parts:
                arr[idx, :p[name].shape[1]] = p[name]
        else:
            arr = np.empty((S,) + first.shape[1:], dtype=first.dtype)
            for idx, p in parts:
                arr[idx] = p[name]
        out[name] = arr
    return out


def _adam_step(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor,
               step: int, lr: float) -> None:
    """torch.optim.Adam (single-tensor path, defaults) on stacked tensors, in place."""
    m.lerp_(g, 1 - BETA1)
    v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
    bias_correction1 = 1 - BETA1 ** step
    bias_correction2 = 1 - BETA2 ** step
    step_size = lr / bias_correction1
    denom = (v.sqrt() / bias_correction2 ** 0.5).add_(EPS)
    p.addcdiv_(m, denom, value=-step_size)


def _sgd_step(p: torch.Tensor, g: torch.Tensor, lr: float) -> None:
    """torch.optim.SGD (single-tensor path, no momentum or weight decay), in place."""
    p.add_(g, alpha=-lr)


def _train_group(specs: list[RunSpec], dev: torch.device, trace_alignment: bool,
                 tick: Callable[[int], None], trace_weights: bool = False, heldout: int = 0
                 ) -> dict[str, np.ndarray]:
    """Train runs sharing (shape, site, update, optimizer, lr) as one program; rows follow
    `specs`."""
    cfg0 = specs[0].config
    site, update, lr = cfg0.site, specs[0].update, cfg0.lr
    sgd = cfg0.optimizer == "sgd"
    d, n, r = cfg0.d_model, cfg0.seq_len, cfg0.rank
    S = len(specs)
    lora = update == "lora"

    # Draw every run's init straight into stacked buffers (no per-run tensors to stack).
    # Each run's slice is contiguous, so uniform_ fills it in plain row-major order.
    X_all, W_all, A_all = torch.empty(S, n, d), torch.empty(S, 3, d, d), torch.empty(S, r, d)
    gens, bound = (torch.Generator(), torch.Generator()), _linear_bound(d)
    for i, spec in enumerate(specs):
        _draw_into(spec.config, X_all[i], W_all[i], A_all[i], gens, bound)
    X = X_all.to(dev)                                                            # (S, n, d)
    # Strided views of W_all, not copies: batched matmul reads them in place.
    W = {k: W_all[:, j].to(dev) for j, k in enumerate(SITE_NAMES)}               # (S, d, d)
    A0 = A_all.to(dev)                                                           # (S, r, d)
    seeds = [s.config.seed for s in specs]
    sqrt_d = math.sqrt(d)
    q_idx = torch.tensor([s.config.query for s in specs], device=dev)            # (S,)
    x_row = X[torch.arange(S, device=dev), q_idx].unsqueeze(1)                   # (S, 1, d)
    # Per-run constants. `live` holds the rows of the runs still training and is compacted
    # together with the parameters whenever runs finish, so finished runs cost nothing.
    everyone = {
        "row": torch.arange(S, device=dev),
        "X": X,
        "scale": torch.tensor([s.config.alpha / s.config.rank for s in specs],
                              dtype=torch.float32, device=dev).view(S, 1, 1),
        "query": q_idx,
        "key": torch.tensor([s.config.key for s in specs], device=dev),
        "stop": torch.tensor([s.config.stop_prob for s in specs], dtype=torch.float64,
                             device=dev),
        "max_steps": torch.tensor([s.config.max_steps for s in specs], device=dev),
        "x_query": x_row.squeeze(1).double(),                                   # (S, d)
        "x_row": x_row,                                                          # (S, 1, d)
    }
    # The projections that are not trained never change: compute them once, as the single
    # engine's frozen nn.Linear computes them at every step.
    for k in SITE_NAMES:
        everyone[f"base_{k}"] = X @ W[k].transpose(-1, -2)                        # (S, n, d)
    everyone["base_q_row"] = x_row @ W["q"].transpose(-1, -2)                    # (S, 1, d)

    def forward(c: dict, p1: torch.Tensor, p2: torch.Tensor | None = None):
        """Q, K, V, scores, weights of the runs in c, with trainable (A, B) or (W,)."""
        if lora:
            adapted = c[f"base_{site}"] + c["scale"] * ((c["X"] @ p1.transpose(-1, -2))
                                                        @ p2.transpose(-1, -2))  # (s, n, d)
        else:
            adapted = c["X"] @ p1.transpose(-1, -2)                               # (s, n, d)
        proj = {k: (adapted if k == site else c[f"base_{k}"]) for k in SITE_NAMES}
        scores = proj["q"] @ proj["k"].transpose(-2, -1) / sqrt_d                # (s, n, n)
        weights = F.softmax(scores, dim=-1)                                      # (s, n, n)
        return proj["q"], proj["k"], proj["v"], scores, weights

    def score_row(c: dict, p1: torch.Tensor, p2: torch.Tensor | None = None) -> torch.Tensor:
        """The target query's scores against every key, (s, n): all that training reads (the
        loss and the stop test), so a step computes this row instead of the n x n map."""
        if site == "q":
            if lora:
                query = c["base_q_row"] + c["scale"] * ((c["x_row"] @ p1.transpose(-1, -2))
                                                        @ p2.transpose(-1, -2))  # (s, 1, d)
            else:
                query = c["x_row"] @ p1.transpose(-1, -2)                         # (s, 1, d)
        else:
            query = c["base_q_row"]
        if site == "k":
            keys = (c["base_k"] + c["scale"] * ((c["X"] @ p1.transpose(-1, -2))
                                                @ p2.transpose(-1, -2)) if lora
                    else c["X"] @ p1.transpose(-1, -2))                           # (s, n, d)
        else:
            keys = c["base_k"]
        return (query @ keys.transpose(-1, -2)).squeeze(1) / sqrt_d             # (s, n)

    def alignment(c: dict, A: torch.Tensor) -> torch.Tensor:
        # |P_rowspace(A) x_q| / |x_q|: 1 when A's rows span x_q, ~sqrt(r/d) for a random A.
        basis = torch.linalg.qr(A.transpose(-1, -2).double()).Q                  # (s, d, r)
        coef = (basis * c["x_query"].unsqueeze(-1)).sum(-2)                      # (s, r)
        return coef.norm(dim=-1) / c["x_query"].norm(dim=-1)                     # (s,)

    if lora:
        params = [A0.clone(), torch.zeros(S, d, r, device=dev)]     # A (S, r, d), B (S, d, r)
    else:
        params = [W[site].clone()]                                  # W (S, d, d)
    final = [torch.empty_like(p) for p in params]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    # What a training step reads, so compaction copies nothing else.
    needed = {"row", "scale", "query", "key", "stop", "max_steps", "x_query", "x_row",
              "base_q_row", "base_k"} | ({"X"} if site == "k" else set())
    live = dict(everyone) if trace_weights else {k: everyone[k] for k in needed}

    def nan_row() -> torch.Tensor:
        return torch.full((S,), float("nan"), dtype=torch.float64, device=dev)

    probs: list[torch.Tensor] = []     # entry t: (S,) weight before step t+1, NaN once ended
    losses: list[torch.Tensor] = []    # entry t: (S,) loss of step t+1, NaN once ended
    aligns: list[torch.Tensor] = []
    maps: list[torch.Tensor] = []      # entry t: (S, n, n) attention before step t+1 (trace_weights)
    steps_taken = torch.zeros(S, dtype=torch.int64, device=dev)
    t = 0
    while True:
        leaves = [p.requires_grad_(True) for p in params]
        scores_q = score_row(live, *leaves)                                      # (s, n)
        s_live = live["row"].numel()
        ar = torch.arange(s_live, device=dev)
        with torch.no_grad():
            p_now = F.softmax(scores_q, dim=-1)[ar, live["key"]].double()        # (s,)
        row = nan_row()
        row[live["row"]] = p_now
        probs.append(row)
        if trace_weights:
            grid = torch.full((S, n, n), float("nan"), device=dev)                # (S, n, n)
            with torch.no_grad():
                grid[live["row"]] = forward(live, *params)[4]
            maps.append(grid)
        if trace_alignment and lora:
            row = nan_row()
            row[live["row"]] = alignment(live, leaves[0].detach())
            aligns.append(row)
        # The single engine's test, before stepping: stop_prob reached or max_steps used up.
        finished = (p_now >= live["stop"]) | (t >= live["max_steps"])           # (s,) bool
        if bool(finished.any()):
            gone = live["row"][finished]
            for f, p in zip(final, params):
                f[gone] = p.detach()[finished]
            steps_taken[gone] = t
            tick(int(finished.sum()))
        keep = ~finished
        if not bool(keep.any()):
            break
        loss = F.cross_entropy(scores_q[keep], live["key"][keep], reduction="none")   # (s',)
        if not bool(torch.isfinite(loss).all()):
            bad = live["row"][keep][~torch.isfinite(loss.detach())][0]
            raise ExperimentError(
                f"non-finite loss at step {t + 1} in the run with seed {seeds[int(bad)]}",
                field="experiment",
                hint="lower lr or alpha, or reduce a_std; the update has diverged")
        if loss.requires_grad:
            grads = torch.autograd.grad(loss.sum(), leaves, allow_unused=True)
        else:   # no trained weight feeds the scores at all
            grads = (None,) * len(leaves)
        row = nan_row()
        row[live["row"][keep]] = loss.detach().double()
        losses.append(row)
        params = [p.detach() for p in params]
        if not bool(keep.all()):
            params = [p[keep] for p in params]
            moments = [(m[keep], v[keep]) for m, v in moments]
            grads = tuple(None if g is None else g[keep] for g in grads)
            live = {name: value[keep] for name, value in live.items()}
        if all(g is None for g in grads):
            # The loss does not reach the trained weights (LoRA on V cannot move the scores):
            # the optimizer skips parameters without a gradient, so every remaining step is a
            # no-op.
            # Replay them at once: same loss and target weight until each run's max_steps.
            ends = live["max_steps"]                                             # (s',)
            for j in range(t + 1, int(ends.max()) + 1):
                for trace_rows in (probs, aligns, maps):
                    if trace_rows:
                        row = trace_rows[-1].clone()
                        row[live["row"][ends < j]] = float("nan")
                        trace_rows.append(row)
                if j < int(ends.max()):
                    row = losses[-1].clone()
                    row[live["row"][ends <= j]] = float("nan")
                    losses.append(row)
            for f, p in zip(final, params):
                f[live["row"]] = p
            steps_taken[live["row"]] = ends
            tick(int(ends.numel()))
            break
        t += 1
        with torch.no_grad():
            for p, g, (m, v) in zip(params, grads, moments):
                if sgd:
                    _sgd_step(p, g, lr)
                else:
                    _adam_step(p, g, m, v, t, lr)

    with torch.no_grad():
        # Before training the adapted projection is its base (B = 0 adds exactly zero; full
        # fine-tuning starts from the base weight), so only the scores need computing.
        scores0 = everyone["base_q"] @ everyone["base_k"].transpose(-2, -1) / sqrt_d  # (S, n, n)
        before = (everyone["base_q"], everyone["base_k"], everyone["base_v"], scores0,
                  F.softmax(scores0, dim=-1))
        if lora:
            after = forward(everyone, final[0], final[1])
            # As LoRALinear.delta_weight: (alpha / r) B A.
            delta_w = everyone["scale"] * (final[1] @ final[0])                   # (S, d, d)
            A_out, B_out = final[0], final[1]
        else:
            after = forward(everyone, final[0])
            delta_w = final[0] - W[site]                                         # (S, d, d)
            A_out = torch.full((S, r, d), float("nan"), device=dev)
            B_out = torch.full((S, d, r), float("nan"), device=dev)

    def np32(x: torch.Tensor) -> np.ndarray:
        # These tensors are private to this call, so sharing their memory is safe.
        return x.detach().to("cpu").numpy()

    def trace(rows: list[torch.Tensor]) -> np.ndarray:
        if not rows:
            return np.full((S, 0), np.nan, dtype=np.float32)
        return torch.stack(rows, 1).to("cpu").numpy().astype(np.float32)

    arrays = {"X": np32(X), "W_base": np32(W[site]), "A": np32(A_out), "B": np32(B_out),
              "delta_w": np32(delta_w), "steps": steps_taken.to("cpu").numpy().astype(np.int64),
              "target_prob": trace(probs), "loss": trace(losses),
              "a_align": trace(aligns) if aligns else np.full((S, len(probs)), np.nan,
                                                              dtype=np.float32)}
    if trace_weights:
        arrays["weights_steps"] = trace(maps)                               # (S, T+1, n, n)
    if heldout:
        fresh = torch.stack([fresh_tokens(s.config, heldout) for s in specs]).to(dev)
        with torch.no_grad():
            h = heldout_attention(fresh, W, delta_w, site)
        arrays["heldout_X"] = np32(fresh)                                   # (S, m, n, d)
        arrays["heldout_weights_before"] = np32(h["weights_before"])        # (S, m, n, n)
        arrays["heldout_weights_after"] = np32(h["weights_after"])
        arrays["heldout_dproj_norm"] = np32(h["dproj"].norm(dim=-1))        # (S, m, n)
    for name, b, a in zip(SNAPSHOT, before, after):
        arrays[f"{name}_before"] = np32(b)
        arrays[f"{name}_after"] = np32(a)
    return arrays

