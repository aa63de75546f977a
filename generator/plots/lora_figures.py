"""The article's six figures, drawn from one LoRA run's saved arrays (matplotlib; never torch).

Titles, labels, legends and alt texts follow the adapted projection: the query of the target
token when LoRA sits on W_Q, the target key on W_K or W_V. File names are the reference
article's, whatever the site.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ..science.config import ExperimentConfig
from .common import SIZE_IN, FigureRegistry, pyplot

if TYPE_CHECKING:
    # numpy is imported where arrays are handled: the renderer reads the names and alt texts
    # from here and must not pay for numpy on every prose edit.
    import numpy as np

TARGET_COLOR = "#d62728"
OTHER_COLOR = "#1f77b4"


@dataclass(frozen=True)
class Side:
    """How one adapted projection is named in titles: q (queries) or k, v (keys, values)."""

    letter: str          # q, k or v
    noun: str            # query, key or value
    index: str           # the token index used in formulas: i for queries, j for keys

    @property
    def capital(self) -> str:
        return self.noun.capitalize()


SIDES = {"q": Side("q", "query", "i"), "k": Side("k", "key", "j"), "v": Side("v", "value", "j")}


def target_of(cfg: ExperimentConfig) -> int:
    """The token whose adapted projection the training aims at (metrics.target_token)."""
    return cfg.query if cfg.site == "q" else cfg.key


@dataclass(frozen=True)
class Prepared:
    """What the figures of one run share: one colour scale per before/after pair, so colours
    mean the same number in both panels, and the adapted projection's per-token change."""

    arrays: Mapping[str, Any]
    w_lim: tuple[float, float]
    s_abs: float
    cos: Any                 # (n,) cosine of each token's adapted projection, before vs after
    dp: Any                  # (n,) norm of each token's change
    cos_floor: float


def _prepare(cfg: ExperimentConfig, arrays: Mapping[str, np.ndarray]) -> Prepared:
    import numpy as np

    w0, w1 = arrays["weights_before"], arrays["weights_after"]
    s0, s1 = arrays["scores_before"], arrays["scores_after"]
    P = cfg.site.upper()
    p0 = arrays[f"{P}_before"].astype(np.float64)                              # (n, d)
    p1 = arrays[f"{P}_after"].astype(np.float64)                               # (n, d)
    cos = (p0 * p1).sum(-1) / (np.linalg.norm(p0, axis=-1) * np.linalg.norm(p1, axis=-1))
    dp = np.linalg.norm(p1 - p0, axis=-1)                                      # (n,)
    return Prepared(arrays=arrays, w_lim=(0.0, float(max(w0.max(), w1.max()))),
                    s_abs=float(max(np.abs(s0).max(), np.abs(s1).max())), cos=cos, dp=dp,
                    cos_floor=min(0.0, float(cos.min()) - 0.05))


FIGURES = FigureRegistry(prepare=_prepare)


def _heatmap(matrix: np.ndarray, *, title: str, cbar_label: str, vmin: float, vmax: float,
             cmap: str, cfg: ExperimentConfig):
    _, plt = pyplot()
    n = matrix.shape[0]
    fig, ax = plt.subplots(figsize=SIZE_IN)
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(f"{title}\n(outlined: target query {cfg.query}, key {cfg.key})", fontsize=11)
    ax.set_xlabel("key index")
    ax.set_ylabel("query index")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    # Outline the cell the training targets, so the eye finds it in both panels of a pair.
    ax.add_patch(plt.Rectangle((cfg.key - 0.5, cfg.query - 0.5), 1, 1, fill=False,
                               edgecolor=TARGET_COLOR, linewidth=2.2))
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label(cbar_label)
    fig.tight_layout()
    return fig


def _bars(values: np.ndarray, *, title: str, ylabel: str, cfg: ExperimentConfig,
          ylim: tuple[float, float] | None = None, reference: float | None = None):
    _, plt = pyplot()
    side = SIDES[cfg.site]
    target = target_of(cfg)
    n = values.shape[0]
    colors = [OTHER_COLOR] * n
    colors[target] = TARGET_COLOR
    fig, ax = plt.subplots(figsize=SIZE_IN)
    ax.bar(range(n), values, color=colors)
    if reference is not None:
        ax.axhline(reference, color="0.4", linewidth=1, linestyle="--")
    ax.set_title(title)
    ax.set_xlabel("token index")
    ax.set_ylabel(ylabel)
    ax.set_xticks(range(n))
    if ylim is not None:
        ax.set_ylim(*ylim)
    plural = {"query": "queries", "key": "keys", "value": "values"}[side.noun]
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=TARGET_COLOR),
                       plt.Rectangle((0, 0), 1, 1, color=OTHER_COLOR)],
              labels=[f"target {side.noun} {target}", f"other {plural}"], fontsize=9,
              loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def _score_title(cfg: ExperimentConfig, after: bool) -> str:
    if not after:
        return r"Scores $QK^\top/\sqrt{d}$ before LoRA"
    if cfg.site == "q":
        return r"Scores $Q'K^\top/\sqrt{d}$ after LoRA"
    if cfg.site == "k":
        return r"Scores $QK'^\top/\sqrt{d}$ after LoRA"
    return r"Scores $QK^\top/\sqrt{d}$ after LoRA on $V$ (unchanged)"


def _adapted(cfg: ExperimentConfig) -> str:
    return {"q": "queries", "k": "keys", "v": "values"}[cfg.site]


@FIGURES.register("before_lora", alt="Attention map before LoRA training")
def before_lora(cfg: ExperimentConfig, prep: Prepared):
    return _heatmap(prep.arrays["weights_before"], title="Attention weights before LoRA",
                    cbar_label="attention weight", vmin=prep.w_lim[0], vmax=prep.w_lim[1],
                    cmap="viridis", cfg=cfg)


@FIGURES.register("after_lora", alt="Attention map after LoRA training")
def after_lora(cfg: ExperimentConfig, prep: Prepared):
    return _heatmap(prep.arrays["weights_after"], title="Attention weights after LoRA",
                    cbar_label="attention weight", vmin=prep.w_lim[0], vmax=prep.w_lim[1],
                    cmap="viridis", cfg=cfg)


@FIGURES.register("score_before_lora", alt="Pre-softmax score matrix before LoRA training")
def score_before_lora(cfg: ExperimentConfig, prep: Prepared):
    return _heatmap(prep.arrays["scores_before"], title=_score_title(cfg, after=False),
                    cbar_label="score", vmin=-prep.s_abs, vmax=prep.s_abs, cmap="RdBu_r", cfg=cfg)


@FIGURES.register("score_after_lora", alt="Pre-softmax score matrix after LoRA training")
def score_after_lora(cfg: ExperimentConfig, prep: Prepared):
    return _heatmap(prep.arrays["scores_after"], title=_score_title(cfg, after=True),
                    cbar_label="score", vmin=-prep.s_abs, vmax=prep.s_abs, cmap="RdBu_r", cfg=cfg)


@FIGURES.register("token_rotation_lora", alt=lambda cfg: (
    f"Per-token cosine similarity between {_adapted(cfg)} before and after training"))
def token_rotation_lora(cfg: ExperimentConfig, prep: Prepared):
    s = SIDES[cfg.site]
    return _bars(prep.cos,
                 title=rf"{s.capital} direction change: $\cos({s.letter}_{s.index}, "
                       rf"{s.letter}_{s.index}')$",
                 ylabel="cosine similarity (before vs after)", cfg=cfg,
                 ylim=(prep.cos_floor, 1.05), reference=1.0)


@FIGURES.register("token_rotation_magnitude", alt=lambda cfg: (
    f"Per-token norm of the {SIDES[cfg.site].noun} update after training"))
def token_rotation_magnitude(cfg: ExperimentConfig, prep: Prepared):
    s = SIDES[cfg.site]
    return _bars(prep.dp,
                 title=rf"{s.capital} update magnitude $\Vert\Delta {s.letter}_{s.index}\Vert$",
                 ylabel=rf"$\Vert {s.letter}_{s.index}' - {s.letter}_{s.index}\Vert$", cfg=cfg)


FIGURE_NAMES = FIGURES.names()
