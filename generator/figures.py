"""The article's six figures, drawn from saved arrays only (matplotlib; never torch).

Each ``plot_*`` function returns a Figure; ``render_figures`` turns them into PNG bytes at 1x and
2x. Bytes are deterministic: the Agg backend, matplotlib's default style (not the user's rc),
fixed size and dpi, and no PNG metadata (matplotlib would otherwise stamp its version).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

from .config import ExperimentConfig

if TYPE_CHECKING:
    # numpy is imported where arrays are handled: the renderer imports this module for the
    # names, alt texts and sizes, and must not pay for numpy on every prose edit.
    import numpy as np

FIGURE_NAMES = (
    "before_lora", "after_lora",
    "score_before_lora", "score_after_lora",
    "token_rotation_lora", "token_rotation_magnitude",
)
ALT_TEXT = {
    "before_lora": "Attention map before LoRA training",
    "after_lora": "Attention map after LoRA training",
    "score_before_lora": "Pre-softmax score matrix before LoRA training",
    "score_after_lora": "Pre-softmax score matrix after LoRA training",
    "token_rotation_lora": "Per-token cosine similarity between queries before and after training",
    "token_rotation_magnitude": "Per-token norm of the query update after training",
}
SIZE_IN = (5.6, 4.6)        # inches; at 100 dpi the 1x image is 560 x 460 pixels
DPI_1X = 100
SCALES = (1, 2)
TARGET_COLOR = "#d62728"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return matplotlib, plt


def _heatmap(matrix: np.ndarray, *, title: str, cbar_label: str, vmin: float, vmax: float,
             cmap: str, cfg: ExperimentConfig):
    _, plt = _pyplot()
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
    _, plt = _pyplot()
    n = values.shape[0]
    colors = ["#1f77b4"] * n
    colors[cfg.query] = TARGET_COLOR
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
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=TARGET_COLOR),
                       plt.Rectangle((0, 0), 1, 1, color="#1f77b4")],
              labels=[f"target query {cfg.query}", "other queries"], fontsize=9,
              loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import numpy as np

    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def figure_builders(cfg: ExperimentConfig,
                    arrays: Mapping[str, np.ndarray]) -> dict[str, Callable[[], object]]:
    """name -> a function that draws that figure (lazy, so one can be drawn alone)."""
    import numpy as np

    w0, w1 = arrays["weights_before"], arrays["weights_after"]
    s0, s1 = arrays["scores_before"], arrays["scores_after"]
    # One colour scale per before/after pair, so colours mean the same number in both panels.
    w_lim = (0.0, float(max(w0.max(), w1.max())))
    s_abs = float(max(np.abs(s0).max(), np.abs(s1).max()))
    cos = _cosine(arrays["Q_before"], arrays["Q_after"])                         # (n,)
    dq = np.linalg.norm(arrays["Q_after"].astype(np.float64)
                        - arrays["Q_before"].astype(np.float64), axis=-1)        # (n,)
    lo = min(0.0, float(cos.min()) - 0.05)
    return {
        "before_lora": lambda: _heatmap(w0, title="Attention weights before LoRA",
                                        cbar_label="attention weight", vmin=w_lim[0],
                                        vmax=w_lim[1], cmap="viridis", cfg=cfg),
        "after_lora": lambda: _heatmap(w1, title="Attention weights after LoRA",
                                       cbar_label="attention weight", vmin=w_lim[0],
                                       vmax=w_lim[1], cmap="viridis", cfg=cfg),
        "score_before_lora": lambda: _heatmap(s0, title=r"Scores $QK^\top/\sqrt{d}$ before LoRA",
                                              cbar_label="score", vmin=-s_abs, vmax=s_abs,
                                              cmap="RdBu_r", cfg=cfg),
        "score_after_lora": lambda: _heatmap(s1, title=r"Scores $Q'K^\top/\sqrt{d}$ after LoRA",
                                             cbar_label="score", vmin=-s_abs, vmax=s_abs,
                                             cmap="RdBu_r", cfg=cfg),
        "token_rotation_lora": lambda: _bars(
            cos, title=r"Query direction change: $\cos(q_i, q_i')$",
            ylabel="cosine similarity (before vs after)", cfg=cfg, ylim=(lo, 1.05),
            reference=1.0),
        "token_rotation_magnitude": lambda: _bars(
            dq, title=r"Query update magnitude $\Vert\Delta q_i\Vert$",
            ylabel=r"$\Vert q_i' - q_i\Vert$", cfg=cfg),
    }


def png_bytes(fig, dpi: int, *, close: bool = True) -> bytes:
    import io
    _, plt = _pyplot()
    buf = io.BytesIO()
    # metadata None drops the 'Software' text chunk; no other chunk carries time or version.
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    if close:
        plt.close(fig)
    return buf.getvalue()


def draw_every_scale(builders: Mapping[str, Callable[[], object]],
                     names: tuple[str, ...]) -> dict[str, bytes]:
    """Figures ``names`` drawn by ``builders`` (name -> function returning a Figure) at every
    scale: file name -> PNG bytes.

    Each figure's bytes depend on nothing but its own inputs, so drawing a subset (as parallel
    workers do) gives the same bytes as drawing all."""
    matplotlib, _ = _pyplot()
    out: dict[str, bytes] = {}
    # The default style, whatever the user's matplotlibrc says, so every machine draws the same.
    with matplotlib.rc_context(rc=matplotlib.rcParamsDefault):
        matplotlib.rcParams["svg.hashsalt"] = "lora-site"
        for name in names:
            # One figure, saved at every scale: building it (and its tight layout) is half the
            # cost of drawing, and the layout is in inches, so the scales agree pixel for pixel.
            fig = builders[name]()
            # tight_layout() leaves a placeholder layout engine, and with any engine set savefig
            # first draws the whole figure without output "to run the layout": a fifth of the
            # drawing time for nothing, as the layout is done. Without it the bytes are the same.
            fig.set_layout_engine(None)
            for i, scale in enumerate(SCALES):
                out[image_filename(name, scale)] = png_bytes(fig, DPI_1X * scale,
                                                             close=i == len(SCALES) - 1)
    return out


def image_filename(name: str, scale: int) -> str:
    return f"{name}.png" if scale == 1 else f"{name}@{scale}x.png"


def render_figures(cfg: ExperimentConfig, arrays: Mapping[str, np.ndarray],
                   names: tuple[str, ...] = FIGURE_NAMES) -> dict[str, bytes]:
    """The figures ``names`` (default: all six) at every scale: file name -> PNG bytes."""
    return draw_every_scale(figure_builders(cfg, arrays), names)


def image_size(scale: int = 1) -> tuple[int, int]:
    """Pixel width and height of a figure at the given scale."""
    return round(SIZE_IN[0] * DPI_1X * scale), round(SIZE_IN[1] * DPI_1X * scale)
