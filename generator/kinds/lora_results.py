"""One LoRA run's result files, results.json plus arrays.npz (never pickles), and reading them.

results.json records the sha256 of arrays.npz, so an edited or truncated archive is detected;
``SavedResult.arrays`` checks it. ``result_files`` returns the bytes; the stages write them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is loaded by fsio only when arrays are read or written
    import numpy as np

from ..core.errors import ResultsError
from ..core.fsio import load_npz, npz_bytes, sha256_bytes, sha256_file
from ..science.config import ExperimentConfig, experiment_from_mapping

RESULTS_JSON = "results.json"
ARRAYS_NPZ = "arrays.npz"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SavedResult:
    """A result read back from disk: what the figures and the renderer consume."""

    name: str
    config: ExperimentConfig
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    arrays_sha256: str
    path: Path

    def arrays(self) -> dict[str, np.ndarray]:
        npz = self.path / ARRAYS_NPZ
        if not npz.is_file():
            raise ResultsError("arrays file is missing", path=npz,
                               hint="re-run the experiment with `lora-site run`")
        if sha256_file(npz) != self.arrays_sha256:
            raise ResultsError("arrays file does not match the hash in results.json "
                               "(truncated or edited)", path=npz,
                               hint="re-run the experiment with `lora-site run --force`")
        try:
            return load_npz(npz)
        except (ValueError, OSError) as exc:
            raise ResultsError(f"cannot read arrays: {exc}", path=npz,
                               hint="re-run the experiment with `lora-site run --force`") from None


def result_files(name: str, result) -> dict[str, bytes]:
    """The two files of a result, as bytes: {'results.json': ..., 'arrays.npz': ...}."""
    arrays = npz_bytes(result.arrays)
    doc = {
        "format": FORMAT_VERSION,
        "name": name,
        "config": result.config.to_dict(),
        "metrics": result.metrics,
        "provenance": result.provenance,
        "arrays_sha256": sha256_bytes(arrays),
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                   for k, v in sorted(result.arrays.items())},
    }
    text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return {RESULTS_JSON: text.encode(), ARRAYS_NPZ: arrays}


def load_result(folder: Path) -> SavedResult:
    folder = Path(folder)
    path = folder / RESULTS_JSON
    if not path.is_file():
        raise ResultsError("no results here", path=path,
                           hint="run the experiment first with `lora-site run`")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        config = experiment_from_mapping(doc["config"], source=path, prefix="config.")
        return SavedResult(name=doc["name"], config=config, metrics=doc["metrics"],
                           provenance=doc["provenance"], arrays_sha256=doc["arrays_sha256"],
                           path=folder)
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"cannot read results ({type(exc).__name__}: {exc})", path=path,
                           hint="delete it and re-run with `lora-site run --force`") from None
