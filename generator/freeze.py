"""What a result depends on, and whether the frozen copy in content/_freeze is still fresh.

A result is keyed by its *inputs*: the experiment config, the source of every project module the
experiment imports (found statically, so a change to generator/lora.py re-runs), the torch and
numpy versions and the thread count. content/_freeze/manifest.json records, per experiment, those
inputs and the sha256 of results.json and arrays.npz (and, under "figures", the same for the
frozen figures); comparing the recorded inputs with the current ones says not only *that* a
result is stale but *which* input changed.

Standard library only at import time: checking freshness must never load torch or numpy.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import numerics
from .errors import ResultsError
from .filehash import sha256_file
from .fsio import sha256_bytes, write_bytes_atomic

MANIFEST = "manifest.json"
# Bump when the meaning of the recorded inputs changes: every result becomes stale once.
KEY_FORMAT = 1
# The modules the two cached stages start from; what they import is found by walking the source.
RUN_ROOT = "experiment"
FIGURES_ROOT = "figures"
RUN_LIBRARIES = ("torch", "numpy")
FIGURE_LIBRARIES = ("matplotlib", "numpy", "pillow")
PACKAGE = "generator"


def package_dir() -> Path:
    """The folder of the generator package that is running (its sources are what ran)."""
    return Path(__file__).resolve().parent


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest(inputs: dict[str, Any]) -> str:
    """One hash of a mapping of inputs, independent of key order."""
    return sha256_text(json.dumps(inputs, sort_keys=True, separators=(",", ":")))


# ---------------------------------------------------------------------------------------------
# Which project modules a module imports

_FROM = re.compile(r"^[ \t]*from[ \t]+(\.+|generator\b)[ \t]*([\w.]*)[ \t]+import[ \t]+"
                   r"(\([^)]*\)|[^\n#;]*)", re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n#;]*)", re.M)


def _imported_modules(source: str) -> set[str]:
    """generator.* module names that a module's source imports, at any depth in the file.

    A line scan rather than a parse: parsing every module on every build costs more than the
    rest of the cache check. It can only err one way: an import statement quoted inside a string
    counts too, which re-runs more often, never less."""
    found: set[str] = set()
    for dots, module, names in _FROM.findall(source):
        if dots.startswith(".") and len(dots) > 1:
            continue                # no sub-packages: nothing lives above the package
        rest = [p for p in module.lstrip(".").split(".") if p]
        if rest:
            found.add(rest[0])
        else:
            # `from . import lora, config` / `from generator import (a, b)`: names are modules
            for name in re.sub(r"#[^\n]*", "", names).strip("() \t\n").split(","):
                name = name.split(" as ")[0].strip(" \t\n\\")
                if name.isidentifier():
                    found.add(name)
    for names in _IMPORT.findall(source):
        for item in names.split(","):
            parts = item.split(" as ")[0].strip().split(".")
            if parts[0] == PACKAGE and len(parts) > 1:
                found.add(parts[1])
    return found


def module_closure(root: str, pkg_dir: Path | None = None) -> list[str]:
    """Paths (relative to the project, e.g. 'generator/lora.py') of ``root`` and every project
    module it imports, transitively, sorted.

    Imports inside functions count too (the package imports heavy things lazily). The package's
    __init__ only holds the version string; counting it would re-train on every release.
    """
    pkg_dir = pkg_dir or package_dir()
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen or name == "__init__":
            continue
        path = pkg_dir / f"{name}.py"
        if not path.is_file():
            continue                # a name imported from the package itself, not a module
        seen.add(name)
        todo.extend(_imported_modules(path.read_text(encoding="utf-8")))
    return [f"{PACKAGE}/{name}.py" for name in sorted(seen)]


def source_hashes(root: str, pkg_dir: Path | None = None) -> dict[str, str]:
    pkg_dir = pkg_dir or package_dir()
    return {rel: sha256_file(pkg_dir / Path(rel).name) for rel in module_closure(root, pkg_dir)}


# ---------------------------------------------------------------------------------------------
# Library versions, without importing the libraries

_DIST_INFO = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.(dist-info|egg-info)$")
_listing_cache: dict[str, list[str]] = {}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _listing(entry: str) -> list[str]:
    listing = _listing_cache.get(entry)
    if listing is None:
        try:
            listing = sorted(os.listdir(entry))
        except OSError:
            listing = []
        _listing_cache[entry] = listing
    return listing


def installed_distributions() -> list[str]:
    """Every 'name-version' installed on sys.path: one cheap stand-in for all library versions."""
    out = set()
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            for item in _listing(entry):
                m = _DIST_INFO.match(item)
                if m:
                    out.add(f"{_normalise(m['name'])}-{m['version']}")
    return sorted(out)


def installed_version(name: str) -> str | None:
    """The installed version of a distribution, read from its dist-info folder name.

    Reading metadata this way costs a directory listing; importlib.metadata costs ~0.1 s of
    imports and torch itself seconds. Falls back to importlib.metadata for unusual layouts.
    """
    want = _normalise(name)
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        for item in _listing(entry):
            m = _DIST_INFO.match(item)
            if m and _normalise(m["name"]) == want:
                return m["version"]
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:       # PackageNotFoundError, or a broken install: report it as absent
        return None


def pinned_version(name: str, lock: Path) -> str | None:
    """The `name==version` pin in a requirements lock, if any."""
    try:
        text = lock.read_text(encoding="utf-8")
    except OSError:
        return None
    want = _normalise(name)
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            pkg, _, version = line.partition("==")
            if _normalise(pkg.split("[")[0].strip()) == want:
                return version.split(";")[0].strip()
    return None


def library_versions(names: tuple[str, ...], lock: Path | None = None) -> dict[str, str]:
    """name -> version. A library that is not installed (torch on a publishing machine) is
    represented by its pin in requirements.lock as 'pinned:<version>', else 'absent'."""
    out = {}
    for name in names:
        version = installed_version(name)
        if version is None:
            pin = pinned_version(name, lock) if lock else None
            version = f"pinned:{pin}" if pin else "absent"
        out[name] = version
    return out


# ---------------------------------------------------------------------------------------------
# Inputs of the two cached stages

def run_inputs(cfg, *, lock: Path | None = None, pkg_dir: Path | None = None) -> dict[str, Any]:
    """Everything that decides one experiment's results (see the module docstring)."""
    inputs: dict[str, Any] = {"key-format": KEY_FORMAT, "config": cfg.to_dict(),
                              "threads": cfg.threads, "numerics": numerics.key()}
    for rel, sha in source_hashes(RUN_ROOT, pkg_dir).items():
        inputs[rel] = sha
    for name, version in library_versions(RUN_LIBRARIES, lock).items():
        inputs[name] = version
    return inputs


def figure_inputs(cfg, arrays_sha256: str, *, lock: Path | None = None,
                  pkg_dir: Path | None = None) -> dict[str, Any]:
    """Everything that decides the figure PNGs: the arrays (by hash), the config (titles and the
    outlined cell use query and key), the plotting source and the plotting libraries."""
    inputs: dict[str, Any] = {"key-format": KEY_FORMAT, "arrays": arrays_sha256,
                              "config": cfg.to_dict(), "numerics": numerics.key()}
    for rel, sha in source_hashes(FIGURES_ROOT, pkg_dir).items():
        inputs[rel] = sha
    for name, version in library_versions(FIGURE_LIBRARIES, lock).items():
        inputs[name] = version
    return inputs


def _versions_match(recorded: Any, current: Any) -> bool:
    if recorded == current:
        return True
    # Without the library installed we can only hold the recorded version to the lock's pin;
    # a local build label such as '+cpu' is not part of the pin.
    if isinstance(current, str) and current.startswith("pinned:") and isinstance(recorded, str):
        return recorded.split("+", 1)[0] == current[len("pinned:"):]
    return False


def changed_inputs(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Human-readable reasons why ``current`` differs from ``recorded``; empty when equal."""
    if recorded is None:
        return ["no record of a previous run"]
    reasons = []
    for name in sorted(set(recorded) | set(current)):
        old, new = recorded.get(name), current.get(name)
        if name in (*RUN_LIBRARIES, *FIGURE_LIBRARIES):
            if not _versions_match(old, new):
                reasons.append(f"{name} {old or 'absent'} -> {new or 'absent'}")
        elif old == new:
            continue
        elif name == "config" and isinstance(old, dict) and isinstance(new, dict):
            fields = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            reasons.append("config " + ", ".join(
                f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in fields))
        elif name == "numerics":
            reasons.append(f"numerics {_numerics_text(old)} -> {_numerics_text(new)}")
        elif name.endswith(".py"):
            what = "added" if old is None else "removed" if new is None else "changed"
            reasons.append(f"{name} {what}")
        else:
            reasons.append(f"{name} {old!r} -> {new!r}")
    return reasons


def _numerics_text(value: Any) -> str:
    if value is None:
        return "unrecorded"
    if isinstance(value, dict):
        return f"pinned {value.get('profile', '?')}"
    return str(value)


# ---------------------------------------------------------------------------------------------
# The freeze manifest

@dataclass
class Manifest:
    """content/_freeze/manifest.json: experiment -> {key, inputs, files: {name: sha256}}."""

    path: Path
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, freeze_dir: Path) -> "Manifest":
        path = Path(freeze_dir) / MANIFEST
        if not path.is_file():
            return cls(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            experiments = doc["experiments"]
            if not isinstance(experiments, dict):
                raise TypeError("experiments is not a mapping")
        except (ValueError, KeyError, TypeError) as exc:
            raise ResultsError(f"cannot read the freeze manifest ({exc})", path=path,
                               hint="delete it and rebuild with torch installed to re-freeze"
                               ) from None
        return cls(path, experiments)

    def text(self) -> str:
        doc = {"format": KEY_FORMAT, "experiments": self.experiments}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    def write(self) -> None:
        data = self.text().encode("utf-8")
        try:
            if self.path.read_bytes() == data:
                return              # unchanged: leave the committed file (and its mtime) alone
        except OSError:
            pass
        write_bytes_atomic(self.path, data)

    def record(self, name: str, inputs: dict[str, Any], folder: Path) -> None:
        """Remember the inputs that produced folder's results, and the files' hashes."""
        figures = self.experiments.get(name, {}).get("figures")
        self.experiments[name] = {
            "key": digest(inputs),
            "inputs": inputs,
            "files": {f: sha256_file(Path(folder) / f) for f in FROZEN_FILES},
        }
        if figures is not None:
            # Kept: its own inputs (the arrays' hash among them) say whether it is still valid.
            self.experiments[name]["figures"] = figures

    def record_figures(self, name: str, inputs: dict[str, Any], images: dict[str, bytes]) -> None:
        entry = self.experiments.setdefault(name, {})
        entry["figures"] = {"key": digest(inputs), "inputs": inputs,
                            "files": {f: sha256_bytes(images[f]) for f in sorted(images)}}


FROZEN_FILES = ("arrays.npz", "results.json")
FIGURES_DIR = "figures"


def load_frozen_figures(name: str, inputs: dict[str, Any], manifest: Manifest,
                        freeze_dir: Path) -> tuple[dict[str, bytes] | None, list[str]]:
    """The figures frozen in content/_freeze/<name>/figures when the manifest records exactly
    ``inputs`` for them and every file is intact; else (None, reasons)."""
    entry = manifest.experiments.get(name, {}).get("figures")
    if not entry:
        return None, ["no frozen figures"]
    reasons = changed_inputs(entry.get("inputs"), inputs)
    if reasons:
        return None, reasons
    folder = Path(freeze_dir) / name / FIGURES_DIR
    images = {}
    for filename, want in sorted(entry.get("files", {}).items()):
        try:
            data = (folder / filename).read_bytes()
        except OSError:
            return None, [f"{FIGURES_DIR}/{filename} is missing"]
        if sha256_bytes(data) != want:
            return None, [f"{FIGURES_DIR}/{filename} was edited or truncated"]
        images[filename] = data
    return images, []


def store_frozen_figures(name: str, images: dict[str, bytes], freeze_dir: Path) -> None:
    """Write the figures beside the results; files no longer drawn are removed."""
    folder = Path(freeze_dir) / name / FIGURES_DIR
    for filename in sorted(images):
        path = folder / filename
        if not path.is_file() or path.read_bytes() != images[filename]:
            write_bytes_atomic(path, images[filename])
    for old in sorted(folder.iterdir()):
        if old.name not in images and old.is_file():
            old.unlink()


@dataclass(frozen=True)
class Freshness:
    fresh: bool
    reasons: list[str]          # why it is stale (empty when fresh)
    bad_file: Path | None = None  # a frozen file whose bytes do not match the manifest
    key: str = ""


def check(name: str, inputs: dict[str, Any], manifest: Manifest, freeze_dir: Path) -> Freshness:
    """Is content/_freeze/<name> a faithful result of ``inputs``?"""
    key = digest(inputs)
    folder = Path(freeze_dir) / name
    if not (folder / "results.json").is_file():
        return Freshness(False, ["no frozen results"], key=key)
    entry = manifest.experiments.get(name)
    if entry is None:
        return Freshness(False, ["not recorded in content/_freeze/manifest.json"], key=key)
    for filename in FROZEN_FILES:
        path = folder / filename
        want = entry.get("files", {}).get(filename)
        if not path.is_file():
            return Freshness(False, [f"{filename} is missing"], path, key)
        if sha256_file(path) != want:
            return Freshness(False, [f"{filename} was edited or truncated (sha256 differs from "
                                     "the manifest)"], path, key)
    reasons = changed_inputs(entry.get("inputs"), inputs)
    return Freshness(not reasons, reasons, key=key)


# ---------------------------------------------------------------------------------------------
# verify: re-run and compare with the frozen results

ATOL = 1e-6
RTOL = 1e-6


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


def verify(project, *, atol: float = ATOL, rtol: float = RTOL,
           progress_factory=None) -> dict[str, dict[str, Any]]:
    """Re-run every declared experiment, and the claims audit when a post reads it, and compare
    each with content/_freeze.

    Returns name -> {"differences": [...], "notes": [...], "match": "bit-exact" | "within
    tolerance" | None, "max_diff": float}; any difference means the frozen results are not
    what the code produces now. Writes nothing.
    """
    from .experiment import run_experiment
    from .pipeline import declared_experiments, reads_audit
    from .results import load_result

    manifest = Manifest.read(project.freeze)
    lock = project.root / "requirements.lock"
    report: dict[str, dict[str, Any]] = {}
    for name, cfg in declared_experiments(project).items():
        diffs: list[str] = []
        notes: list[str] = []
        entry: dict[str, Any] = {"differences": diffs, "notes": notes, "match": None,
                                 "max_diff": None}
        report[name] = entry
        state = check(name, run_inputs(cfg, lock=lock), manifest, project.freeze)
        if not state.fresh:
            notes.append("the freeze is stale: " + "; ".join(state.reasons))
        try:
            saved = load_result(project.freeze / name)
            frozen_arrays = saved.arrays()
        except ResultsError as exc:
            diffs.append(f"cannot read the frozen results: {exc.message}")
            continue
        if saved.config != cfg:
            diffs.extend(changed_inputs({"config": saved.config.to_dict()},
                                        {"config": cfg.to_dict()}))
            continue
        if progress_factory is None:
            result = run_experiment(cfg)
        else:
            with progress_factory(name, cfg) as progress:
                result = run_experiment(cfg, progress=progress)
        # Through JSON, as saved: numpy scalars become plain numbers, tuples lists.
        fresh_metrics = json.loads(json.dumps(result.metrics))
        diffs.extend(compare_values(fresh_metrics, saved.metrics, "metrics", atol, rtol))
        diffs.extend(compare_arrays(result.arrays, frozen_arrays, atol, rtol))
        worst = max(max_abs_difference(fresh_metrics, saved.metrics),
                    max_array_difference(result.arrays, frozen_arrays))
        _classify(entry, worst, exact=fresh_metrics == saved.metrics
                  and _arrays_equal(result.arrays, frozen_arrays))
    if reads_audit(project):
        report["audit"] = _verify_audit(project, atol, rtol)
    return report


def _arrays_equal(fresh: dict, frozen: dict) -> bool:
    import numpy as np

    return sorted(fresh) == sorted(frozen) and all(
        fresh[k].dtype == frozen[k].dtype and fresh[k].shape == frozen[k].shape
        and np.array_equal(fresh[k], frozen[k], equal_nan=fresh[k].dtype.kind in "fc")
        for k in fresh)


def _classify(entry: dict[str, Any], worst: float, *, exact: bool) -> None:
    entry["max_diff"] = worst
    if not entry["differences"]:
        entry["match"] = "bit-exact" if exact else "within tolerance"


def _verify_audit(project, atol: float, rtol: float) -> dict[str, Any]:
    """The claims audit re-computed with the build's settings, against content/_freeze/audit."""
    import io

    import numpy as np

    from . import audit_site
    from .audit import audit_json_bytes, run_audit
    from .fsio import load_npz, npz_bytes

    diffs: list[str] = []
    notes: list[str] = []
    entry: dict[str, Any] = {"differences": diffs, "notes": notes, "match": None,
                             "max_diff": None}
    folder = audit_site.audit_dir(project)
    reasons, _ = audit_site._stale_reasons(project, False)
    if reasons:
        notes.append("the freeze is stale: " + "; ".join(reasons))
    result = run_audit(audit_site.BUILD_SEEDS, sweeps=audit_site.BUILD_SWEEPS,
                       device=audit_site.BUILD_DEVICE, threads=audit_site.BUILD_THREADS)
    files = {audit_site.AUDIT_JSON: audit_json_bytes(result),
             audit_site.AUDIT_NPZ: npz_bytes(result.arrays)}
    found = audit_site.compare_audit_files(files, folder, atol, rtol)
    if found is None:
        diffs.append("cannot read the frozen audit, or it was computed with other settings")
        return entry
    diffs.extend(found[0])
    frozen_json = json.loads((folder / audit_site.AUDIT_JSON).read_text(encoding="utf-8"))
    fresh_json = json.loads(files[audit_site.AUDIT_JSON].decode("utf-8"))
    frozen_json.pop("numerics", None)
    fresh_json.pop("numerics", None)
    with np.load(io.BytesIO(files[audit_site.AUDIT_NPZ]), allow_pickle=False) as npz:
        fresh_arrays = {k: npz[k] for k in npz.files}
    _classify(entry, found[1], exact=fresh_json == frozen_json
              and _arrays_equal(fresh_arrays, load_npz(folder / audit_site.AUDIT_NPZ)))
    return entry


def record_run(project, name: str, cfg) -> None:
    """Record in the manifest that content/_freeze/<name> was just produced from cfg."""
    manifest = Manifest.read(project.freeze)
    manifest.record(name, run_inputs(cfg, lock=project.root / "requirements.lock"),
                    project.freeze / name)
    manifest.write()


# ---------------------------------------------------------------------------------------------
# Settling a re-run against the freeze: never rewrite committed bytes with rounding noise
#
# Where the numeric pins hold (numerics.py) a re-run with the same inputs reproduces the frozen
# bytes exactly. Where they cannot (another architecture, no AVX2, the native opt-out) it may
# differ in the last bits. The rule: a re-run whose every number matches the frozen result
# within verify's default tolerance keeps the committed bytes (and says so under --explain); a
# larger difference replaces them and is reported; --refreeze always replaces them.

@dataclass(frozen=True)
class Settled:
    outcome: str                # "new", "identical", "within", "differs" or "refreeze"
    write: bool                 # whether the fresh files replace the frozen ones
    detail: str = ""            # one clause for --explain ('identical to the frozen results')

    @property
    def reported(self) -> bool:
        """A difference the user must hear about even without --explain."""
        return self.outcome == "differs"


# compare(fresh files, frozen folder) -> (differences, max |diff|), or None when the frozen
# result cannot be compared (missing, damaged, or made from other settings).
Comparison = tuple[list[str], float]


def settle(folder: Path, files: dict[str, bytes], compare, *, refreeze: bool = False,
           atol: float = ATOL, rtol: float = RTOL) -> Settled:
    """Decide whether freshly computed ``files`` replace the result frozen in ``folder``."""
    folder = Path(folder)
    if refreeze:
        return Settled("refreeze", True, "--refreeze: written whatever the frozen bytes")
    try:
        same = all((folder / name).read_bytes() == data for name, data in files.items())
    except OSError:
        same = False
    if same:
        return Settled("identical", False, "identical to the frozen results")
    found = compare(files, folder, atol, rtol)
    if found is None:
        return Settled("new", True, "")
    diffs, worst = found
    if not diffs and worst == 0:
        return Settled("within", False, "every number identical to the frozen results (the "
                       "provenance differs): kept the committed bytes")
    if not diffs:
        return Settled("within", False,
                       f"matches the frozen results within atol={atol:g}, rtol={rtol:g} "
                       f"(max |diff| {worst:.3g}): kept the committed bytes")
    shown = "; ".join(diffs[:2]) + (f"; and {len(diffs) - 2} more" if len(diffs) > 2 else "")
    return Settled("differs", True,
                   f"differs from the frozen results beyond atol={atol:g}, rtol={rtol:g} "
                   f"({len(diffs)} difference(s): {shown}): rewrote {folder}")


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


def compare_result_files(files: dict[str, bytes], folder: Path, atol: float,
                         rtol: float) -> Comparison | None:
    """An experiment's fresh results.json + arrays.npz against the frozen ones in ``folder``:
    metrics and arrays within tolerance. None when the frozen result is unreadable or was
    computed from other settings (then there is nothing to keep)."""
    import io

    import numpy as np

    from .results import ARRAYS_NPZ, RESULTS_JSON, load_result

    try:
        saved = load_result(folder)
        frozen_arrays = saved.arrays()
    except ResultsError:
        return None
    doc = json.loads(files[RESULTS_JSON].decode("utf-8"))
    if doc.get("config") != saved.config.to_dict():
        return None
    with np.load(io.BytesIO(files[ARRAYS_NPZ]), allow_pickle=False) as npz:
        fresh_arrays = {k: npz[k] for k in npz.files}
    diffs = compare_values(doc.get("metrics"), saved.metrics, "metrics", atol, rtol)
    diffs += compare_arrays(fresh_arrays, frozen_arrays, atol, rtol)
    worst = max(max_abs_difference(doc.get("metrics"), saved.metrics),
                max_array_difference(fresh_arrays, frozen_arrays))
    return diffs, worst
