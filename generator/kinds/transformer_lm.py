"""The trained transformer as a kind: a small character-level language model trained at build
time on CPython's help texts (science.lm_training), whose weights other experiments read.

Settings: science.lm_config.LMSettings. Files: weights.npz (every parameter, float32,
by name) and training.json (settings, corpus facts, the loss curves and final losses, the
weights' hash, provenance). Figures: plots.lm_figures. A body reads it as ``<name>.settings``,
``<name>.training``, ``<name>.corpus`` and so on (the JSON document).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..plots.lm_figures import FIGURES
from .base import Progress
from .json_npz import JsonNpzKind, SavedJsonNpz


class TransformerLM(JsonNpzKind):
    name = "transformer"
    description = "a small causal transformer trained on CPython's help texts (character level)"
    json_name = "training.json"
    npz_name = "weights.npz"
    what = "trained transformer"
    figure_input_files = ("training.json",)
    run_roots = ("science.lm_training", "kinds.json_npz")
    run_libraries = ("torch", "numpy")
    figure_roots = ("plots.lm_figures",)
    figure_libraries = ("matplotlib", "numpy", "pillow")
    heavy = True

    def parse(self, mapping, *, source=None, prefix=""):
        from ..science.lm_config import LMSettings
        from ..science.settings_io import from_mapping

        return from_mapping(LMSettings, mapping, source=source, prefix=prefix)

    def compute(self, name: str, settings, progress: Progress | None = None) -> dict[str, bytes]:
        from ..science.lm_training import lm_result

        doc, weights = lm_result(name, settings, progress)
        return self.files(doc, weights)

    def summary(self, name: str, loaded: SavedJsonNpz) -> str:
        t = loaded.doc["training"]
        return (f"{name}: {t['n_params']} parameters, held-out {t['final_held_bits']:.3f} "
                f"bits/char (unigram {t['unigram_held_bits']:.3f})")

    def outcome(self, settings, files: dict[str, bytes]) -> str:
        """It trains for a fixed number of steps: say so, with the held-out loss reached."""
        t = json.loads(files[self.json_name].decode("utf-8"))["training"]
        return (f"{settings.steps} steps done, held-out {t['final_held_bits']:.3f} bits/char "
                f"(unigram {t['unigram_held_bits']:.3f})")

    def figures(self, settings) -> dict[str, str]:
        return FIGURES.alt_texts(settings)

    def draw(self, folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
        saved = self.load(folder, "")
        return FIGURES.draw(self.settings_of(saved), saved.doc, names)

    def listing(self, loaded: SavedJsonNpz) -> dict[str, list[str]]:
        return {"settings": sorted(loaded.doc["settings"]),
                "training": sorted(loaded.doc["training"]),
                "corpus": sorted(loaded.doc["corpus"]), "figures": list(FIGURES.names())}


def model_of(loaded: SavedJsonNpz) -> Any:
    """The trained model (science.transformer.TinyGPT) of a loaded result (imports torch)."""
    from ..science.transformer import ModelShape, load_state

    return load_state(ModelShape(**loaded.doc["shape"]), loaded.arrays())


KIND = TransformerLM()
