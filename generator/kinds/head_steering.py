"""The steering experiment as a kind: LoRA against full fine-tuning of one head's W_Q in a
trained transformer (science.steering), reading the model another experiment trained.

Settings: science.steering_config.SteeringSettings; ``model`` names an experiment of kind
transformer (Kind.needs), whose weights the stages hand to ``compute`` and whose files' hashes
key this result, so a change to these settings never retrains the model. Files: steering.json
(settings, the model it read, every metric) and steering.npz (attention rows, per-row changes,
per-window loss changes, the updates). Figures: plots.steering_figures.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..plots.steering_figures import FIGURES
from .base import Need, Progress
from .json_npz import JsonNpzKind, SavedJsonNpz


class HeadSteering(JsonNpzKind):
    name = "steering"
    description = "LoRA vs full fine-tuning of one head's W_Q in a trained transformer"
    json_name = "steering.json"
    npz_name = "steering.npz"
    what = "steering experiment"
    figure_input_files = ("steering.json", "steering.npz")
    run_roots = ("science.steering", "kinds.json_npz")
    run_libraries = ("torch", "numpy")
    figure_roots = ("plots.steering_figures",)
    figure_libraries = ("matplotlib", "numpy", "pillow")

    def parse(self, mapping, *, source=None, prefix=""):
        from ..science.settings_io import from_mapping
        from ..science.steering_config import SteeringSettings

        return from_mapping(SteeringSettings, mapping, source=source, prefix=prefix)

    def needs(self, settings) -> tuple[Need, ...]:
        return (Need("model", settings.model, "transformer"),)

    def compute(self, name: str, settings, progress: Progress | None = None,
                upstream: Mapping[str, Any] | None = None) -> dict[str, bytes]:
        from ..science.steering import steering_result

        model: SavedJsonNpz = (upstream or {})[settings.model]
        doc, arrays = steering_result(name, settings, model.doc, model.arrays(), progress)
        return self.files(doc, arrays)

    def summary(self, name: str, loaded: SavedJsonNpz) -> str:
        m = loaded.doc["metrics"]
        return (f"{name}: layer {m['layer']} head {m['head']}, LoRA {m['lora']['steps']} steps, "
                f"full FT {m['full']['steps']} steps")

    def outcome(self, settings, files: dict[str, bytes]) -> str:
        """Each method stops at the target weight or at max_steps: which, and when."""
        m = json.loads(files[self.json_name].decode("utf-8"))["metrics"]
        ends = [f"{method} {'reached' if m[method]['reached'] else 'max_steps at'} step "
                f"{m[method]['steps']}" for method in ("lora", "full", "sgd")]
        return f"{', '.join(ends)} (stop_prob {settings.stop_prob:g})"

    def figures(self, settings) -> dict[str, str]:
        return FIGURES.alt_texts(settings)

    def draw(self, folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
        saved = self.load(folder, "")
        return FIGURES.draw(self.settings_of(saved), (saved.doc, saved.arrays()), names)

    def listing(self, loaded: SavedJsonNpz) -> dict[str, list[str]]:
        m = loaded.doc["metrics"]
        return {"settings": sorted(loaded.doc["settings"]), "metrics": sorted(m),
                "per method": sorted(m["lora"]), "figures": list(FIGURES.names())}


KIND = HeadSteering()
