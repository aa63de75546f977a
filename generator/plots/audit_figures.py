"""Figures of the claims audit, drawn from the audit summary (JSON) and per-run arrays (.npz).

Same rules as every figure (plots.common): matplotlib's default style whatever the user's rc
says, the Agg backend, a fixed size and dpi (the article's figure size, so the renderer's width
and height attributes hold), and no PNG metadata, so the bytes depend only on the audit.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from .common import SIZE_IN, FigureRegistry, pyplot

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
}
SHORT_LABELS = {
    "diffuse_before": "target weight ~ 1/n before",
    "no_key_dominates_before": "no key dominates before",
    "reaches_target": "reaches stop probability",
    "only_target_row": "only the target row changes",
    "score_change_localized": "score change localised",
    "target_cosine_drops": "target query rotates",
    "other_cosines_near_one": "other queries keep direction",
    "target_update_dominates": "target |Δq| dominates",
    "update_is_rotation": "update is a rotation",
    "score_change_low_rank": "ΔS has rank ≤ r",
    "queries_disturb_less_than_keys": "Q disturbs less than K",
    "lora_more_local_than_full": "LoRA more local than full FT",
}
SITE_LABELS = {"q": "LoRA on Q", "k": "LoRA on K", "v": "LoRA on V", "full": "full FT of W_Q"}


def _value_label(sweep: str, value: Any) -> str:
    if sweep == "site":
        return SITE_LABELS[value]
    if sweep == "tokens":
        return "independent" if value == 0 else f"{value:g}"
    return str(value)


def _held_heatmap(summary: Mapping[str, Any], sweep: str, xlabel: str):
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
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="0.85")   # grey: the claim does not apply
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto",
              interpolation="nearest")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v = grid[i, j]
            text = "n/a" if np.isnan(v) else f"{100 * v:.0f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="0.35" if np.isnan(v) else "black")
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels([_value_label(sweep, p["value"]) for p in points], fontsize=8,
                       rotation=20 if sweep == "site" else 0)
    ax.set_yticks(range(len(claims)))
    ax.set_yticklabels([SHORT_LABELS.get(c, c) for c in claims], fontsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    seeds = summary["seeds"]["count"]
    ax.set_title(f"% of {seeds} seeds in which each claim holds", fontsize=10)
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


def _leakage_scatter(summary: Mapping[str, Any], arrays: Mapping[str, np.ndarray]):
    _, plt = pyplot()
    cfg = summary["settings"]["default"]["config"]
    leak, dot, sign = _pooled_leakage(arrays, "default", cfg["query"])
    top = float(max(leak.max(), dot.max(), sign.max())) * 1.05
    fig, ax = plt.subplots(figsize=SIZE_IN)
    ax.scatter(dot, leak, s=5, alpha=0.35, color="#ff7f0e", linewidths=0,
               label=r"against $|x_0\cdot x_i|\,/\,\Vert x_0\Vert^2$")
    ax.scatter(sign, leak, s=5, alpha=0.35, color="#1f77b4", linewidths=0,
               label=r"against $|\mathrm{sign}(x_0)\cdot x_i|\,/\,\Vert x_0\Vert_1$")
    ax.plot([0, top], [0, top], color="0.3", linewidth=1, linestyle="--", label="y = x")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("prediction from the tokens")
    ax.set_ylabel(r"leakage $\Vert\Delta q_i\Vert\,/\,\Vert\Delta q_0\Vert$")
    ax.set_title(f"Leakage of every non-target query, default setting "
                 f"({summary['seeds']['count']} seeds)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", markerscale=3)
    fig.tight_layout()
    return fig


def _leakage_vs_d(summary: Mapping[str, Any]):
    import numpy as np

    _, plt = pyplot()
    points = summary["sweeps"]["d_model"]["points"]
    ds = np.array([p["value"] for p in points], dtype=np.float64)
    geo = [summary["settings"][p["setting"]]["geometry"]["leakage"] for p in points]
    fig, ax = plt.subplots(figsize=SIZE_IN)
    fine = np.geomspace(ds.min() * 0.8, ds.max() * 1.25, 100)
    ax.plot(fine, 1 / np.sqrt(fine), color="#1f77b4", linewidth=1.2,
            label=r"$1/\sqrt{d}$ (sign prediction, Gaussian tokens)")
    ax.plot(fine, np.sqrt(2 / (math.pi * fine)), color="#ff7f0e", linewidth=1.2,
            label=r"$\sqrt{2/(\pi d)}$ (dot-product prediction)")
    ax.plot(ds, [g["mean"] for g in geo], "o", color="black", markersize=6,
            label="measured mean leakage")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ds)
    ax.set_xticklabels([str(int(d)) for d in ds])
    ax.set_xlabel("model width d")
    ax.set_ylabel("mean leakage over non-target queries")
    ax.set_title("Mean leakage against model width", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def _spectrum(summary: Mapping[str, Any], arrays: Mapping[str, np.ndarray]):
    import numpy as np

    _, plt = pyplot()
    fig, ax = plt.subplots(figsize=SIZE_IN)
    series = [(f"r = {p['value']}", p["setting"])
              for p in summary["sweeps"]["rank"]["points"]] + [("full FT of W_Q", "site=full")]
    cmap = plt.get_cmap("viridis")
    floor = 1e-12
    for k, (label, setting) in enumerate(series):
        sv = arrays[f"{setting}__main__delta_w_singular_values"].astype(np.float64)   # (S, 8)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = sv / sv[:, :1]
        cols = [i for i in range(ratio.shape[1]) if np.isfinite(ratio[:, i]).any()]
        med = np.array([np.nanmedian(ratio[:, i]) for i in cols])
        color = "#d62728" if setting == "site=full" else cmap(k / max(1, len(series) - 2))
        ax.plot(np.array(cols) + 1, np.maximum(med, floor), marker="o", color=color, markersize=4,
                linewidth=1.2, label=label,
                linestyle="--" if setting == "site=full" else "-")
    ax.set_yscale("log")
    ax.set_xlabel(r"index $i$ of the singular value")
    ax.set_ylabel(r"median $\sigma_i / \sigma_1$ of $\Delta W$")
    ax.set_xticks(range(1, 9))
    ax.set_title(r"Singular values of $\Delta W$, relative to the largest", fontsize=10)
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    fig.tight_layout()
    return fig


def _alignment(summary: Mapping[str, Any]):
    _, plt = pyplot()
    fig, ax = plt.subplots(figsize=SIZE_IN)
    cmap = plt.get_cmap("viridis")
    points = summary["sweeps"]["rank"]["points"]
    for k, p in enumerate(points):
        trace = summary["settings"][p["setting"]]["geometry"]["alignment"]["trace_mean"]
        ax.plot(range(len(trace)), trace, "o-", markersize=3, linewidth=1.2,
                color=cmap(k / max(1, len(points) - 1)), label=f"r = {p['value']}")
    ax.axhline(math.sqrt(2 / math.pi), color="#d62728", linestyle="--", linewidth=1,
               label=r"$\sqrt{2/\pi}$: cosine of $x_0$ and $\mathrm{sign}(x_0)$")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(r"$\Vert P_{\mathrm{row}(A)}\, x_0\Vert / \Vert x_0\Vert$ (mean over seeds)")
    ax.set_title(r"Alignment of the row space of $A$ with $x_0$ during training", fontsize=10)
    ax.legend(fontsize=8, loc="lower right", ncol=2)
    fig.tight_layout()
    return fig


def _prepare(settings: Any, data: tuple[Mapping[str, Any], Mapping[str, np.ndarray]]):
    from ..core.errors import ResultsError

    summary, arrays = data
    if summary.get("sweep_set") != "all":
        raise ResultsError("the audit figures need the sweeps", field="sweep_set",
                           hint="run `lora-site audit --sweeps all`")
    return summary, arrays


FIGURES = FigureRegistry(prepare=_prepare)
for _name, (_sweep, _xlabel) in SWEEP_FIGURES.items():
    FIGURES.register(_name, alt=ALT_TEXT[_name])(
        lambda settings, data, s=_sweep, x=_xlabel: _held_heatmap(data[0], s, x))
FIGURES.register("audit_leakage", alt=ALT_TEXT["audit_leakage"])(
    lambda settings, data: _leakage_scatter(*data))
FIGURES.register("audit_leakage_vs_d", alt=ALT_TEXT["audit_leakage_vs_d"])(
    lambda settings, data: _leakage_vs_d(data[0]))
FIGURES.register("audit_spectrum", alt=ALT_TEXT["audit_spectrum"])(
    lambda settings, data: _spectrum(*data))
FIGURES.register("audit_alignment", alt=ALT_TEXT["audit_alignment"])(
    lambda settings, data: _alignment(data[0]))
FIGURE_NAMES = FIGURES.names()


def render_audit_figures(summary: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                         names: tuple[str, ...] = FIGURE_NAMES) -> dict[str, bytes]:
    """The audit figures ``names`` (default: all) at every scale: file name -> PNG bytes
    (deterministic; a subset draws the same bytes, so workers can share the figures)."""
    return FIGURES.draw(None, (summary, arrays), names)
