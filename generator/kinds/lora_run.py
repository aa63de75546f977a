"""The LoRA experiment as a kind: one training run of science.experiment (the default kind).

Settings: science.config.ExperimentConfig. Results: results.json + arrays.npz
(kinds.lora_results). Figures: plots.lora_figures. A post body sees the experiment as
``<name>.config``, ``<name>.metrics`` and ``<name>.provenance``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import ResultsError
from ..plots.lora_figures import FIGURES
from ..science.config import ExperimentConfig, experiment_from_mapping
from .base import Kind, Progress
from .lora_results import ARRAYS_NPZ, RESULTS_JSON, SavedResult, load_result, result_files


# The attention map at every training step, for the interactive figure (assets/figures.js).
ATTENTION_STEPS = "attention_steps.json"


def attention_steps_json(npz: Path, cfg: ExperimentConfig) -> bytes:
    """weights_steps (T+1, n, n: the map before each step, then after the last) as JSON: rows
    are queries, columns keys; 4 decimals, which is finer than the 3 the figure shows."""
    from ..core.npyread import read_array

    try:
        shape, values = read_array(npz, "weights_steps")
    except (OSError, KeyError, ValueError) as exc:
        raise ResultsError(f"cannot read the attention trace: {exc}", path=npz,
                           hint="run `lora-site build --force` to train again") from None
    steps, n, _ = shape
    maps = [[round(v, 4) for v in values[t * n * n:(t + 1) * n * n]] for t in range(steps)]
    doc = {"format": 1, "n": n, "steps": steps - 1, "query": cfg.query, "key": cfg.key,
           "vmax": max(max(m) for m in maps), "row": "query", "column": "key",
           "value": "attention weight", "weights": maps}
    return (json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n").encode("utf-8")


@dataclass(frozen=True)
class ExperimentView:
    """One experiment as the article sees it: main.config.d_model, main.metrics.steps, ..."""

    name: str
    config: Any
    metrics: Mapping[str, Any]
    provenance: Mapping[str, Any]


class LoraRun(Kind):
    name = "lora"
    description = "one LoRA training run on a single attention head (science/experiment.py)"
    result_files = (ARRAYS_NPZ, RESULTS_JSON)       # the arrays first: results.json names them
    figure_input_files = (ARRAYS_NPZ,)
    run_roots = ("science.experiment", "kinds.lora_results")
    run_libraries = ("torch", "numpy")
    figure_roots = ("plots.lora_figures",)
    figure_libraries = ("matplotlib", "numpy", "pillow")
    example_listing = ("lora", "LoRALinear")

    def parse(self, mapping: Mapping[str, Any] | None, *, source: object | None = None,
              prefix: str = "") -> ExperimentConfig:
        return experiment_from_mapping(mapping, source=source, prefix=prefix)

    def compute(self, name: str, settings: ExperimentConfig,
                progress: Progress | None = None) -> dict[str, bytes]:
        from ..science.experiment import run_experiment   # torch, only when something trains

        step_progress = None
        if progress is not None:
            def step_progress(step: int, loss: float, p: float) -> None:
                progress(step, settings.max_steps, f"p={p:.3f}")
        return result_files(name, run_experiment(settings, progress=step_progress))

    def downloads(self, settings: ExperimentConfig) -> tuple[str, ...]:
        return (RESULTS_JSON, ARRAYS_NPZ)        # the readable file first

    def explorers(self, settings: ExperimentConfig) -> dict[str, str]:
        return {"after_lora": ATTENTION_STEPS}

    def download_bytes(self, folder: Path, loaded: SavedResult) -> dict[str, bytes]:
        files = super().download_bytes(folder, loaded)
        files[ATTENTION_STEPS] = attention_steps_json(Path(folder) / ARRAYS_NPZ, loaded.config)
        return files

    def outcome(self, settings: ExperimentConfig, files: dict[str, bytes]) -> str:
        """Why training stopped: it checks the target weight before each step, so it ends
        either there or at max_steps."""
        m = json.loads(files[RESULTS_JSON].decode("utf-8"))["metrics"]
        p, goal = m["target_weight_after"], settings.stop_prob
        if m["reached_stop_prob"]:
            return f"target reached at step {m['steps']} (p={p:.3f} >= stop_prob {goal:g})"
        return f"max_steps reached ({m['steps']} steps; p={p:.3f} < stop_prob {goal:g})"

    def load(self, folder: Path, name: str) -> SavedResult:
        return load_result(folder)

    def check(self, loaded: SavedResult) -> None:
        loaded.arrays()

    def settings_of(self, loaded: SavedResult) -> ExperimentConfig:
        return loaded.config

    def compare(self, files: dict[str, bytes], folder: Path, atol: float, rtol: float):
        """Metrics and arrays within tolerance; None when the frozen result is unreadable or
        was computed from other settings (then there is nothing to keep)."""
        from ..core.compare import (compare_arrays, compare_values, max_abs_difference,
                                    max_array_difference, npz_from_bytes)

        try:
            saved = load_result(folder)
            frozen_arrays = saved.arrays()
        except ResultsError:
            return None
        doc = json.loads(files[RESULTS_JSON].decode("utf-8"))
        if doc.get("config") != saved.config.to_dict():
            return None
        fresh_arrays = npz_from_bytes(files[ARRAYS_NPZ])
        diffs = compare_values(doc.get("metrics"), saved.metrics, "metrics", atol, rtol)
        diffs += compare_arrays(fresh_arrays, frozen_arrays, atol, rtol)
        worst = max(max_abs_difference(doc.get("metrics"), saved.metrics),
                    max_array_difference(fresh_arrays, frozen_arrays))
        return diffs, worst

    def exact(self, files: dict[str, bytes], folder: Path) -> bool:
        from ..core.compare import arrays_equal, npz_from_bytes

        saved = load_result(folder)
        doc = json.loads(files[RESULTS_JSON].decode("utf-8"))
        return doc.get("metrics") == saved.metrics and arrays_equal(
            npz_from_bytes(files[ARRAYS_NPZ]), saved.arrays())

    def summary(self, name: str, loaded: SavedResult) -> str:
        m = loaded.metrics
        return (f"{name}: {m['steps']} steps, target weight {m['target_weight_before']:.3f} -> "
                f"{m['target_weight_after']:.3f}")

    def figures(self, settings: ExperimentConfig) -> dict[str, str]:
        return FIGURES.alt_texts(settings)

    def draw(self, folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
        saved = load_result(folder)
        return FIGURES.draw(saved.config, saved.arrays(), names)

    def view(self, name: str, loaded: SavedResult) -> ExperimentView:
        return ExperimentView(name=name, config=loaded.config, metrics=loaded.metrics,
                              provenance=loaded.provenance)

    def listing(self, loaded: SavedResult) -> dict[str, list[str]]:
        return {"config": sorted(loaded.config.to_dict()), "metrics": sorted(loaded.metrics),
                "figures": list(self.figures(loaded.config))}


KIND = LoraRun()
