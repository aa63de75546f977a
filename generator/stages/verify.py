"""verify: re-compute every declared experiment and compare it with content/_freeze.

Writes nothing. For each experiment: the differences beyond tolerance (any one fails), notes
(a stale freeze), and how it matched: "bit-exact" (every number identical; the provenance may
differ) or "within tolerance", with the largest difference.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.compare import ATOL, RTOL
from ..core.context import BuildContext
from ..core.errors import ResultsError
from ..core.keys import changed_inputs
from ..kinds.base import Declared
from .run import StageOptions, compute_here, run_inputs, store_of, upstream_results


def verify(ctx: BuildContext, declared: Mapping[str, Declared], *, atol: float = ATOL,
           rtol: float = RTOL, opts: StageOptions = StageOptions()) -> dict[str, dict[str, Any]]:
    """name -> {"differences": [...], "notes": [...], "match": "bit-exact" | "within
    tolerance" | None, "max_diff": float | None}."""
    store = store_of(ctx)
    report: dict[str, dict[str, Any]] = {}
    for name in sorted(declared):
        d = declared[name]
        entry: dict[str, Any] = {"differences": [], "notes": [], "match": None, "max_diff": None}
        report[name] = entry
        state = store.check(name, d.kind, run_inputs(ctx, d))
        if not state.fresh:
            entry["notes"].append("the freeze is stale: " + "; ".join(state.reasons))
        folder = store.folder(name)
        try:
            loaded = d.kind.load(folder, name)
            d.kind.check(loaded)
        except ResultsError as exc:
            entry["differences"].append(f"cannot read the frozen results: {exc.message}")
            continue
        frozen_settings = d.kind.settings_of(loaded)
        if frozen_settings is not None and frozen_settings != d.settings:
            entry["differences"].extend(changed_inputs(
                {"config": d.kind.settings_dict(frozen_settings)},
                {"config": d.kind.settings_dict(d.settings)}))
            continue
        # What it reads comes from the freeze: verify checks each result from the frozen
        # inputs, so one stale result does not fail every experiment downstream of it.
        files = (compute_here(d, opts, upstream_results(ctx, d)) if d.upstream
                 else compute_here(d, opts))
        found = d.kind.compare(files, folder, atol, rtol)
        if found is None:
            entry["differences"].append("the frozen results cannot be compared: they are "
                                        "damaged or were computed with other settings")
            continue
        entry["differences"].extend(found[0])
        entry["max_diff"] = found[1]
        if not found[0]:
            entry["match"] = "bit-exact" if d.kind.exact(files, folder) else "within tolerance"
    return report
