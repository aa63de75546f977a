"""A result that is one JSON document and one .npz archive (never a pickle), as a kind base.

The JSON holds the settings, the numbers a body reads, the provenance, and the sha256 of the
archive (an edited or truncated archive is caught on reading). A re-run is compared number by
number, the provenance excepted (it records what made the bytes, not what they say).
Subclasses set ``json_name``, ``npz_name`` and ``what`` (for messages), record their settings
under "settings", and implement parse, compute and the rest of Kind.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ResultsError
from .base import Kind

NOT_COMPARED = ("provenance", "npz_sha256")


@dataclass(frozen=True)
class SavedJsonNpz:
    """A result read back: its JSON document, and its arrays on request."""

    name: str
    doc: dict[str, Any]
    path: Path
    npz_name: str

    def arrays(self) -> dict[str, Any]:
        from ..core.fsio import load_npz, sha256_file

        npz = self.path / self.npz_name
        try:
            if sha256_file(npz) != self.doc.get("npz_sha256"):
                raise ResultsError(f"{self.npz_name} does not match the hash its JSON records "
                                   "(truncated or edited)", path=npz,
                                   hint="rebuild with --force to recompute it")
            return load_npz(npz)
        except (OSError, ValueError) as exc:
            raise ResultsError(f"cannot read {self.npz_name}: {exc}", path=npz,
                               hint="rebuild with --force to recompute it") from None


class JsonNpzKind(Kind):
    json_name = "result.json"
    npz_name = "arrays.npz"
    what = "result"

    @property
    def result_files(self) -> tuple[str, ...]:         # the archive first: the JSON names it
        return (self.npz_name, self.json_name)

    def files(self, doc: dict[str, Any], arrays: dict[str, Any]) -> dict[str, bytes]:
        """The result's bytes: ``doc`` with the archive's hash, and the archive."""
        from ..core.fsio import npz_bytes, sha256_bytes

        data = npz_bytes(arrays)
        doc = {**doc, "npz_sha256": sha256_bytes(data)}
        text = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n"
        return {self.npz_name: data, self.json_name: text.encode("utf-8")}

    def load(self, folder: Path, name: str) -> SavedJsonNpz:
        path = Path(folder) / self.json_name
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or "settings" not in doc:
                raise ValueError("no settings recorded")
        except FileNotFoundError:
            raise ResultsError(f"the {self.what} has not been computed", path=path,
                               hint="run `lora-site build`") from None
        except (OSError, ValueError) as exc:
            raise ResultsError(f"cannot read the {self.what}: {exc}", path=path,
                               hint="rebuild with --force to recompute it") from None
        return SavedJsonNpz(name, doc, Path(folder), self.npz_name)

    def check(self, loaded: SavedJsonNpz) -> None:
        loaded.arrays()

    def settings_of(self, loaded: SavedJsonNpz) -> Any:
        return self.parse(loaded.doc["settings"], source=loaded.path / self.json_name,
                          prefix="settings.")

    def _fresh_and_frozen(self, files: dict[str, bytes], folder: Path):
        """(fresh doc, fresh arrays, frozen doc, frozen arrays) for the same settings, or None."""
        from ..core.compare import npz_from_bytes

        try:
            saved = self.load(folder, "")
            frozen_arrays = saved.arrays()
        except ResultsError:
            return None
        fresh = json.loads(files[self.json_name].decode("utf-8"))
        if fresh.get("settings") != saved.doc.get("settings"):
            return None
        strip = lambda d: {k: v for k, v in d.items() if k not in NOT_COMPARED}  # noqa: E731
        return strip(fresh), npz_from_bytes(files[self.npz_name]), strip(saved.doc), frozen_arrays

    def compare(self, files: dict[str, bytes], folder: Path, atol: float, rtol: float):
        from ..core.compare import (compare_arrays, compare_values, max_abs_difference,
                                    max_array_difference)

        found = self._fresh_and_frozen(files, folder)
        if found is None:
            return None
        doc, arrays, frozen_doc, frozen_arrays = found
        diffs = compare_values(doc, frozen_doc, self.what, atol, rtol)
        diffs += compare_arrays(arrays, frozen_arrays, atol, rtol)
        return diffs, max(max_abs_difference(doc, frozen_doc),
                          max_array_difference(arrays, frozen_arrays))

    def exact(self, files: dict[str, bytes], folder: Path) -> bool:
        from ..core.compare import arrays_equal

        found = self._fresh_and_frozen(files, folder)
        return found is not None and found[0] == found[2] and arrays_equal(found[1], found[3])

    def downloads(self, settings: Any) -> tuple[str, ...]:
        return (self.json_name, self.npz_name)        # the readable file first

    def view(self, name: str, loaded: SavedJsonNpz) -> dict[str, Any]:
        return loaded.doc

    def data(self, loaded: SavedJsonNpz) -> dict[str, Any]:
        return loaded.doc
