"""The article's figures, drawn from one LoRA run's saved arrays (matplotlib; never torch).

Titles, labels, legends and alt texts follow the adapted projection: the query of the target
token when LoRA sits on W_Q, the target key on W_K or W_V. The six file names of the reference
article (before_lora, after_lora, score_before_lora, score_after_lora, token_rotation_lora,
token_rotation_magnitude) are kept whatever the site; the difference maps and the length ratio
are ours.

One notation everywhere, as in the article's text: P for the attention weights (A is LoRA's
down-projection), S for the scores, a prime for "after training", Delta for the change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ..science.config import ExperimentConfig
from .common import SIZE_IN, FigureRegistry, Theme, outline_cell, pyplot

if TYPE_CHECKING:
    # numpy is imported where arrays are handled: the renderer reads the names and alt texts
    # from here and must not pay for numpy on every prose edit.
    import numpy as np

# The article's threshold for "kept its direction" (cos_high in the post) and the audit's band
# for "a rotation keeps the length" (claims.update_is_rotation): drawn so the reader sees them.
COS_KEPT = 0.95
ROTATION_BAND = (0.9, 1.1)


@dataclass(frozen=True)
class Side:
    """How one adapted projection is named in titles: q (queries) or k, v (keys, values)."""

    letter: str          # q, k or v
    noun: str            # query, key or value
    index: str           # the token index used in formulas: i for queries, j for keys

    @property
    def capital(self) -> str:
        return self.noun.capitalize()

    @property
    def plural(self) -> str:
        return {"query": "queries", "key": "keys", "value": "values"}[self.noun]


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
    norm_ratio: Any          # (n,) length after over length before
    cos_floor: float


def _prepare(cfg: ExperimentConfig, arrays: Mapping[str, np.ndarray]) -> Prepared:
    import numpy as np

    w0, w1 = arrays["weights_before"], arrays["weights_after"]
    s0, s1 = arrays["scores_before"], arrays["scores_after"]
    P = cfg.site.upper()
    p0 = arrays[f"{P}_before"].astype(np.float64)                              # (n, d)
    p1 = arrays[f"{P}_after"].astype(np.float64)                               # (n, d)
    n0, n1 = np.linalg.norm(p0, axis=-1), np.linalg.norm(p1, axis=-1)          # (n,)
    cos = (p0 * p1).sum(-1) / (n0 * n1)                                        # (n,)
    dp = np.linalg.norm(p1 - p0, axis=-1)                                      # (n,)
    return Prepared(arrays=arrays, w_lim=(0.0, float(max(w0.max(), w1.max()))),
                    s_abs=float(max(np.abs(s0).max(), np.abs(s1).max())), cos=cos, dp=dp,
                    norm_ratio=n1 / n0, cos_floor=min(0.0, float(cos.min()) - 0.05))


FIGURES = FigureRegistry(prepare=_prepare)


def _heatmap(matrix: np.ndarray, *, title: str, cbar_label: str, vmin: float, vmax: float,
             cmap: str, cfg: ExperimentConfig, theme: Theme):
    _, plt = pyplot()
    n = matrix.shape[0]
    fig, ax = plt.subplots(figsize=SIZE_IN)
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(f"{title}\n(outlined: query {cfg.query}, key {cfg.key})")
    ax.set_xlabel("key index $j$")
    ax.set_ylabel("query index $i$")
    # Every other index: ten 11 pt labels per axis crowd a phone-sized image.
    ax.set_xticks(range(0, n, 2 if n > 6 else 1))
    ax.set_yticks(range(0, n, 2 if n > 6 else 1))
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    # The cell the training targets, findable in every panel and on any colour.
    outline_cell(ax, cfg.key, cfg.query)
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label(cbar_label)
    cbar.outline.set_visible(False)
    fig.tight_layout()
    return fig


def _bars(values: np.ndarray, *, title: str, ylabel: str, cfg: ExperimentConfig, theme: Theme,
          ylim: tuple[float, float] | None = None, lines: tuple = (), band=None):
    """One bar per token, the target in its own colour; lines: (y, label) reference lines,
    band: (lo, hi, label) a shaded range."""
    _, plt = pyplot()
    side = SIDES[cfg.site]
    target = target_of(cfg)
    n = values.shape[0]
    colors = [theme.other] * n
    colors[target] = theme.target
    fig, ax = plt.subplots(figsize=SIZE_IN)
    handles = [plt.Rectangle((0, 0), 1, 1, color=theme.target),
               plt.Rectangle((0, 0), 1, 1, color=theme.other)]
    labels = [f"target {side.noun} {target}", f"other {side.plural}"]
    if band is not None:
        lo, hi, label = band
        handles.append(ax.axhspan(lo, hi, color=theme.faint, alpha=0.8, linewidth=0, zorder=0))
        labels.append(label)
    ax.bar(range(n), values, color=colors, zorder=2)
    for y, label, style in lines:
        handles.append(ax.axhline(y, color=theme.muted, linewidth=1.2, linestyle=style,
                                  zorder=3))
        labels.append(label)
    ax.set_title(title)
    ax.set_xlabel(f"token index ${side.index}$")
    ax.set_ylabel(ylabel)
    ax.set_xticks(range(0, n, 1 if n <= 10 else 2))
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(handles=handles, labels=labels, loc="upper center", bbox_to_anchor=(0.5, -0.17),
              ncol=2, frameon=False, handlelength=1.4, columnspacing=1.2)
    fig.tight_layout()
    return fig


def _prime(cfg: ExperimentConfig) -> str:
    """The scores after training, in the article's notation."""
    return {"q": r"$S' = Q'K^\top/\sqrt{d}$", "k": r"$S' = QK'^\top/\sqrt{d}$",
            "v": r"$S' = S$ (LoRA on $V$)"}[cfg.site]


def _adapted(cfg: ExperimentConfig) -> str:
    return SIDES[cfg.site].plural


def _signed(prep: Prepared, matrix: np.ndarray, **kw):
    import numpy as np

    lim = float(np.abs(matrix).max()) or 1.0
    return _heatmap(matrix, vmin=-lim, vmax=lim, **kw)


@FIGURES.register("before_lora", alt="Attention map before LoRA training")
def before_lora(cfg: ExperimentConfig, prep: Prepared, theme: Theme):
    return _heatmap(prep.arrays["weights_before"], title="Attention weights $P$ before training",
                    cbar_label="attention weight", vmin=prep.w_lim[0], vmax=prep.w_lim[1],
                    cmap="viridis", cfg=cfg, theme=theme)


@FIGURES.register("after_lora", alt="Attention map after LoRA training")
def after_lora(cfg: ExperimentConfig, prep: Prepared, theme: Theme):
    return _heatmap(prep.arrays["weights_after"], title="Attention weights $P'$ after training",
                    cbar_label="attention weight", vmin=prep.w_lim[0], vmax=prep.w_lim[1],
                    cmap="viridis", cfg=cfg, theme=theme)


@FIGURES.register("weight_change_lora", alt="Map of the change in every attention weight, "
                  "after training minus before, on a colour scale centred at zero")
def weight_change_lora(cfg: ExperimentConfig, prep: Prepared, theme: Theme):
    a = prep.arrays
    return _signed(prep, a["weights_after"].astype("float64") - a["weights_before"],
                   title=r"Weight change $\Delta P = P' - P$", cbar_label="change in weight",
                   cmap=theme.diverging, cfg=cfg, theme=theme)


@FIGURES.register("score_before_lora", alt="Pre-softmax score matrix before LoRA training")
def score_before_lora(cfg: ExperimentConfig, prep: Prepared, theme: Theme):
    return _heatmap(prep.arrays["scores_before"],
                    title=r"Scores $S = QK^\top/\sqrt{d}$ before training", cbar_label="score",
                    vmin=-prep.s_abs, vmax=prep.s_abs, cmap=theme.diverging, cfg=cfg,
                    theme=theme)


@FIGURES.register("score_after_lora", alt="Pre-softmax score matrix after LoRA training")
def score_after_lora(cfg: ExperimentConfig, prep: Prepared, theme: Theme):
    return _heatmap(prep.arrays["scores_after"], title=f"Scores {_prime(cfg)} after training",
                    cbar_label="score", vmin=-prep.s_abs, vmax=prep.s_abs,
                    cmap=theme.diverging, cfg=cfg, theme=theme)


@FIGURES.register("score_change_lora", alt="Map of the change in every pre-softmax score, "
                  "after training minus before, on a colour scale centred at zero")
def score_change_lora(cfg: ExperimentConfig, prep: Prepared, theme: Theme):
    a = prep.arrays
    return _signed(prep, a["scores_after"].astype("float64") - a["scores_before"],
                   title=r"Score change $\Delta S = S' - S$", cbar_label="change in score",
                   cmap=theme.diverging, cfg=cfg, theme=theme)


@FIGURES.register("token_rotation_lora", alt=lambda cfg: (
    f"Per-token cosine similarity between {_adapted(cfg)} before and after training, with "
    f"the line at {COS_KEPT} that the text uses"))
def token_rotation_lora(cfg: ExperimentConfig, prep: Prepared, theme: Theme):
    s = SIDES[cfg.site]
    x, xp = f"{s.letter}_{s.index}", f"{s.letter}_{s.index}'"
    return _bars(prep.cos, title=rf"{s.capital} direction: $\cos({x}, {xp})$",
                 ylabel="cosine, before vs after", cfg=cfg, theme=theme,
                 ylim=(prep.cos_floor, 1.05),
                 lines=((COS_KEPT, f"{COS_KEPT:g}: kept its direction", "--"),))


@FIGURES.register("token_norm_ratio", alt=lambda cfg: (
    f"Per-token ratio of the length of each {SIDES[cfg.site].noun} after training to its "
    f"length before, with the band of plus or minus ten percent a rotation would stay in"))
def token_norm_ratio(cfg: ExperimentConfig, prep: Prepared, theme: Theme):
    s = SIDES[cfg.site]
    x, xp = f"{s.letter}_{s.index}", f"{s.letter}_{s.index}'"
    lo, hi = ROTATION_BAND
    top = max(float(prep.norm_ratio.max()) * 1.08, hi + 0.1)
    return _bars(prep.norm_ratio, title=rf"{s.capital} length: $\Vert {xp}\Vert / \Vert {x}\Vert$",
                 ylabel="length after / before", cfg=cfg, theme=theme, ylim=(0, top),
                 lines=((1.0, "1: length kept", "--"),),
                 band=(lo, hi, f"{lo:g} to {hi:g}: a rotation"))


@FIGURES.register("token_rotation_magnitude", alt=lambda cfg: (
    f"Per-token norm of the {SIDES[cfg.site].noun} update after training"))
def token_rotation_magnitude(cfg: ExperimentConfig, prep: Prepared, theme: Theme):
    s = SIDES[cfg.site]
    x = f"{s.letter}_{s.index}"
    return _bars(prep.dp, title=rf"{s.capital} update: $\Vert \Delta {x}\Vert = \Vert {x}' - {x}\Vert$",
                 ylabel=rf"$\Vert \Delta {x}\Vert$", cfg=cfg, theme=theme)


FIGURE_NAMES = FIGURES.names()
