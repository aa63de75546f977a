"""Run by tests/test_numerics.py in a fresh interpreter: pin the numerics (as every lora-site
process does first), re-run the main experiment and a slice of the claims audit, and print, as
JSON, how they compare with the committed freeze bit for bit.

The slice is the first SEEDS seeds of the default setting's three run sets (LoRA on W_Q, its
LoRA-on-W_K and full fine-tuning partners); a batch of fewer seeds gives each run the same bits
as the full audit's batch (the engine trains runs independently).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from generator.core import numerics

ENV = numerics.pin()

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FREEZE = REPO / "content" / "_freeze"
SEEDS = 24


def main() -> dict:
    from generator.science.audit import DEFAULT, NPZ_STATS, canonical, run_sets, train_run_sets
    from generator.science.config import ExperimentConfig
    from generator.science.experiment import run_experiment
    from generator.core.fsio import load_npz, npz_bytes, sha256_bytes

    out: dict = {"capability": torch.backends.cpu.get_cpu_capability(), "holds": ENV.holds,
                 "why_not": list(ENV.why_not), "numerics": numerics.in_use()}
    result = run_experiment(ExperimentConfig())
    frozen_doc = json.loads((FREEZE / "main" / "results.json").read_text(encoding="utf-8"))
    out["main_arrays_sha256"] = sha256_bytes(npz_bytes(result.arrays))
    out["frozen_arrays_sha256"] = frozen_doc["arrays_sha256"]
    out["main_metrics_equal"] = json.loads(json.dumps(result.metrics)) == frozen_doc["metrics"]

    frozen = load_npz(FREEZE / "audit" / "audit.npz")
    differ = {}
    for role, rs in run_sets(DEFAULT).items():
        rs = canonical(rs)
        # As the audit trains them: the main runs with their held-out sequences.
        stats = train_run_sets([rs], list(range(SEEDS)),
                               heldout=[rs] if role == "main" else ())[rs]
        for name in NPZ_STATS:
            if name not in stats:
                continue        # held-out statistics: main runs only
            value = stats[name]
            value = value.astype(np.float32) if value.dtype.kind == "f" else value
            want = frozen[f"default__{role}__{name}"][:SEEDS]
            if value.dtype != want.dtype or not np.array_equal(value, want, equal_nan=True):
                diff = np.abs(value.astype(np.float64) - want.astype(np.float64))
                differ[f"default__{role}__{name}"] = float(np.nanmax(diff)) if diff.size else 0.0
    out["audit_slice_values"] = sum(frozen[f"default__{r}__{n}"][:SEEDS].size
                                    for r in run_sets(DEFAULT) for n in NPZ_STATS
                                    if f"default__{r}__{n}" in frozen)
    out["audit_slice_differ"] = differ
    return out


if __name__ == "__main__":
    print(json.dumps(main(), sort_keys=True))
    sys.stdout.flush()
