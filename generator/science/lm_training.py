"""Train the small transformer on the corpus, deterministically, on the CPU.

``train_lm(settings, corpus)`` is pure computation: it returns the trained weights and the
training record (loss curves, final losses in nats per character). Determinism: the numeric
pins (core.numerics) hold for every process; torch runs ``settings.threads`` intra-op threads
(the count changes how reductions split, so it is a setting); the init and the batch sampler
draw from their own seeded generators; there is no dropout. Two fresh processes give
bit-identical weights (tests/test_transformer.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .corpus import VOCAB_SIZE, Corpus, windows
from .transformer import ModelShape, TinyGPT, n_params, state_arrays
from .lm_config import LMSettings

FORMAT_VERSION = 1
# progress(step, steps, note)
Progress = Callable[[int, int, str], None]
TRAIN_CURVE_WINDOW = 50     # the training curve is the mean loss of the last 50 batches


def shape_of(s: LMSettings) -> ModelShape:
    return ModelShape(vocab_size=VOCAB_SIZE, ctx=s.ctx, n_layer=s.n_layer, n_head=s.n_head,
                      d_model=s.d_model)


def lr_at(step: int, s: LMSettings) -> float:
    """Linear warm-up to s.lr over s.warmup steps, then cosine down to s.lr * s.min_lr_frac."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    t = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.lr * (s.min_lr_frac + (1 - s.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def mean_loss(model: TinyGPT, tokens: np.ndarray, batch: int = 64) -> float:
    """Mean next-character loss (nats) over every non-overlapping ctx-window of ``tokens``."""
    was_training = model.training
    model.eval()
    x, y = (torch.from_numpy(np.ascontiguousarray(a)) for a in windows(tokens, model.shape.ctx))
    total = 0.0
    for s in range(0, len(x), batch):
        xb, yb = x[s:s + batch], y[s:s + batch]                               # (b, T) each
        total += float(model.loss(xb, yb)) * len(xb)
    model.train(was_training)
    return total / len(x)


@dataclass(frozen=True)
class TrainedLM:
    shape: ModelShape
    weights: dict[str, np.ndarray]          # state dict, float32
    record: dict                            # JSON-able: curves, final losses, sizes
    batch_losses: np.ndarray                # (steps,) float64: every step's training loss


def train_lm(s: LMSettings, corpus: Corpus, progress: Progress | None = None) -> TrainedLM:
    before = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    try:
        return _train(s, corpus, progress)
    finally:
        torch.set_num_threads(before)


def _train(s: LMSettings, corpus: Corpus, progress: Progress | None) -> TrainedLM:
    shape = shape_of(s)
    model = TinyGPT(shape, seed=s.init_seed)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    # foreach=False: the single-tensor loops, whose order of operations does not depend on how
    # parameters are grouped into multi-tensor kernels.
    opt = torch.optim.AdamW([{"params": matrices, "weight_decay": s.weight_decay},
                             {"params": vectors, "weight_decay": 0.0}],
                            lr=s.lr, betas=(0.9, 0.99), foreach=False)
    gen = torch.Generator().manual_seed(s.data_seed)
    train_tok = torch.from_numpy(corpus.train)                                # (N,)
    offsets = torch.arange(s.ctx + 1)                                         # (T+1,)
    batch_losses = np.zeros(s.steps, dtype=np.float64)
    curve_step, curve_train, curve_held = [], [], []
    model.train()
    for step in range(s.steps):
        starts = torch.randint(0, len(train_tok) - s.ctx - 1, (s.batch,), generator=gen)  # (B,)
        chunk = train_tok[starts[:, None] + offsets]                          # (B, T+1)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, s)
        loss = model.loss(chunk[:, :-1], chunk[:, 1:])                        # scalar
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip, foreach=False)
        opt.step()
        batch_losses[step] = float(loss.detach())
        done = step + 1
        if done == 1 or done % s.eval_every == 0 or done == s.steps:
            curve_step.append(done)
            curve_train.append(float(batch_losses[max(0, done - TRAIN_CURVE_WINDOW):done].mean()))
            curve_held.append(mean_loss(model, corpus.held))
        if progress is not None:
            progress(done, s.steps, f"loss {batch_losses[step]:.3f}")
    model.eval()
    ln2 = math.log(2.0)
    final_train = mean_loss(model, corpus.train)
    final_held = curve_held[-1]
    record = {
        "n_params": n_params(model),
        "d_head": shape.d_head,
        "vocab_size": shape.vocab_size,
        "chars_per_step": s.batch * s.ctx,
        "epochs": s.steps * s.batch * s.ctx / corpus.train.size,
        "train_curve_window": TRAIN_CURVE_WINDOW,
        "curve_step": curve_step,
        "curve_train_nats": curve_train,
        "curve_held_nats": curve_held,
        "final_train_nats": final_train,
        "final_held_nats": final_held,
        "final_train_bits": final_train / ln2,
        "final_held_bits": final_held / ln2,
        "unigram_held_bits": corpus.stats["unigram_held_nats"] / ln2,
        "held_windows": int(windows(corpus.held, s.ctx)[0].shape[0]),
    }
    return TrainedLM(shape, state_arrays(model), record, batch_losses)


def lm_result(name: str, s: LMSettings, progress: Progress | None = None
              ) -> tuple[dict, dict[str, np.ndarray]]:
    """The corpus loaded and the model trained: (training.json's document, the weights)."""
    import platform

    from ..core.numerics import in_use
    from .corpus import load_corpus

    corpus = load_corpus(s.corpus_sha256, s.holdout_every, s.holdout_at)
    trained = train_lm(s, corpus, progress)
    shape = trained.shape
    doc = {
        "format": FORMAT_VERSION, "name": name, "settings": s.to_dict(),
        "shape": {"vocab_size": shape.vocab_size, "ctx": shape.ctx, "n_layer": shape.n_layer,
                  "n_head": shape.n_head, "d_model": shape.d_model, "mlp_mult": shape.mlp_mult,
                  "init_std": shape.init_std},
        "corpus": {**corpus.stats, "held_topic_names": list(corpus.held_topics),
                   "unigram_held_bits": corpus.stats["unigram_held_nats"] / math.log(2.0)},
        "training": {**trained.record, "batch_losses": [float(x) for x in trained.batch_losses]},
        # What made the bytes; no wall time (a clock reading would make every retrain a new
        # committed file: timing is `make bench`'s job).
        "provenance": {"torch": torch.__version__, "numpy": np.__version__,
                       "python": platform.python_version(), "threads": s.threads,
                       "numerics": in_use()},
    }
    return doc, trained.weights
