"""Comparing a re-run with a frozen result: numbers within tolerance, and the largest difference.

A value passes when |re-run - frozen| <= atol + rtol * |frozen|. Used by verify and by the rule
that a re-run matching the freeze within tolerance keeps the committed bytes (stages.store).
numpy is imported only by the array functions.
"""
from __future__ import annotations

from typing import Any

ATOL = 1e-6
RTOL = 1e-6
# (differences found, largest |re-run - frozen| over every number compared)
Comparison = tuple[list[str], float]


def _close(a: float, b: float, atol: float, rtol: float) -> bool:
    if a != a and b != b:           # NaN in both: the same outcome
        return True
    return abs(a - b) <= atol + rtol * abs(b)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def compare_values(fresh: Any, frozen: Any, where: str, atol: float, rtol: float) -> list[str]:
    """Differences between two JSON-like values (numbers within tolerance)."""
    if _is_number(fresh) and _is_number(frozen):
        if _close(float(fresh), float(frozen), atol, rtol):
            return []
        return [f"{where}: {fresh!r} (re-run) != {frozen!r} (frozen), "
                f"|diff| {abs(float(fresh) - float(frozen)):.3g}"]
    if isinstance(fresh, dict) and isinstance(frozen, dict):
        out = []
        for k in sorted(set(fresh) | set(frozen), key=str):
            if k not in frozen:
                out.append(f"{where}.{k}: only in the re-run")
            elif k not in fresh:
                out.append(f"{where}.{k}: only in the frozen results")
            else:
                out.extend(compare_values(fresh[k], frozen[k], f"{where}.{k}", atol, rtol))
        return out
    if isinstance(fresh, (list, tuple)) and isinstance(frozen, (list, tuple)):
        if len(fresh) != len(frozen):
            return [f"{where}: length {len(fresh)} (re-run) != {len(frozen)} (frozen)"]
        out = []
        for i, (a, b) in enumerate(zip(fresh, frozen)):
            out.extend(compare_values(a, b, f"{where}[{i}]", atol, rtol))
        return out
    return [] if fresh == frozen else [f"{where}: {fresh!r} (re-run) != {frozen!r} (frozen)"]


def compare_arrays(fresh: dict, frozen: dict, atol: float, rtol: float) -> list[str]:
    import numpy as np

    out = []
    for name in sorted(set(fresh) | set(frozen)):
        if name not in frozen:
            out.append(f"arrays.{name}: only in the re-run")
            continue
        if name not in fresh:
            out.append(f"arrays.{name}: only in the frozen results")
            continue
        a, b = np.asarray(fresh[name]), np.asarray(frozen[name])
        if a.shape != b.shape:
            out.append(f"arrays.{name}: shape {a.shape} (re-run) != {b.shape} (frozen)")
            continue
        if a.dtype != b.dtype:
            out.append(f"arrays.{name}: dtype {a.dtype} (re-run) != {b.dtype} (frozen)")
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        bad = ~np.isclose(a64, b64, atol=atol, rtol=rtol, equal_nan=True)
        if bad.any():
            diff = np.where(bad, np.abs(a64 - b64), -np.inf)
            worst = np.unravel_index(int(np.nanargmax(diff)), a.shape) if a.ndim else ()
            out.append(f"arrays.{name}: {int(bad.sum())} of {a.size} values differ, max |diff| "
                       f"{float(np.abs(a64 - b64)[bad].max()):.3g} at {list(map(int, worst))}")
    return out


def max_abs_difference(fresh: Any, frozen: Any) -> float:
    """The largest |fresh - frozen| over the numbers two JSON-like values share (0 if none)."""
    if _is_number(fresh) and _is_number(frozen):
        a, b = float(fresh), float(frozen)
        return 0.0 if (a != a and b != b) or a == b else abs(a - b)
    if isinstance(fresh, dict) and isinstance(frozen, dict):
        return max([max_abs_difference(fresh[k], frozen[k]) for k in fresh if k in frozen],
                   default=0.0)
    if isinstance(fresh, (list, tuple)) and isinstance(frozen, (list, tuple)):
        return max([max_abs_difference(a, b) for a, b in zip(fresh, frozen)], default=0.0)
    return 0.0


def max_array_difference(fresh: dict, frozen: dict) -> float:
    import numpy as np

    worst = 0.0
    for name in sorted(set(fresh) & set(frozen)):
        a, b = np.asarray(fresh[name]), np.asarray(frozen[name])
        if a.shape != b.shape or a.size == 0:
            continue
        with np.errstate(invalid="ignore"):
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        d = d[np.isfinite(d)]
        if d.size:
            worst = max(worst, float(d.max()))
    return worst


def arrays_equal(fresh: dict, frozen: dict) -> bool:
    """Every array bit for bit the same (NaN equal to NaN), same names, shapes and dtypes."""
    import numpy as np

    return sorted(fresh) == sorted(frozen) and all(
        fresh[k].dtype == frozen[k].dtype and fresh[k].shape == frozen[k].shape
        and np.array_equal(fresh[k], frozen[k], equal_nan=fresh[k].dtype.kind in "fc")
        for k in fresh)


def npz_from_bytes(data: bytes) -> dict:
    """The arrays of an .npz held in memory (allow_pickle=False)."""
    import io

    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
