"""The companion article's experiment on one head of the trained model: steer one query to one
key of a real sequence by changing only that head's W_Q (dh, d), three ways:

  lora  q^h = x (W_Q^h)^T + (alpha / r) (x A^T) B^T,  A (r, d) ~ N(0, a_std^2), B (dh, r) = 0; Adam
  full  q^h = x (W_Q^h + D)^T, D (dh, d) = 0 at the start, every entry trained; Adam
  sgd   the same D trained by plain gradient descent: the control for the mechanism

Full fine-tuning trains a zero-initialised delta rather than W_Q^h itself: the gradient with
respect to D is the gradient with respect to W_Q^h, so Adam and gradient descent take the same
steps, and the update D is read off without cancellation error.

The loss is the cross-entropy of the head's score row ``query`` (causal: keys 0..query) against
``key`` on one held-out sequence; training stops once the head puts ``stop_prob`` on the key
(checked before each step, as in the companion article) or after ``max_steps``. Only the adapted
layer runs in the loop: its input does not depend on the adapter. Everything else is frozen.

``steer(model, corpus, settings)`` is pure computation and returns JSON-able metrics and numpy
arrays (science.steering_metrics measures).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import ExperimentError
from .corpus import Corpus, decode, windows
from .steering_config import SteeringSettings
from .steering_metrics import Where, head_entropy, measure
from .transformer import TinyGPT

METHODS = ("lora", "full", "sgd")
Progress = Callable[[int, int, str], None]


class HeadLoRA(nn.Module):
    """A low-rank change of one head's queries: (alpha / r) (x A^T) B^T."""

    def __init__(self, d: int, dh: int, r: int, alpha: float, a_std: float,
                 gen: torch.Generator) -> None:
        super().__init__()
        self.scale = alpha / r
        self.A = nn.Parameter(torch.randn(r, d, generator=gen) * a_std)     # (r, d)
        self.B = nn.Parameter(torch.zeros(dh, r))                           # (dh, r): starts a no-op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * ((x @ self.A.T) @ self.B.T)                     # (..., T, dh)

    def delta_weight(self) -> torch.Tensor:
        return self.scale * (self.B @ self.A)                               # (dh, d), rank <= r


class HeadDelta(nn.Module):
    """A dense change of one head's queries, x D^T, zero at the start."""

    def __init__(self, d: int, dh: int) -> None:
        super().__init__()
        self.D = nn.Parameter(torch.zeros(dh, d))                           # (dh, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.D.T                                                 # (..., T, dh)

    def delta_weight(self) -> torch.Tensor:
        return self.D


def median_key(row: np.ndarray, query: int) -> int:
    """The key of median weight among keys 0..query-1 (a weakly but not least attended key;
    a stable sort breaks ties by position)."""
    order = np.argsort(row[:query], kind="stable")
    return int(order[(query - 1) // 2])


def _bad(field: str, message: str) -> ExperimentError:
    return ExperimentError(message, field=field)


def locate(model: TinyGPT, corpus: Corpus, s: SteeringSettings) -> Where:
    shape = model.shape
    if s.layer >= shape.n_layer:
        raise _bad("layer", f"the model has layers 0..{shape.n_layer - 1}, got {s.layer}")
    if s.head >= shape.n_head:
        raise _bad("head", f"the model has heads 0..{shape.n_head - 1}, got {s.head}")
    hx, hy = (torch.from_numpy(np.ascontiguousarray(a)) for a in windows(corpus.held, shape.ctx))
    if s.sequence >= len(hx):
        raise _bad("sequence", f"the held-out text has windows 0..{len(hx) - 1}, got {s.sequence}")
    if s.heldout > len(hx) - 1:
        raise _bad("heldout", f"at most {len(hx) - 1} held-out windows besides the sequence")
    # Locality windows spread evenly over every held-out topic, never the training window.
    rest = [k for k in range(len(hx)) if k != s.sequence]
    loc = np.array([rest[int(t)] for t in np.linspace(0, len(rest) - 1, s.heldout).round()])
    query = shape.ctx - 1 if s.query < 0 else s.query
    if not 1 <= query < shape.ctx:
        raise _bad("query", f"must lie in 1..{shape.ctx - 1} (a query with keys before it)")
    x_train = hx[s.sequence:s.sequence + 1]                                 # (1, T)
    with torch.no_grad():
        records: list = []
        model(x_train, records)
    row = records[s.layer]["weights"][0, s.head, query].numpy()            # (T,)
    key = median_key(row, query) if s.key < 0 else s.key
    if not 0 <= key < query:
        raise _bad("key", f"must precede the query {query} (causal attention), got {key}")
    if row[key] >= s.stop_prob:
        raise _bad("key", f"the head already puts {row[key]:.3f} >= stop_prob on key {key}: "
                          "nothing to steer")
    return Where(layer=s.layer, head=s.head, query=query, key=key, x_train=x_train,
                 y_train=hy[s.sequence:s.sequence + 1], x_loc=hx[loc], y_loc=hy[loc],
                 loc_windows=loc, held_x=hx, held_y=hy)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


def _adapter(method: str, model: TinyGPT, s: SteeringSettings):
    d, dh = model.shape.d_model, model.shape.d_head
    if method == "lora":
        adapter = HeadLoRA(d, dh, s.rank, s.alpha, s.a_std, torch.Generator().manual_seed(s.seed))
        return adapter, torch.optim.Adam(adapter.parameters(), lr=s.lr, foreach=False)
    adapter = HeadDelta(d, dh)
    if method == "full":
        return adapter, torch.optim.Adam(adapter.parameters(), lr=s.lr, foreach=False)
    return adapter, torch.optim.SGD(adapter.parameters(), lr=s.sgd_lr, foreach=False)


def optimise(model: TinyGPT, w: Where, s: SteeringSettings, method: str) -> tuple[nn.Module, list]:
    """Train the adapter of ``method`` on the head until the target weight is reached; the
    adapter stays attached. Returns it and the target weight before each step (and at the end)."""
    attn = model.blocks[w.layer].attn
    with torch.no_grad():
        records: list = []
        model(w.x_train, records)
    a_in = records[w.layer]["attn_in"]                                      # (1, T, d), frozen
    adapter, opt = _adapter(method, model, s)
    attn.q_delta, attn.q_delta_head = adapter, w.head
    target = torch.tensor([w.key])                                          # (1,)
    probs: list[float] = []
    while True:
        rec: dict = {}
        attn(a_in, rec)
        p = float(rec["weights"][0, w.head, w.query, w.key].detach())
        probs.append(p)
        if p >= s.stop_prob or len(probs) > s.max_steps:
            break
        # Masked keys score -inf: cross_entropy gives them weight 0 and no NaN.
        loss = F.cross_entropy(rec["scores"][0, w.head, w.query:w.query + 1], target)
        if not torch.isfinite(loss):
            raise ExperimentError(f"{method}: non-finite loss at step {len(probs)}",
                                  field="lr" if method != "sgd" else "sgd_lr",
                                  hint="lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return adapter, probs


def steer(model: TinyGPT, corpus: Corpus, s: SteeringSettings,
          progress: Progress | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(metrics, arrays) of the three methods on the head the settings name."""
    before = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        w = locate(model, corpus, s)
        metrics: dict = {"layer": w.layer, "head": w.head, "query": w.query, "key": w.key}
        arrays: dict[str, np.ndarray] = {"loc_windows": w.loc_windows.astype(np.int64),
                                         "train_tokens": w.x_train[0].numpy().copy(),
                                         "train_next": w.y_train[0].numpy().copy()}
        entropy, row_max = head_entropy(model, w.x_loc)
        arrays["head_entropy"], arrays["head_row_max"] = entropy, row_max
        metrics["sequence_text"] = decode(w.x_train[0].tolist() + [int(w.y_train[0, -1])])
        base = measure(model, w, None, None)
        metrics["base"], base_arrays = base
        arrays.update({f"base_{k}": v for k, v in base_arrays.items() if not k.startswith("_")})
        for n, method in enumerate(METHODS):
            adapter, probs = optimise(model, w, s, method)
            m, a = measure(model, w, adapter, probs, base_arrays)
            model.clear_q_deltas()
            m["trainable_params"] = sum(p.numel() for p in adapter.parameters())
            m["reached"] = probs[-1] >= s.stop_prob
            metrics[method] = m
            arrays.update({f"{method}_{k}": v for k, v in a.items()})
            if progress is not None:
                progress(n + 1, len(METHODS), method)
        # How alike the updates are (cosine of the flattened dW): Adam's two end up nearly the
        # same rank-one matrix; gradient descent's has another right factor.
        metrics["dw_cos"] = {f"{a}_{b}": _cosine(arrays[f"{a}_delta_w"], arrays[f"{b}_delta_w"])
                             for a, b in (("lora", "full"), ("full", "sgd"))}
        return metrics, arrays
    finally:
        model.clear_q_deltas()
        torch.set_num_threads(before)


FORMAT_VERSION = 1


def diffuse_heads(entropy: np.ndarray) -> list[tuple[int, int]]:
    """The heads outside layer 0 (whose heads read only the embeddings, like the companion
    article's random tokens) from the most diffuse, by mean normalised entropy (a stable sort:
    ties go to the earlier head). The first is the least peaked head that reads features the
    model computed."""
    ent = entropy.copy()
    ent[0] = -np.inf
    order = np.argsort(-ent.ravel(), kind="stable")[: ent.size - ent.shape[1]]
    return [tuple(int(v) for v in np.unravel_index(int(k), ent.shape)) for k in order]


def steering_result(name: str, s: SteeringSettings, lm_doc: dict, lm_weights: dict,
                    progress: Progress | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """The experiment on the model that ``lm_doc`` (training.json) and ``lm_weights`` describe:
    (steering.json's document, its arrays)."""
    import platform

    from ..core.numerics import in_use
    from .corpus import VOCAB, load_corpus
    from .lm_config import LMSettings
    from .settings_io import from_mapping
    from .transformer import ModelShape, load_state

    lm = from_mapping(LMSettings, lm_doc["settings"])
    model = load_state(ModelShape(**lm_doc["shape"]), lm_weights)
    corpus = load_corpus(lm.corpus_sha256, lm.holdout_every, lm.holdout_at)
    metrics, arrays = steer(model, corpus, s, progress)
    tokens = arrays["train_tokens"]
    ranked = diffuse_heads(arrays["head_entropy"])
    rule = ranked[0]
    metrics.update({
        "query_char": VOCAB[int(tokens[metrics["query"]])],
        "key_char": VOCAB[int(tokens[metrics["key"]])],
        "next_char": VOCAB[int(arrays["train_next"][metrics["query"]])],
        "rule_layer": rule[0], "rule_head": rule[1],
        "runner_up": ({"layer": ranked[1][0], "head": ranked[1][1],
                       "entropy": float(arrays["head_entropy"][ranked[1]])}
                      if len(ranked) > 1 else None),
        "head_entropy": float(arrays["head_entropy"][s.layer, s.head]),
        "head_row_max": float(arrays["head_row_max"][s.layer, s.head]),
        "held_windows": int(len(arrays["base_held_loss"])),
    })
    doc = {"format": FORMAT_VERSION, "name": name, "settings": s.to_dict(),
           "model": {"experiment": s.model, "weights_sha256": lm_doc["npz_sha256"],
                     "shape": lm_doc["shape"], "n_params": lm_doc["training"]["n_params"]},
           "metrics": metrics,
           "provenance": {"torch": torch.__version__, "numpy": np.__version__,
                          "python": platform.python_version(), "threads": s.threads,
                          "numerics": in_use()}}
    return doc, arrays
