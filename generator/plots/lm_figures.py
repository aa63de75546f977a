"""The trained transformer's figure: its training curve against the unigram baseline.

Drawn from training.json alone (no numpy file, never torch), in each theme of plots.common. Text is sized for a phone: the
560 px figure is shown about 340 px wide at 375 px, so no text is drawn below 13 pt (about 11
CSS pixels there).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from .common import SIZE_IN, FigureRegistry, Theme, pyplot

FIGURES = FigureRegistry()
TITLE, LABEL, TICK = 16, 15, 14


def style(ax, *, title: str, xlabel: str, ylabel: str) -> None:
    """The shared look of the transformer figures: readable sizes and a faint grid (the
    theme's grid colour, plots.common.Theme)."""
    ax.set_title(title, fontsize=TITLE)
    ax.set_xlabel(xlabel, fontsize=LABEL)
    ax.set_ylabel(ylabel, fontsize=LABEL)
    ax.tick_params(labelsize=TICK)
    ax.grid(True, linewidth=0.8)
    ax.set_axisbelow(True)


@FIGURES.register("lm_training", alt=lambda s: (
    f"Training and held-out loss of the character model over {s.steps} steps, in bits per "
    "character, falling far below the unigram baseline"))
def lm_training(settings, doc: Mapping[str, Any], theme: Theme):
    _, plt = pyplot()
    train, held, base = theme.series[0], theme.target, theme.muted
    t = doc["training"]
    ln2 = math.log(2.0)
    fig, ax = plt.subplots(figsize=SIZE_IN)
    batch = [x / ln2 for x in t["batch_losses"]]
    steps = range(1, len(batch) + 1)
    window = t["train_curve_window"]
    running = [sum(batch[max(0, k - window):k]) / (k - max(0, k - window)) for k in steps]
    ax.plot(steps, batch, color=train, alpha=0.25, linewidth=0.8, label="training batch")
    ax.plot(steps, running, color=train, linewidth=2.2,
            label=f"training (mean of {window} batches)")
    ax.plot(t["curve_step"], [x / ln2 for x in t["curve_held_nats"]], color=held,
            linewidth=2.2, marker="o", markersize=5, label="held-out topics")
    ax.axhline(doc["corpus"]["unigram_held_bits"], color=base, linestyle="--",
               linewidth=1.6, label="unigram baseline (held-out)")
    style(ax, title="Training the character model", xlabel="AdamW step",
          ylabel="loss (bits per character)")
    ax.set_xlim(0, len(batch))
    ax.set_ylim(bottom=min(batch + [t["final_train_bits"]]) - 0.3)
    ax.legend(fontsize=TICK, loc="upper right", framealpha=0.95)
    fig.tight_layout()
    return fig
