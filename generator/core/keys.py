"""Cache keys: what a cached result depends on, and which of those inputs changed.

A stage's result is keyed by its *inputs* (``stage_inputs``): the settings, the source of every
package module the computation imports (found by reading the imports, so an edit to
generator/science/lora.py re-trains), the versions of the libraries it uses and the numeric
pins (core.numerics). Comparing the recorded inputs with the current ones says not only *that*
a result is stale but *which* input changed (``changed_inputs``), as doit collects the reasons a
task runs.

Standard library only: checking freshness must never load torch, numpy or matplotlib.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from . import numerics

PACKAGE = "generator"
# Bump when the meaning of the recorded inputs changes: every result becomes stale once.
KEY_FORMAT = 2


def package_dir() -> Path:
    """The folder of the generator package that is running (its sources are what ran)."""
    return Path(__file__).resolve().parent.parent


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest(inputs: Any) -> str:
    """One hash of a JSON-able value, independent of key order."""
    return sha256_text(json.dumps(inputs, sort_keys=True, separators=(",", ":")))


# ---------------------------------------------------------------------------------------------
# Which package modules a module imports

_FROM = re.compile(r"^[ \t]*from[ \t]+(\.+|generator\b)[ \t]*([\w.]*)[ \t]+import[ \t]+"
                   r"(\([^)]*\)|[^\n#;]*)", re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n#;]*)", re.M)


def _module_file(pkg_dir: str, dotted: str) -> tuple[str, os.stat_result] | None:
    """The file of package module ``dotted`` ('science.lora' -> science/lora.py, 'kinds' ->
    kinds/__init__.py) and its stat, or None. Strings, not pathlib: every build's freshness
    checks look up a few hundred candidates."""
    if not dotted:
        return None
    base = os.path.join(pkg_dir, *dotted.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            return candidate, st
    return None


def _resolve(current: str, is_package: bool, dots: int, module: str) -> str | None:
    """The dotted name (relative to the package) that ``from <dots><module> import`` names in
    module ``current``; None above the package."""
    parts = current.split(".") if current else []
    package = parts if is_package else parts[:-1]
    if dots - 1 > len(package):
        return None
    base = package[:len(package) - (dots - 1)]
    return ".".join(base + ([module] if module else []))


def imported_modules(source: str, current: str, is_package: bool = False) -> set[str]:
    """Dotted names (relative to the package) of the package modules a module's source imports,
    at any depth in the file (imports inside functions count: heavy imports are lazy here).

    A line scan rather than a parse: it runs on every build's freshness check. It can only err
    one way: an import statement quoted inside a string counts too, which re-runs more often,
    never less. Names that may be submodules (``from . import lora``) are returned as
    candidates; ``module_closure`` keeps those that are files."""
    found: set[str] = set()
    for dots, module, names in _FROM.findall(source):
        if dots == PACKAGE:
            target = module.lstrip(".")
        else:
            target = _resolve(current, is_package, len(dots), module)
            if target is None:
                continue
        if target:
            found.add(target)
        for name in re.sub(r"#[^\n]*", "", names).strip("() \t\n").split(","):
            name = name.split(" as ")[0].strip(" \t\n\\")
            if name.isidentifier():
                found.add(f"{target}.{name}" if target else name)
    for names in _IMPORT.findall(source):
        for item in names.split(","):
            parts = item.split(" as ")[0].strip().split(".")
            if parts[0] == PACKAGE and len(parts) > 1:
                found.add(".".join(parts[1:]))
    return found


def module_closure(roots: Iterable[str], pkg_dir: Path | None = None,
                   memo: dict | None = None) -> list[str]:
    """Paths (relative to the project, e.g. 'generator/science/lora.py') of the modules
    ``roots`` (dotted, e.g. 'science.experiment') and of every package module they import,
    transitively, with the __init__ of every subpackage they live in (Python runs it first),
    sorted. The package's own __init__ only holds the version string and the layer list;
    counting it would re-train on every release. memo: a dict kept by the caller (the build
    context) in which each file's imports are remembered while its stat is unchanged, so the
    closures of several stages read each source once."""
    pkg_dir = str(pkg_dir or package_dir())
    memo = {} if memo is None else memo
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        found = _module_file(pkg_dir, name)
        if found is None:
            continue                # an attribute imported from a module, not a module
        path, st = found
        seen[name] = path
        stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        known = memo.get((path, name))
        if known is None or known[0] != stamp:
            with open(path, encoding="utf-8") as fh:
                source = fh.read()
            known = (stamp, imported_modules(source, name, path.endswith("__init__.py")))
            memo[(path, name)] = known
        todo.extend(known[1])
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)
    return sorted(f"{PACKAGE}/" + os.path.relpath(p, pkg_dir).replace(os.sep, "/")
                  for p in seen.values())


def source_hashes(roots: Iterable[str], sha256: Callable[[Path], str],
                  pkg_dir: Path | None = None, memo: dict | None = None) -> dict[str, str]:
    pkg_dir = pkg_dir or package_dir()
    return {rel: sha256(pkg_dir / rel.split("/", 1)[1])
            for rel in module_closure(roots, pkg_dir, memo)}


# ---------------------------------------------------------------------------------------------
# Library versions, without importing the libraries

_DIST_INFO = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.(dist-info|egg-info)$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@functools.lru_cache(maxsize=None)
def _listing(entry: str) -> tuple[str, ...]:
    # What is installed does not change while a process runs.
    try:
        return tuple(sorted(os.listdir(entry)))
    except OSError:
        return ()


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
    """The installed version of a distribution, read from its dist-info folder name (a
    directory listing; importlib.metadata costs a tenth of a second of imports, torch seconds).
    Falls back to importlib.metadata for unusual layouts."""
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
    except (OSError, UnicodeDecodeError):
        return None
    want = _normalise(name)
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            pkg, _, version = line.partition("==")
            if _normalise(pkg.split("[")[0].strip()) == want:
                return version.split(";")[0].strip()
    return None


def library_versions(names: Iterable[str], lock: Path | None = None) -> dict[str, str]:
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
# The inputs of a cached stage, and what changed

def stage_inputs(*, settings: dict[str, Any], roots: Iterable[str], libraries: Iterable[str],
                 sha256: Callable[[Path], str], lock: Path | None,
                 extra: dict[str, Any] | None = None, memo: dict | None = None
                 ) -> dict[str, Any]:
    """Everything that decides a stage's output: the settings (under "config"), the source
    closure of ``roots``, the library versions, the numeric pins, and ``extra`` (for the
    figures stage: the hash of the results they are drawn from)."""
    inputs: dict[str, Any] = {"key-format": KEY_FORMAT, "config": settings,
                              "numerics": numerics.key()}
    if "threads" in settings:
        inputs["threads"] = settings["threads"]
    inputs["sources"] = source_hashes(roots, sha256, memo=memo)
    inputs["libraries"] = library_versions(libraries, lock)
    inputs.update(extra or {})
    return inputs


def _versions_match(recorded: Any, current: Any) -> bool:
    if recorded == current:
        return True
    # Without the library installed we can only hold the recorded version to the lock's pin;
    # a local build label such as '+cpu' is not part of the pin.
    if isinstance(current, str) and current.startswith("pinned:") and isinstance(recorded, str):
        return recorded.split("+", 1)[0] == current[len("pinned:"):]
    return False


def _numerics_text(value: Any) -> str:
    if value is None:
        return "unrecorded"
    if isinstance(value, dict):
        return f"pinned {value.get('profile', '?')}"
    return str(value)


def changed_inputs(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Human-readable reasons why ``current`` differs from ``recorded``; empty when equal."""
    if recorded is None:
        return ["no record of a previous run"]
    if recorded.get("key-format") != current.get("key-format"):
        # What is recorded means something else now: every result re-runs once.
        return [f"key format {recorded.get('key-format')} -> {current.get('key-format')}"]
    reasons = []
    for name in sorted(set(recorded) | set(current)):
        old, new = recorded.get(name), current.get(name)
        if old == new:
            continue
        if name == "libraries" and isinstance(old, dict) and isinstance(new, dict):
            for lib in sorted(set(old) | set(new)):
                if not _versions_match(old.get(lib), new.get(lib)):
                    reasons.append(f"{lib} {old.get(lib) or 'absent'} -> "
                                   f"{new.get(lib) or 'absent'}")
        elif name == "sources" and isinstance(old, dict) and isinstance(new, dict):
            for rel in sorted(set(old) | set(new)):
                if old.get(rel) != new.get(rel):
                    what = ("added" if rel not in old else "removed" if rel not in new
                            else "changed")
                    reasons.append(f"{rel} {what}")
        elif name == "config" and isinstance(old, dict) and isinstance(new, dict):
            fields = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            reasons.append("config " + ", ".join(
                f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in fields))
        elif name == "numerics":
            reasons.append(f"numerics {_numerics_text(old)} -> {_numerics_text(new)}")
        elif name == "upstream" and isinstance(old, dict) and isinstance(new, dict):
            # The results of other experiments a result reads (Kind.needs).
            reasons.extend(f"the result of experiment '{u}' changed" for u in
                           sorted(set(old) | set(new)) if old.get(u) != new.get(u))
        elif name == "results" and isinstance(old, dict) and isinstance(new, dict):
            # The result files a stage reads (the figures: the arrays they are drawn from).
            reasons.extend(f"{f} changed" for f in sorted(set(old) | set(new))
                           if old.get(f) != new.get(f))
        else:
            reasons.append(f"{name} {old!r} -> {new!r}")
    return reasons
