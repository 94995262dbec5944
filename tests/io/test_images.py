from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lightning_depth.io.errors import DataError
from lightning_depth.io.images import check_depth, read_npy, read_rgb


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)


def test_read_rgb_roundtrip(tmp_path, rgb):
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    out = read_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (6, 5, 3)
    np.testing.assert_array_equal(out, rgb)


def test_read_rgb_converts_grey_and_rgba_as_cv2_does(tmp_path, rgb):
    grey = rgb[..., 0]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "grey.png"), np.repeat(grey[..., None], 3, 2))
    rgba = np.concatenate([rgb, np.full((6, 5, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "rgba.png"), rgb)  # alpha dropped


def test_read_rgb_rejects_16_bit(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(path)
    with pytest.raises(DataError, match=r"deep\.png.*mode 'I;16'.*8-bit"):
        read_rgb(path)


def test_read_rgb_truncated_file(tmp_path, rgb):
    path = tmp_path / "cut.png"
    Image.fromarray(np.tile(rgb, (20, 20, 1))).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.png is corrupt or truncated"):
        read_rgb(path)


def test_read_rgb_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"notes\.png is corrupt or truncated"):
        read_rgb(path)


def test_read_rgb_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"image file .*nope\.png does not exist"):
        read_rgb(tmp_path / "nope.png")
    with pytest.raises(DataError, match="is a folder"):
        read_rgb(tmp_path)


def test_read_npy_checks_rank_and_shape(tmp_path):
    path = tmp_path / "d.npy"
    np.save(path, np.zeros((3, 4, 1), np.float32))
    assert read_npy(path, ndim=(2, 3), shape=(None, None, 1)).shape == (3, 4, 1)
    with pytest.raises(
        DataError, match=r"depth file .*d\.npy has shape \(3, 4, 1\); expected 2 dimensions"
    ):
        read_npy(path, ndim=2, what="depth")
    with pytest.raises(DataError, match=r"has shape \(3, 4, 1\); expected \(\*, \*, 3\)"):
        read_npy(path, shape=(None, None, 3))


def test_read_npy_unreadable_and_non_numeric(tmp_path):
    garbage = tmp_path / "g.npy"
    garbage.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"g\.npy is not a readable \.npy array"):
        read_npy(garbage)
    objects = tmp_path / "o.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"o\.npy is not a readable"):
        read_npy(objects)
    strings = tmp_path / "s.npy"
    np.save(strings, np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"s\.npy holds dtype <U1; expected a numeric array"):
        read_npy(strings)
    with pytest.raises(DataError, match="does not exist"):
        read_npy(tmp_path / "missing.npy", what="mask")


def test_check_depth_messages():
    check_depth(np.array([0.0, 1.5], np.float32), "ok.npy")
    with pytest.raises(DataError, match=r"depth file x\.npy holds 1 NaN and 1 inf values"):
        check_depth(np.array([np.nan, np.inf, 1.0]), "x.npy")
    with pytest.raises(
        DataError, match=r"disparity file y\.pfm holds 2 negative values \(min -3\)"
    ):
        check_depth(np.array([-1.0, -3.0, 2.0]), "y.pfm", what="disparity")


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)
