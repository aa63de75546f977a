"""core/npyread.py reads what numpy writes, for the float arrays lora-site saves, and refuses
anything else (object arrays above all: nothing is ever unpickled)."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from generator.core.npyread import read_array


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
@pytest.mark.parametrize("shape", [(3,), (2, 3), (4, 2, 3), (0, 3)])
def test_it_reads_what_numpy_writes_value_for_value(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(dtype)
    np.savez(tmp_path / "a.npz", x=a, other=np.arange(3))
    got_shape, values = read_array(tmp_path / "a.npz", "x")
    assert got_shape == shape
    assert values == a.ravel().tolist()


def test_a_large_header_version_2_file_is_read(tmp_path):
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=(2, 0))
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as z:
        z.writestr("x.npy", buf.getvalue())
    assert read_array(tmp_path / "a.npz", "x") == ((2, 3), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])


@pytest.mark.parametrize("array, message", [
    (np.array([1, 2], dtype="<i8"), "not a little-endian float array in C order"),
    (np.asfortranarray(np.ones((2, 3), dtype="<f4")), "not a little-endian float array"),
    (np.array([1.0], dtype=">f8"), "not a little-endian float array"),
    (np.array([{"a": 1}], dtype=object), "not a little-endian float array"),
])
def test_it_refuses_other_arrays(tmp_path, array, message):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as z:
        z.writestr("x.npy", buf.getvalue())
    with pytest.raises(ValueError, match=message):
        read_array(tmp_path / "a.npz", "x")


def test_truncated_data_is_refused(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ones(4, dtype="<f4"))
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as z:
        z.writestr("x.npy", buf.getvalue()[:-3])
    with pytest.raises(ValueError, match="13 bytes of data, 16 expected"):
        read_array(tmp_path / "a.npz", "x")
