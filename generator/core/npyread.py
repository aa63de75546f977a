"""One array of an .npz read without numpy: the build's render path reads the attention trace
for the interactive figure, and importing numpy would cost a prose-edit rebuild more than the
rest of its work. Only what lora-site writes is accepted: little-endian float32 or float64 in C
order (.npy format 1.0 to 3.0), never an object array, so nothing can unpickle."""
from __future__ import annotations

import ast
import struct
import zipfile
from array import array
from pathlib import Path

_TYPES = {"<f4": ("f", 4), "<f8": ("d", 8)}


def read_array(npz: Path, name: str) -> tuple[tuple[int, ...], list[float]]:
    """(shape, values in C order) of array ``name`` of ``npz``; ValueError when it is not one
    this reader takes (another dtype, Fortran order, a damaged header)."""
    with zipfile.ZipFile(npz) as z:
        data = z.read(f"{name}.npy")
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{name}.npy is not an .npy file")
    major = data[6]
    if major == 1:
        (size,), start = struct.unpack("<H", data[8:10]), 10
    elif major in (2, 3):
        (size,), start = struct.unpack("<I", data[8:12]), 12
    else:
        raise ValueError(f"{name}.npy: unknown .npy version {major}")
    header = ast.literal_eval(data[start:start + size].decode("latin1"))
    if not isinstance(header, dict) or header.get("fortran_order") or \
            header.get("descr") not in _TYPES:
        raise ValueError(f"{name}.npy: not a little-endian float array in C order")
    shape = tuple(int(d) for d in header["shape"])
    code, width = _TYPES[header["descr"]]
    count = 1
    for d in shape:
        count *= d
    body = data[start + size:]
    if len(body) != count * width:
        raise ValueError(f"{name}.npy: {len(body)} bytes of data, {count * width} expected")
    values = array(code)
    values.frombytes(body)
    return shape, values.tolist()
