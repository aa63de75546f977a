"""Small, careful file primitives: atomic writes and deterministic archives."""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    import numpy as np

# Every zip member gets this timestamp, so an archive's bytes depend only on its contents.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    path = Path(path)
    import tempfile  # here, like zipfile below: a no-op build imports this module and writes nothing

    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)    # mkstemp makes it private; results and caches are ordinary files
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            # A failed write() names no file: name the one being written (a full disk).
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An .npz archive (what np.savez writes) with sorted members and fixed timestamps.

    np.savez stamps each member with the current time, so two saves of the same arrays differ;
    this writes the same format with the zip dates pinned.
    """
    import numpy as np  # here, not at the top: hashing and atomic writes must stay numpy-free

    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an .npz; pickled objects are refused (allow_pickle=False)."""
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in sorted(data.files)}
