"""The steering experiment's figures, drawn from steering.json and steering.npz (never torch).

Colours mean the same method in every figure and theme (plots.common.Theme.series): LoRA
blue, full fine-tuning with Adam orange, full fine-tuning with plain gradient descent (the
control) green, the model before grey.
"""
from __future__ import annotations

from .common import SIZE_IN, FigureRegistry, Theme, pyplot
from .lm_figures import LABEL, TICK, style

FIGURES = FigureRegistry()


def colors(theme: Theme) -> dict[str, str]:
    """The method colours in ``theme`` (its colour-blind-safe series, lighter on dark)."""
    return {"lora": theme.series[0], "full": theme.series[1], "sgd": theme.series[2],
            "base": theme.muted}
NAMES = {"lora": "LoRA", "full": "full FT (Adam)", "sgd": "full FT (gradient descent)"}
ADAM = ("lora", "full")


def _where(doc) -> str:
    m = doc["metrics"]
    return f"layer {m['layer']}, head {m['head']}"


@FIGURES.register("steer_heads", alt=lambda s: (
    "Mean normalised attention entropy of every head of the trained model, with the steered "
    f"head (layer {s.layer}, head {s.head}) outlined"))
def steer_heads(settings, data, theme: Theme):
    _, plt = pyplot()
    doc, arrays = data
    ent = arrays["head_entropy"]                                            # (L, nh)
    fig, ax = plt.subplots(figsize=SIZE_IN)
    im = ax.imshow(ent, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for (layer, head), value in _cells(ent):
        ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=LABEL,
                color="white" if value < 0.6 else "black")
    m = doc["metrics"]
    for color, width in (("black", 5.0), ("white", 2.0)):     # visible on any cell colour
        ax.add_patch(plt.Rectangle((m["head"] - 0.5, m["layer"] - 0.5), 1, 1, fill=False,
                                   edgecolor=color, linewidth=width))
    style(ax, title="How diffuse is each head? (1 = uniform)", xlabel="head", ylabel="layer")
    ax.grid(False)
    ax.set_xticks(range(ent.shape[1]))
    ax.set_yticks(range(ent.shape[0]))
    cbar = fig.colorbar(im, ax=ax)
    cbar.ax.tick_params(labelsize=TICK)
    cbar.set_label("mean normalised entropy", fontsize=LABEL)
    fig.tight_layout()
    return fig


def _cells(grid):
    for layer in range(grid.shape[0]):
        for head in range(grid.shape[1]):
            yield (layer, head), float(grid[layer, head])


@FIGURES.register("steer_row", alt=lambda s: (
    "The steered query's attention over the keys of the training sequence, before and after "
    "LoRA and full fine-tuning"))
def steer_row(settings, data, theme: Theme):
    palette = colors(theme)
    import numpy as np

    _, plt = pyplot()
    doc, arrays = data
    m = doc["metrics"]
    i, j = m["query"], m["key"]
    keys = range(i + 1)
    fig, ax = plt.subplots(figsize=SIZE_IN)
    # A log scale: the diffuse row before (weights near 1/n) and the peaked row after both
    # read. The axis starts a decade below the smallest weight before; the sharpened row after
    # has weights far below it, drawn on the axis.
    before = arrays["base_row"][:i + 1]
    floor = 10 ** (np.floor(np.log10(float(before[before > 0].min()))) - 1)
    ax.bar(keys, before - floor, color=palette["base"], width=0.9, label="before", bottom=floor)
    for method, marker in (("lora", "o"), ("full", "s")):
        ax.plot(keys, np.maximum(arrays[f"{method}_row"][:i + 1], floor), color=palette[method],
                marker=marker, markersize=4, linewidth=1.2, label=f"after {NAMES[method]}",
                clip_on=False)
    ax.axvline(j, color=theme.fg, linestyle=":", linewidth=1.2)
    style(ax, title=f"Attention of query {i} ({_where(doc)})", xlabel="key position",
          ylabel="attention weight (log scale)")
    ax.set_yscale("log")
    # The decade and a half above 1 holds the legend and the key's label.
    ax.set_ylim(floor, 30.0)
    ax.set_yticks([10.0 ** k for k in range(int(round(np.log10(floor))), 1)])
    ax.set_xlim(-1, i + 1)
    _label_line(ax, j, 20.0, f"key {j}", right=j < i - 9, theme=theme)
    ax.legend(fontsize=TICK, loc="upper left", framealpha=0.95)
    fig.tight_layout()
    return fig


def _label_line(ax, x: float, y: float, text: str, *, right: bool, theme: Theme) -> None:
    """A label beside a vertical marker line, inside the axes, on the side with room (on the
    theme's background, so the bars behind it do not hide it)."""
    ax.text(x + (0.8 if right else -0.8), y, text, fontsize=TICK, va="top",
            ha="left" if right else "right",
            bbox={"facecolor": theme.bg, "edgecolor": "none", "alpha": 0.85, "pad": 1.5})


def _rows_plot(ax, rows, series, target: int | None, theme: Theme) -> None:
    palette = colors(theme)
    for method in ADAM:
        ax.plot(rows, series[method], color=palette[method], linewidth=1.8, marker=".",
                markersize=5, label=NAMES[method])
    if target is not None:
        ax.axvline(target, color=theme.fg, linestyle=":", linewidth=1.2)


@FIGURES.register("steer_train_rows", alt=lambda s: (
    "Total-variation change of every attention row of the steered head on the training "
    "sequence, for LoRA and full fine-tuning"))
def steer_train_rows(settings, data, theme: Theme):
    _, plt = pyplot()
    doc, arrays = data
    i = doc["metrics"]["query"]
    rows = list(range(1, len(arrays["lora_tv_rows"])))
    fig, ax = plt.subplots(figsize=SIZE_IN)
    _rows_plot(ax, rows, {k: arrays[f"{k}_tv_rows"][1:] for k in ADAM}, i, theme)
    style(ax, title="Training sequence: change of every row", xlabel="query position (row)",
          ylabel="TV distance, before to after")
    # TV is at most 1: the band above it holds the legend, so no row's point hides behind it.
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.legend(fontsize=TICK, loc="upper left", ncol=2, framealpha=0.95)
    fig.tight_layout()
    return fig


@FIGURES.register("steer_heldout_rows", alt=lambda s: (
    f"Total-variation change of every attention row on {s.heldout} held-out sequences: the "
    "mean over sequences with the range, for LoRA and full fine-tuning"))
def steer_heldout_rows(settings, data, theme: Theme):
    palette = colors(theme)
    import numpy as np

    _, plt = pyplot()
    doc, arrays = data
    fig, ax = plt.subplots(figsize=SIZE_IN)
    for method in ADAM:
        tv = arrays[f"{method}_held_tv_rows"]                             # (N, T-1): rows 1..
        rows = np.arange(1, tv.shape[1] + 1)
        lo, hi = np.quantile(tv, [0.1, 0.9], axis=0)
        ax.fill_between(rows, lo, hi, color=palette[method], alpha=0.18, linewidth=0)
        ax.plot(rows, tv.mean(0), color=palette[method], linewidth=2.0, label=NAMES[method])
    style(ax, title=f"{settings.heldout} unseen sequences: change of every row",
          xlabel="query position (row)", ylabel="TV distance (mean, 10-90%)")
    # TV is at most 1: the band above it holds the legend, so no row's point hides behind it.
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.legend(fontsize=TICK, loc="upper left", ncol=2, framealpha=0.95)
    fig.tight_layout()
    return fig


@FIGURES.register("steer_heldout_loss", alt=lambda s: (
    "Distribution over every held-out window of the change in the model's loss caused by each "
    "merged update"))
def steer_heldout_loss(settings, data, theme: Theme):
    palette = colors(theme)
    import numpy as np

    _, plt = pyplot()
    doc, arrays = data
    fig, ax = plt.subplots(figsize=SIZE_IN)
    changes = {k: arrays[f"{k}_held_loss_change"] for k in ADAM}
    top = max(float(np.abs(v).max()) for v in changes.values())
    bins = np.linspace(-top, top, 41)
    for method in ADAM:
        ax.hist(changes[method], bins=bins, histtype="step", linewidth=2.0,
                color=palette[method], label=f"{NAMES[method]}, mean "
                f"{doc['metrics'][method]['held_loss_delta']:+.4f}")
    ax.axvline(0, color=theme.fg, linewidth=1.0)
    style(ax, title=f"Loss change on {len(changes['lora'])} held-out windows",
          xlabel="change in loss (nats per character)", ylabel="windows")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)          # room for the legend above the peak
    ax.legend(fontsize=TICK, loc="upper left", framealpha=0.95)
    fig.tight_layout()
    return fig


@FIGURES.register("steer_leak", alt=lambda s: (
    "For every other token, how far its query moved relative to the steered query, against "
    "the rank-one predictions from sign(x_i) for Adam and from x_i for gradient descent"))
def steer_leak(settings, data, theme: Theme):
    palette = colors(theme)
    _, plt = pyplot()
    doc, arrays = data
    i = doc["metrics"]["query"]
    fig, ax = plt.subplots(figsize=SIZE_IN)
    other = [m for m in range(len(arrays["base_pred_sign"])) if m != i]
    top = 0.0
    for method, pred, marker in (("lora", "sign", "o"), ("full", "sign", "s"),
                                 ("sgd", "x", "^")):
        x = arrays[f"base_pred_{pred}"][other]
        y = arrays[f"{method}_dq_rel"][other]
        top = max(top, float(x.max()), float(y.max()))
        what = r"$v = \mathrm{sign}(x_i)$" if pred == "sign" else r"$v = x_i$"
        ax.scatter(x, y, s=22, marker=marker, color=palette[method], alpha=0.8,
                   label=f"{NAMES[method]}, {what}")
    ax.plot([0, top * 1.05], [0, top * 1.05], color=theme.fg, linewidth=1.0, linestyle="--")
    style(ax, title="Which queries move: the rank-one leak",
          xlabel=r"predicted $|v \cdot x_m| \,/\, |v \cdot x_i|$",
          ylabel=r"measured $\Vert\Delta q_m\Vert \,/\, \Vert\Delta q_i\Vert$")
    ax.set_xlim(0, top * 1.05)
    ax.set_ylim(0, top * 1.05)
    ax.legend(fontsize=TICK - 1, loc="lower right", framealpha=0.95)
    fig.tight_layout()
    return fig
