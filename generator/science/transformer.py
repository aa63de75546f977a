"""A small causal transformer language model (the shape of nanoGPT), with a hook on one head.

Token and learned position embeddings -> L pre-LayerNorm blocks (x + Attn(LN(x)), then
x + MLP(LN(x))) -> a final LayerNorm -> logits through the token embedding (tied). No dropout
(nothing is random in training but the seeded batch sampler) and no biases in the linear layers.

Each attention layer has separate ``q_proj``, ``k_proj``, ``v_proj`` (``nn.Linear(d, d)``, which
stores its weight as out x in). Head h owns the rows ``h*dh:(h+1)*dh`` of each, so its query
projection is the (dh, d) slice ``W_Q^h = q_proj.weight[h*dh:(h+1)*dh]`` and its queries are
``q^h = x (W_Q^h)^T``: the single head of the companion article, inside a trained model.

``CausalSelfAttention.q_delta`` adapts one head's queries: a module mapping the layer's
LayerNormed input x (..., T, d) to an additive change (..., T, dh) of head ``q_delta_head``'s
queries (a LoRA branch, or a dense delta for full fine-tuning; science.steering). ``merge_q_delta``
folds its ``delta_weight()`` into the slice, so the merged model needs no branch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ModelShape:
    vocab_size: int
    ctx: int                # the context length T
    n_layer: int
    n_head: int
    d_model: int
    mlp_mult: int = 4       # MLP hidden width = mlp_mult * d_model
    init_std: float = 0.02

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_head


class CausalSelfAttention(nn.Module):
    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.n_head, self.d_head = shape.n_head, shape.d_head
        d = shape.d_model
        self.q_proj = nn.Linear(d, d, bias=False)      # rows h*dh:(h+1)*dh: head h's W_Q^h
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)      # mixes the heads back into the residual
        causal = torch.ones(shape.ctx, shape.ctx, dtype=torch.bool).tril()   # (T, T): key j <= i
        self.register_buffer("causal", causal, persistent=False)
        self.q_delta: nn.Module | None = None
        self.q_delta_head = 0

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.n_head, self.d_head).transpose(1, 2)        # (B, nh, T, hs)

    def forward(self, x: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        B, T, d = x.shape                                                     # x: (B, T, d), normed
        q = self._heads(self.q_proj(x))                                       # (B, nh, T, hs)
        k = self._heads(self.k_proj(x))                                       # (B, nh, T, hs)
        v = self._heads(self.v_proj(x))                                       # (B, nh, T, hs)
        if self.q_delta is not None:
            h = self.q_delta_head
            qh = q[:, h] + self.q_delta(x)                                    # (B, T, hs)
            q = torch.cat([q[:, :h], qh.unsqueeze(1), q[:, h + 1:]], dim=1)   # (B, nh, T, hs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)            # (B, nh, T, T)
        scores = scores.masked_fill(~self.causal[:T, :T], float("-inf"))
        weights = F.softmax(scores, dim=-1)                                   # (B, nh, T, T)
        y = (weights @ v).transpose(1, 2).reshape(B, T, d)                   # (B, T, d)
        if record is not None:
            record.update(q=q, k=k, scores=scores, weights=weights)
        return self.o_proj(y)                                                 # (B, T, d)


class Block(nn.Module):
    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(shape.d_model)
        self.attn = CausalSelfAttention(shape)
        self.ln2 = nn.LayerNorm(shape.d_model)
        self.fc = nn.Linear(shape.d_model, shape.mlp_mult * shape.d_model, bias=False)
        self.proj = nn.Linear(shape.mlp_mult * shape.d_model, shape.d_model, bias=False)

    def forward(self, x: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        a = self.ln1(x)                                                       # (B, T, d) heads' input
        if record is not None:
            record["attn_in"] = a
        x = x + self.attn(a, record)                                          # (B, T, d)
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))                   # (B, T, d)


class TinyGPT(nn.Module):
    def __init__(self, shape: ModelShape, seed: int = 0) -> None:
        super().__init__()
        self.shape = shape
        # nn.Linear and nn.Embedding draw a default init from the global RNG: fork it so that
        # building a model never disturbs the caller; every weight is then drawn again below.
        with torch.random.fork_rng(devices=[]):
            self.tok_emb = nn.Embedding(shape.vocab_size, shape.d_model)
            self.pos_emb = nn.Embedding(shape.ctx, shape.d_model)
            self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layer))
            self.ln_f = nn.LayerNorm(shape.d_model)
        self._init(seed)

    @torch.no_grad()
    def _init(self, seed: int) -> None:
        """GPT-2's init from one seeded generator, in named_parameters order: N(0, 0.02) for
        embeddings and linear weights, N(0, 0.02 / sqrt(2L)) for the two projections that write
        into the residual stream, LayerNorm weight 1 and bias 0."""
        gen = torch.Generator().manual_seed(seed)
        resid_std = self.shape.init_std / math.sqrt(2 * self.shape.n_layer)
        for name, p in self.named_parameters():
            if ".ln" in name or name.startswith("ln_f"):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith(("o_proj.weight", ".proj.weight")):
                p.normal_(0.0, resid_std, generator=gen)
            else:
                p.normal_(0.0, self.shape.init_std, generator=gen)

    def forward(self, idx: torch.Tensor, records: list | None = None) -> torch.Tensor:
        """idx (B, T) token ids -> logits (B, T, V). With ``records=[]`` one dict per layer is
        appended: attn_in, q, k, scores, weights."""
        B, T = idx.shape
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T))                # (B, T, d)
        for block in self.blocks:
            rec = None
            if records is not None:
                rec = {}
                records.append(rec)
            x = block(x, rec)                                                 # (B, T, d)
        return self.ln_f(x) @ self.tok_emb.weight.T                          # (B, T, V)

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-character cross-entropy (nats); idx and targets (B, T)."""
        logits = self(idx)                                                    # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def head_wq(self, layer: int, head: int) -> torch.Tensor:
        """A view of W_Q^h of ``head`` in ``layer``: (dh, d)."""
        dh = self.shape.d_head
        return self.blocks[layer].attn.q_proj.weight[head * dh:(head + 1) * dh]

    @torch.no_grad()
    def merge_q_delta(self, layer: int) -> None:
        """Fold the layer's q_delta into q_proj.weight and remove the branch."""
        attn = self.blocks[layer].attn
        if attn.q_delta is not None:
            self.head_wq(layer, attn.q_delta_head).add_(attn.q_delta.delta_weight())
            attn.q_delta = None

    def clear_q_deltas(self) -> None:
        for block in self.blocks:
            block.attn.q_delta = None


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def state_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The parameters as float32 numpy arrays by name (what the freeze stores, never a pickle)."""
    return {name: t.detach().numpy().copy() for name, t in model.state_dict().items()}


def load_state(shape: ModelShape, arrays: dict[str, np.ndarray]) -> TinyGPT:
    """A model with the given parameters (strict: every name present, none extra)."""
    model = TinyGPT(shape)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
                           arrays.items()}, strict=True)
    model.eval()
    return model
