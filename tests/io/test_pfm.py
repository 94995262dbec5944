"""PFM reading and writing: round trips, byte-exact layout, and errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_depth.io.pfm import PFMError, read_pfm, write_pfm


def _hand_written(magic: bytes, rows_top_down: np.ndarray, endian: str, scale: bytes) -> bytes:
    """PFM bytes built by hand: header, then rows bottom-up."""
    height, width = rows_top_down.shape[:2]
    data = np.ascontiguousarray(rows_top_down[::-1], dtype=f"{endian}f4").tobytes()
    return magic + f"\n{width} {height}\n".encode() + scale + b"\n" + data


GRAY = np.array([[1.0, 2.0, 3.0], [4.0, 5.5, -6.25]], dtype=np.float32)
COLOR = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3) / 4.0


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("array", [GRAY, COLOR], ids=["Pf", "PF"])
def test_write_matches_hand_written_bytes(tmp_path, array, byteorder):
    path = tmp_path / "x.pfm"
    write_pfm(path, array, byteorder=byteorder)
    magic = b"PF" if array.ndim == 3 else b"Pf"
    endian, scale = ("<", b"-1.0") if byteorder == "little" else (">", b"1.0")
    assert path.read_bytes() == _hand_written(magic, array, endian, scale)


@pytest.mark.parametrize("endian,scale", [("<", b"-2.5"), (">", b"2.5")])
@pytest.mark.parametrize("array", [GRAY, COLOR], ids=["Pf", "PF"])
def test_read_hand_written_file(tmp_path, array, endian, scale):
    path = tmp_path / "x.pfm"
    magic = b"PF" if array.ndim == 3 else b"Pf"
    path.write_bytes(_hand_written(magic, array, endian, scale))
    out, s = read_pfm(path)
    assert out.dtype == np.float32 and out.dtype.isnative
    assert out.shape == array.shape
    # Top row first: the first stored row (bottom) must come out last.
    np.testing.assert_array_equal(out, array)
    assert s == 2.5


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("shape", [(5, 7), (4, 6, 3)])
def test_round_trip(tmp_path, shape, byteorder):
    rng = np.random.default_rng(0)
    array = rng.normal(size=shape).astype(np.float32) * 100
    path = tmp_path / "r.pfm"
    write_pfm(path, array, scale=3.0, byteorder=byteorder)
    out, scale = read_pfm(path, check_finite=True)
    np.testing.assert_array_equal(out, array)
    assert scale == 3.0
    assert out.flags.writeable


def test_write_squeezes_single_channel(tmp_path):
    path = tmp_path / "s.pfm"
    write_pfm(path, GRAY[..., None])
    assert path.read_bytes().startswith(b"Pf\n3 2\n")


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"P6\n3 2\n-1.0\n", "magic"),
        (b"Pf\n3\n-1.0\n", "dimensions"),
        (b"Pf\n3 x\n-1.0\n", "dimensions"),
        (b"Pf\n0 2\n-1.0\n", "dimensions"),
        (b"Pf\n3 2\nabc\n", "not a number"),
        (b"Pf\n3 2\n0\n", "non-zero"),
        (b"Pf\n3 2", "header ended"),
        (b"", "header ended"),
    ],
)
def test_bad_header_names_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad_header.pfm"
    path.write_bytes(content + bytes(24))
    with pytest.raises(PFMError, match=problem) as info:
        read_pfm(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_data(tmp_path):
    path = tmp_path / "short.pfm"
    path.write_bytes(_hand_written(b"Pf", GRAY, "<", b"-1.0")[:-5])
    with pytest.raises(PFMError, match=r"truncated PFM data: 19 bytes, expected 24") as info:
        read_pfm(path)
    assert str(path) in str(info.value)


def test_overlong_data(tmp_path):
    path = tmp_path / "long.pfm"
    path.write_bytes(_hand_written(b"Pf", GRAY, "<", b"-1.0") + bytes(4))
    with pytest.raises(PFMError, match="longer than") as info:
        read_pfm(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_only_when_checked(tmp_path, bad):
    array = GRAY.copy()
    array[1, 2] = bad
    path = tmp_path / "nonfinite.pfm"
    write_pfm(path, array)
    out, _ = read_pfm(path)
    assert not np.isfinite(out[1, 2])
    with pytest.raises(PFMError, match="non-finite") as info:
        read_pfm(path, check_finite=True)
    assert str(path) in str(info.value)


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"\(H, W\), \(H, W, 1\) or \(H, W, 3\)"):
        write_pfm(tmp_path / "a.pfm", np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="positive finite scale"):
        write_pfm(tmp_path / "a.pfm", GRAY, scale=-1.0)
    with pytest.raises(TypeError, match="real-valued"):
        write_pfm(tmp_path / "a.pfm", GRAY.astype(np.complex64))
