"""Figures of the audit's controls: the optimizer, the learning rate, the stop probability, the
target pair and held-out inputs (drawn from the audit summary and per-run arrays; registered in
plots.audit_figures).

A held fraction is always drawn with its 95% Wilson interval (the summary's ci95), as a
percentage of the seeds.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .common import SIZE_IN, Theme, pyplot

if TYPE_CHECKING:
    import numpy as np

MARKERS = ("o", "s", "D", "^", "v", "P")
# The claims each sweep's figure follows: those whose held fraction the sweep moves, and one
# it leaves alone, for contrast.
LR_CLAIMS = ("other_cosines_near_one", "target_update_dominates", "lora_more_local_than_full")
STOP_CLAIMS = ("other_cosines_near_one", "lora_more_local_than_full", "only_target_row",
               "target_update_dominates")
TARGET_CLAIMS = ("score_change_localized", "other_cosines_near_one", "queries_disturb_less_than_keys",
                 "lora_more_local_than_full", "target_update_dominates")


def labels(summary: Mapping[str, Any]) -> dict[str, str]:
    """Each claim's short label (science.claims.Claim.label), controls included."""
    return {c["name"]: c["label"] for c in (*summary["claims"], *summary["control_claims"])}


def claim_of(setting: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A claim's summary in one setting, reference claim or control alike."""
    return setting["claims"].get(name) or setting["controls"][name]


def _points(summary: Mapping[str, Any], sweep: str) -> list[tuple[Any, Mapping[str, Any]]]:
    return [(p["value"], summary["settings"][p["setting"]])
            for p in summary["sweeps"][sweep]["points"]]


def _held_lines(ax, xs: Sequence[float], settings: Sequence[Mapping[str, Any]],
                claims: Sequence[str], theme: Theme, names: Mapping[str, str], *,
                dodge: float = 0.0) -> None:
    """One line per claim: held percentage with its Wilson interval at each x."""
    for k, name in enumerate(claims):
        rows = [claim_of(s, name) for s in settings]
        y = [100 * r["fraction"] for r in rows]
        lo = [100 * (r["fraction"] - r["ci95"][0]) for r in rows]
        hi = [100 * (r["ci95"][1] - r["fraction"]) for r in rows]
        shift = (k - (len(claims) - 1) / 2) * dodge
        ax.errorbar([x + shift for x in xs], y, yerr=[lo, hi], marker=MARKERS[k % len(MARKERS)],
                    markersize=6, linewidth=1.6 if not dodge else 0, elinewidth=1.2, capsize=3,
                    color=theme.series[k % len(theme.series)], label=names[name])
    ax.set_ylim(-4, 104)
    ax.set_ylabel("% of seeds it holds in")
    ax.grid(axis="y", linewidth=0.8)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)


def _legend_below(fig, ax, ncol: int = 2) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False,
               handlelength=1.6, columnspacing=1.0)


def optimizer_figure(summary: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                     theme: Theme, pooled):
    """Leakage against each prediction (rows) for Adam and for gradient descent (columns), with
    each panel's correlation."""
    _, plt = pyplot()
    cfg = summary["settings"]["default"]["config"]
    points = [(p["value"], p["setting"]) for p in summary["sweeps"]["optimizer"]["points"]]
    fig, axes = plt.subplots(2, 2, figsize=SIZE_IN, sharex=True, sharey=True)
    data = [pooled(arrays, setting, cfg["query"]) for _, setting in points]
    top = max(float(max(x.max() for x in d)) for d in data) * 1.05
    rows = (("dot", r"dot product", theme.accent), ("sign", r"sign", theme.other))
    for col, ((value, setting), (leak, dot, sign)) in enumerate(zip(points, data)):
        fits = summary["settings"][setting]["geometry"]["leakage"]
        for row, (key, label, color) in enumerate(rows):
            ax = axes[row, col]
            x = dot if key == "dot" else sign
            ax.scatter(x, leak, s=4, alpha=0.3, color=color, linewidths=0, rasterized=False)
            ax.plot([0, top], [0, top], color=theme.muted, linewidth=1, linestyle="--")
            ax.text(0.04, 0.96, f"r = {fits['vs_' + key]['pearson_r']:.2f}", ha="left",
                    va="top", transform=ax.transAxes)
            ax.set_xlim(0, top)
            ax.set_ylim(0, top)
            for spine in ("top", "right"):
                ax.spines[spine].set_visible(False)
            if row == 0:
                lr = summary["settings"][setting]["config"]["lr"]
                ax.set_title(f"{'Adam' if value == 'adam' else 'gradient descent'}, lr {lr:g}")
            if col == 0:
                ax.set_ylabel(f"leakage vs\n{label}")
    ticks = [0, round(top / 2, 1)]
    axes[0, 0].set_xticks(ticks)
    axes[0, 0].set_yticks(ticks)
    fig.supxlabel(r"prediction ($x_0\cdot x_i$ or $\mathrm{sign}(x_0)\cdot x_i$, normalised)",
                  fontsize=12)
    fig.tight_layout()
    return fig


def lr_figure(summary: Mapping[str, Any], theme: Theme):
    """Held fractions against the learning rate, for Adam and for gradient descent."""
    _, plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=SIZE_IN, sharey=True)
    chosen = summary["sgd_lr"]["chosen"]
    for ax, sweep, title in ((axes[0], "lr", "Adam"), (axes[1], "lr_sgd", "gradient descent")):
        pts = _points(summary, sweep)
        xs = [math.log10(v) for v, _ in pts]
        _held_lines(ax, xs, [s for _, s in pts], LR_CLAIMS, theme, labels(summary))
        ax.set_xticks(xs[::2])
        ax.set_xticklabels([f"{v:g}" for v, _ in pts][::2])
        ax.set_xlabel("learning rate")
        ax.set_title(title)
        default = (summary["settings"]["default"]["config"]["lr"] if sweep == "lr" else chosen)
        ax.axvline(math.log10(default), color=theme.muted, linewidth=1, linestyle=":")
    axes[1].set_ylabel("")
    _legend_below(fig, axes[0], ncol=1)
    fig.tight_layout(rect=(0, 0.22, 1, 1))
    return fig


def stop_figure(summary: Mapping[str, Any], theme: Theme):
    """Held fractions against the stop probability, up to training nearly to convergence."""
    _, plt = pyplot()
    fig, ax = plt.subplots(figsize=SIZE_IN)
    pts = _points(summary, "stop_prob")
    # Equally spaced: the values approach 1 geometrically (0.9, 0.99, ...).
    xs = list(range(len(pts)))
    _held_lines(ax, xs, [s for _, s in pts], STOP_CLAIMS, theme, labels(summary))
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{v:g}" for v, _ in pts])
    ax.set_xlabel("stop probability (target weight at which training stops)")
    ax.set_title("Training longer makes the update less local")
    _legend_below(fig, ax)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    return fig


def target_figure(summary: Mapping[str, Any], theme: Theme):
    """Held fractions for several (query, key) targets."""
    _, plt = pyplot()
    fig, ax = plt.subplots(figsize=SIZE_IN)
    pts = _points(summary, "target")
    xs = list(range(len(pts)))
    _held_lines(ax, xs, [s for _, s in pts], TARGET_CLAIMS, theme, labels(summary), dodge=0.12)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"q {v[0]} → k {v[1]}" for v, _ in pts])
    ax.set_xlim(-0.5, len(pts) - 0.5)
    ax.set_xlabel("target (query → key)")
    ax.set_title("The same claims for other target pairs")
    _legend_below(fig, ax)
    fig.tight_layout(rect=(0, 0.22, 1, 1))
    return fig


def heldout_figure(summary: Mapping[str, Any], theme: Theme, threshold: float):
    """The largest row change on fresh sequences and on the training sequence's other rows,
    over the target row's change, against the width (median and quartiles over seeds)."""
    _, plt = pyplot()
    fig, ax = plt.subplots(figsize=SIZE_IN)
    pts = _points(summary, "d_model")
    ds = [v for v, _ in pts]
    series = (("training sequence, other rows", "tv_other_over_target", theme.accent, "s"),
              ("fresh sequences, every row", "heldout", theme.other, "o"))
    for label, key, color, marker in series:
        q = [(s["geometry"][key] if key != "heldout" else s["geometry"]["heldout"]
              ["tv_over_target"])["quantiles"] for _, s in pts]
        ax.fill_between(ds, [x["0.25"] for x in q], [x["0.75"] for x in q], color=color,
                        alpha=0.25, linewidth=0)
        ax.plot(ds, [x["0.5"] for x in q], marker=marker, color=color, linewidth=1.6,
                markersize=6, label=label)
    ax.axhline(threshold, color=theme.muted, linestyle="--", linewidth=1.2,
               label=f"{threshold:g}: 'only the target row changes'")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ds)
    ax.set_xticklabels([str(d) for d in ds])
    ax.set_xlabel("model width d")
    ax.set_ylabel("largest row change / target row's")
    ax.set_ylim(bottom=0)
    ax.set_title("Attention change where the update was not aimed")
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    _legend_below(fig, ax, ncol=1)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    return fig
