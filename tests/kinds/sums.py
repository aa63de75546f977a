"""A small experiment kind, numpy only: partial sums of a seeded random walk.

Everything a kind declares, and nothing the stages know by name: settings parsed from front
matter with one-line errors, results keyed by this module's source and numpy's version, two
result files, one figure, a comparison for the freeze and verify, and what a body sees.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from generator.core.compare import (arrays_equal, compare_arrays, compare_values,
                                    max_abs_difference, max_array_difference, npz_from_bytes)
from generator.core.errors import ConfigError, ResultsError, unknown_key_error
from generator.kinds.base import Kind

SUMMARY = "summary.json"
VALUES = "values.npz"


@dataclass(frozen=True)
class SumsSettings:
    steps: int = 50             # length of the walk
    seed: int = 0
    scale: float = 1.0          # step size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SavedSums:
    summary: dict[str, Any]
    path: Path

    def values(self):
        from generator.core.fsio import load_npz

        try:
            return load_npz(self.path / VALUES)["walk"]
        except (OSError, ValueError, KeyError) as exc:
            raise ResultsError(f"cannot read the walk: {exc}", path=self.path / VALUES) from None


class Sums(Kind):
    name = "sums"
    description = "partial sums of a seeded random walk (a test kind, numpy only)"
    result_files = (VALUES, SUMMARY)
    figure_input_files = (VALUES,)
    run_roots = ()                      # outside the package: keyed by this file (stages.run)
    run_libraries = ("numpy",)
    figure_roots = ()
    figure_libraries = ("matplotlib", "numpy")
    data_name = "walk_summary"

    def parse(self, mapping: Mapping[str, Any] | None, *, source=None, prefix=""):
        data = dict(mapping or {})
        for key in sorted(data):
            if key not in SumsSettings.__dataclass_fields__:
                raise unknown_key_error(key, list(SumsSettings.__dataclass_fields__),
                                        source=source, prefix=prefix)
        if "steps" in data and (not isinstance(data["steps"], int) or data["steps"] < 2):
            raise ConfigError(f"must be an integer >= 2, got {data['steps']!r}", path=source,
                              field=prefix + "steps")
        if "scale" in data:
            data["scale"] = float(data["scale"])
        return SumsSettings(**data)

    def compute(self, name, settings: SumsSettings, progress=None) -> dict[str, bytes]:
        import numpy as np

        from generator.core.fsio import npz_bytes

        rng = np.random.default_rng(settings.seed)
        walk = np.cumsum(rng.standard_normal(settings.steps) * settings.scale)   # (steps,)
        if progress is not None:
            progress(settings.steps, settings.steps, "done")
        summary = {"name": name, "settings": settings.to_dict(), "final": float(walk[-1]),
                   "max": float(walk.max()), "argmax": int(walk.argmax())}
        return {VALUES: npz_bytes({"walk": walk}),
                SUMMARY: (json.dumps(summary, sort_keys=True, indent=1) + "\n").encode()}

    def load(self, folder: Path, name: str) -> SavedSums:
        try:
            return SavedSums(json.loads((Path(folder) / SUMMARY).read_text()), Path(folder))
        except (OSError, ValueError) as exc:
            raise ResultsError(f"cannot read the summary: {exc}", path=Path(folder) / SUMMARY,
                               hint="build again") from None

    def check(self, loaded: SavedSums) -> None:
        loaded.values()

    def settings_of(self, loaded: SavedSums) -> SumsSettings:
        return SumsSettings(**loaded.summary["settings"])

    def compare(self, files, folder, atol, rtol):
        try:
            frozen = self.load(folder, "")
            frozen_values = {"walk": frozen.values()}
        except ResultsError:
            return None
        fresh = json.loads(files[SUMMARY])
        if fresh["settings"] != frozen.summary["settings"]:
            return None
        fresh_values = npz_from_bytes(files[VALUES])
        diffs = compare_values(fresh, frozen.summary, "summary", atol, rtol)
        diffs += compare_arrays(fresh_values, frozen_values, atol, rtol)
        return diffs, max(max_abs_difference(fresh, frozen.summary),
                          max_array_difference(fresh_values, frozen_values))

    def exact(self, files, folder) -> bool:
        frozen = self.load(folder, "")
        return json.loads(files[SUMMARY]) == frozen.summary and arrays_equal(
            npz_from_bytes(files[VALUES]), {"walk": frozen.values()})

    def summary(self, name, loaded: SavedSums) -> str:
        return f"{name}: walk of {len(loaded.values())} steps, final {loaded.summary['final']:.3f}"

    def figures(self, settings) -> dict[str, str]:
        return {"walk": f"The random walk over {settings.steps} steps"}

    def draw(self, folder, names) -> dict[str, bytes]:
        from generator.plots.common import SIZE_IN, draw_every_scale, pyplot

        walk = self.load(folder, "").values()

        def build(theme):
            _, plt = pyplot()
            fig, ax = plt.subplots(figsize=SIZE_IN)
            ax.plot(walk, color=theme.other)
            ax.set_title("walk")
            fig.tight_layout()
            return fig
        return draw_every_scale({"walk": build}, tuple(names))

    def view(self, name, loaded: SavedSums):
        return loaded.summary

    def data(self, loaded: SavedSums):
        return loaded.summary


KIND = Sums()
