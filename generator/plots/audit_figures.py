"""Figures of the claims audit, drawn from the audit summary (JSON) and per-run arrays (.npz):
the heat maps of each sweep, the leakage and spectrum analyses here, the controls' figures in
plots.audit_controls; all registered below.

Same rules as every figure (plots.common): matplotlib's default style whatever the user's rc
says plus the theme, the Agg backend, a fixed size and dpi (the article's figure size, so the
renderer's width and height attributes hold), and no PNG metadata, so the bytes depend only on
the audit.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from . import audit_controls as controls
from .common import SIZE_IN, FigureRegistry, Theme, pyplot

if TYPE_CHECKING:
    import numpy as np

SWEEP_FIGURES = {
    # figure name: (sweep, x-axis label)
    "audit_held_rank": ("rank", "LoRA rank r"),
    "audit_held_d_model": ("d_model", "model width d"),
    "audit_held_site": ("site", "where the update goes"),
    "audit_held_tokens": ("tokens", "token correlation (shared component weight)"),
    "audit_held_a_init": ("a_init", "initialisation of A"),
}
ALT_TEXT = {
    "audit_held_rank": "Heat map of the fraction of seeds in which each claim holds, for each "
                       "LoRA rank",
    "audit_held_d_model": "Heat map of the fraction of seeds in which each claim holds, for each "
                          "model width",
    "audit_held_site": "Heat map of the fraction of seeds in which each claim holds, for LoRA on "
                       "queries, keys, values and for full fine-tuning of the query weights",
    "audit_held_tokens": "Heat map of the fraction of seeds in which each claim holds, for each "
                         "token correlation",
    "audit_held_a_init": "Heat map of the fraction of seeds in which each claim holds, for the "
                         "Gaussian and the Kaiming initialisation of A",
    "audit_leakage": "Scatter plot of how much each non-target query moves, relative to the "
                     "target query, against two predictions from the input tokens",
    "audit_leakage_vs_d": "Mean leakage against model width on log-log axes, with the "
                          "predictions one over root d and root of two over pi d",
    "audit_spectrum": "Normalised singular values of the weight update for each LoRA rank and "
                      "for full fine-tuning, on a log scale",
    "audit_alignment": "Alignment of the row space of A with the target token during training, "
                       "for each LoRA rank",
    "audit_optimizer": "Two scatter plots of each non-target query's leakage against the "
                       "dot-product and the sign predictions, for Adam and for plain gradient "
                       "descent",
    "audit_lr": "Percentage of seeds in which three claims hold, with 95 percent intervals, "
                "against the learning rate, for Adam and for gradient descent",
    "audit_stop_prob": "Percentage of seeds in which four claims hold, with 95 percent "
                       "intervals, against the stop probability",
    "audit_targets": "Percentage of seeds in which five claims hold, with 95 percent "
                     "intervals, for four different query and key targets",
    "audit_heldout": "Largest change of an attention row, relative to the target row's, on "
                     "fresh sequences and on the training sequence's other rows, against the "
                     "model width",
}
SITE_LABELS = {"q": r"LoRA on $W_Q$", "k": r"LoRA on $W_K$", "v": r"LoRA on $W_V$",
               "full": r"full FT of $W_Q$"}


def _value_label(sweep: str, value: Any) -> str:
    if sweep == "site":
        return SITE_LABELS[value]
    if sweep == "tokens":
        return "independent" if value == 0 else f"{value:g}"
    return str(value)


def _held_heatmap(summary: Mapping[str, Any], sweep: str, xlabel: str, theme: Theme):
    import numpy as np

    _, plt = pyplot()
    claims = [c["name"] for c in summary["claims"]]
    points = summary["sweeps"][sweep]["points"]
    grid = np.full((len(claims), len(points)), np.nan)
    for j, point in enumerate(points):
        setting = summary["settings"][point["setting"]]
        for i, name in enumerate(claims):
            c = setting["claims"][name]
            if c.get("applies"):
                grid[i, j] = c["fraction"]
    fig, ax = plt.subplots(figsize=SIZE_IN)
    # Grey (the theme's faint colour): the claim does not apply.
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad=theme.faint)
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto",
              interpolation="nearest")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v = grid[i, j]
            # Every colour of the map is light enough for black text.
            ax.text(j, i, "n/a" if np.isnan(v) else f"{100 * v:.0f}", ha="center",
                    va="center", fontsize=11, color=theme.muted if np.isnan(v) else "black")
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels([_value_label(sweep, p["value"]) for p in points],
                       rotation=25 if sweep == "site" else 0,
                       ha="right" if sweep == "site" else "center")
    ax.set_yticks(range(len(claims)))
    ax.set_yticklabels([c["label"] for c in summary["claims"]])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(xlabel)
    # Over the figure, not the axes: the claim labels push the axes to the right.
    fig.suptitle(f"% of {summary['seeds']['count']} seeds in which each claim holds")
    fig.tight_layout()
    return fig


def _pooled_leakage(arrays: Mapping[str, np.ndarray], setting: str, query: int = 0):
    import numpy as np

    leak = arrays[f"{setting}__main__leakage"].astype(np.float64)
    dot = arrays[f"{setting}__main__leakage_dot_pred"].astype(np.float64)
    sign = arrays[f"{setting}__main__leakage_sign_pred"].astype(np.float64)
    keep = np.ones(leak.shape, dtype=bool)
    keep[:, query] = False
    return leak[keep], dot[keep], sign[keep]


def _leakage_scatter(summary: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                     theme: Theme):
    _, plt = pyplot()
    cfg = summary["settings"]["default"]["config"]
    leak, dot, sign = _pooled_leakage(arrays, "default", cfg["query"])
    top = float(max(leak.max(), dot.max(), sign.max())) * 1.05
    fig, ax = plt.subplots(figsize=SIZE_IN)
    ax.scatter(dot, leak, s=5, alpha=0.35, color=theme.accent, linewidths=0,
               label=r"against $|x_0\cdot x_i|\,/\,\Vert x_0\Vert^2$")
    ax.scatter(sign, leak, s=5, alpha=0.35, color=theme.other, linewidths=0,
               label=r"against $|\mathrm{sign}(x_0)\cdot x_i|\,/\,\Vert x_0\Vert_1$")
    ax.plot([0, top], [0, top], color=theme.muted, linewidth=1, linestyle="--",
            label="equality")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("prediction from the tokens")
    ax.set_ylabel(r"leakage $\Vert\Delta q_i\Vert\,/\,\Vert\Delta q_0\Vert$")
    ax.set_title(f"Leakage of every non-target query ({summary['seeds']['count']} seeds)")
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    ax.legend(loc="upper left", markerscale=4, frameon=False)
    fig.tight_layout()
    return fig


def _leakage_vs_d(summary: Mapping[str, Any], theme: Theme):
    import numpy as np

    _, plt = pyplot()
    points = summary["sweeps"]["d_model"]["points"]
    ds = np.array([p["value"] for p in points], dtype=np.float64)
    geo = [summary["settings"][p["setting"]]["geometry"]["leakage"] for p in points]
    fig, ax = plt.subplots(figsize=SIZE_IN)
    fine = np.geomspace(ds.min() * 0.8, ds.max() * 1.25, 100)
    ax.plot(fine, 1 / np.sqrt(fine), color=theme.other, linewidth=1.6,
            label=r"$1/\sqrt{d}$ (sign prediction)")
    ax.plot(fine, np.sqrt(2 / (math.pi * fine)), color=theme.accent, linewidth=1.6,
            label=r"$\sqrt{2/(\pi d)}$ (dot-product prediction)")
    ax.plot(ds, [g["mean"] for g in geo], "o", color=theme.fg, markersize=7,
            label="measured mean leakage")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ds)
    ax.set_xticklabels([str(int(d)) for d in ds])
    ax.set_xlabel("model width d")
    ax.set_ylabel("mean leakage, other queries")
    ax.set_title("Mean leakage against model width (Gaussian tokens)")
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    ax.legend(loc="upper right", frameon=False)
    fig.tight_layout()
    return fig


def _spectrum(summary: Mapping[str, Any], arrays: Mapping[str, np.ndarray], theme: Theme):
    import numpy as np

    _, plt = pyplot()
    fig, ax = plt.subplots(figsize=SIZE_IN)
    series = [(f"r = {p['value']}", p["setting"])
              for p in summary["sweeps"]["rank"]["points"]] + [(r"full FT of $W_Q$", "site=full")]
    cmap = plt.get_cmap("viridis")
    floor = 1e-12
    for k, (label, setting) in enumerate(series):
        sv = arrays[f"{setting}__main__delta_w_singular_values"].astype(np.float64)   # (S, 8)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = sv / sv[:, :1]
        cols = [i for i in range(ratio.shape[1]) if np.isfinite(ratio[:, i]).any()]
        med = np.array([np.nanmedian(ratio[:, i]) for i in cols])
        # viridis from its dark end reads on white; on a dark page start past its darkest.
        start = 0.0 if theme.name == "light" else 0.25
        color = theme.target if setting == "site=full" else cmap(
            start + (1 - start) * k / max(1, len(series) - 2))
        ax.plot(np.array(cols) + 1, np.maximum(med, floor), marker="o", color=color, markersize=5,
                linewidth=1.6, label=label,
                linestyle="--" if setting == "site=full" else "-")
    ax.set_yscale("log")
    ax.set_xlabel(r"index $i$ of the singular value")
    ax.set_ylabel(r"median $\sigma_i / \sigma_1$ of $\Delta W$")
    ax.set_xticks(range(1, 9))
    ax.set_title(r"Singular values of $\Delta W$, relative to the largest")
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    ax.legend(loc="upper right", ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def _alignment(summary: Mapping[str, Any], theme: Theme):
    _, plt = pyplot()
    fig, ax = plt.subplots(figsize=SIZE_IN)
    cmap = plt.get_cmap("viridis")
    start = 0.0 if theme.name == "light" else 0.25
    points = summary["sweeps"]["rank"]["points"]
    for k, p in enumerate(points):
        trace = summary["settings"][p["setting"]]["geometry"]["alignment"]["trace_mean"]
        ax.plot(range(len(trace)), trace, "o-", markersize=4, linewidth=1.6,
                color=cmap(start + (1 - start) * k / max(1, len(points) - 1)),
                label=f"r = {p['value']}")
    ax.axhline(math.sqrt(2 / math.pi), color=theme.target, linestyle="--", linewidth=1.2,
               label=r"$\sqrt{2/\pi}$")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(r"$\Vert P_{\mathrm{row}(A)}\, x_0\Vert / \Vert x_0\Vert$")
    ax.set_title(r"Row space of $A$ against $x_0$ (mean over seeds)")
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    ax.legend(loc="lower right", ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def _prepare(settings: Any, data: tuple[Mapping[str, Any], Mapping[str, np.ndarray]]):
    from ..core.errors import ResultsError

    summary, arrays = data
    if summary.get("sweep_set") != "all":
        raise ResultsError("the audit figures need the sweeps", field="sweep_set",
                           hint="run `lora-site audit --sweeps all`")
    return summary, arrays


def _threshold(summary: Mapping[str, Any], name: str) -> float:
    return next(c["threshold"] for c in summary["control_claims"] if c["name"] == name)


FIGURES = FigureRegistry(prepare=_prepare)
for _name, (_sweep, _xlabel) in SWEEP_FIGURES.items():
    FIGURES.register(_name, alt=ALT_TEXT[_name])(
        lambda settings, data, theme, s=_sweep, x=_xlabel: _held_heatmap(data[0], s, x, theme))
FIGURES.register("audit_leakage", alt=ALT_TEXT["audit_leakage"])(
    lambda settings, data, theme: _leakage_scatter(*data, theme))
FIGURES.register("audit_leakage_vs_d", alt=ALT_TEXT["audit_leakage_vs_d"])(
    lambda settings, data, theme: _leakage_vs_d(data[0], theme))
FIGURES.register("audit_spectrum", alt=ALT_TEXT["audit_spectrum"])(
    lambda settings, data, theme: _spectrum(*data, theme))
FIGURES.register("audit_alignment", alt=ALT_TEXT["audit_alignment"])(
    lambda settings, data, theme: _alignment(data[0], theme))
FIGURES.register("audit_optimizer", alt=ALT_TEXT["audit_optimizer"])(
    lambda settings, data, theme: controls.optimizer_figure(*data, theme, _pooled_leakage))
FIGURES.register("audit_lr", alt=ALT_TEXT["audit_lr"])(
    lambda settings, data, theme: controls.lr_figure(data[0], theme))
FIGURES.register("audit_stop_prob", alt=ALT_TEXT["audit_stop_prob"])(
    lambda settings, data, theme: controls.stop_figure(data[0], theme))
FIGURES.register("audit_targets", alt=ALT_TEXT["audit_targets"])(
    lambda settings, data, theme: controls.target_figure(data[0], theme))
FIGURES.register("audit_heldout", alt=ALT_TEXT["audit_heldout"])(
    lambda settings, data, theme: controls.heldout_figure(
        data[0], theme, _threshold(data[0], "heldout_rows_unchanged")))
FIGURE_NAMES = FIGURES.names()


def render_audit_figures(summary: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                         names: tuple[str, ...] = FIGURE_NAMES) -> dict[str, bytes]:
    """The audit figures ``names`` (default: all) in every theme at every scale: file name ->
    PNG bytes (deterministic; a subset draws the same bytes, so workers can share them)."""
    return FIGURES.draw(None, (summary, arrays), names)
