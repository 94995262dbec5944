"""KITTI disparity PNGs: 1/256 px round trip, validity, errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lightning_depth.io.kitti import (
    KittiDisparityError,
    read_kitti_disparity,
    write_kitti_disparity,
)


def test_round_trip_to_1_over_256(tmp_path):
    rng = np.random.default_rng(0)
    disparity = rng.uniform(0.5, 200.0, size=(32, 64)).astype(np.float32)
    disparity[:4] = 0.0
    path = tmp_path / "000000_10.png"
    write_kitti_disparity(path, disparity)

    with Image.open(path) as image:
        assert image.mode == "I;16"
    out, valid = read_kitti_disparity(path)
    assert out.dtype == np.float32 and valid.dtype == bool
    assert out.shape == disparity.shape
    np.testing.assert_array_equal(valid, disparity > 0)
    assert np.abs(out - disparity).max() <= 0.5 / 256 + 1e-6
    assert (out[:4] == 0).all()


def test_known_values_and_explicit_mask(tmp_path):
    disparity = np.array([[1.0, 0.001], [255.99, 3.0]])
    valid = np.array([[True, True], [True, False]])
    path = tmp_path / "d.png"
    write_kitti_disparity(path, disparity, valid=valid)
    raw = np.asarray(Image.open(path))
    # A tiny valid disparity is kept valid (stored as 1), as in KITTI's devkit.
    np.testing.assert_array_equal(raw, [[256, 1], [65533, 0]])
    out, mask = read_kitti_disparity(path)
    np.testing.assert_array_equal(mask, valid)


def test_write_rejects_out_of_range(tmp_path):
    with pytest.raises(ValueError, match=r"\[0, 255.996\]"):
        write_kitti_disparity(tmp_path / "d.png", np.full((2, 2), 300.0))
    with pytest.raises(ValueError, match="NaN or inf"):
        write_kitti_disparity(tmp_path / "d.png", np.full((2, 2), np.inf))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        write_kitti_disparity(tmp_path / "d.png", np.zeros((2, 2, 3)))


def test_read_8bit_png_names_file(tmp_path):
    path = tmp_path / "eight_bit.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    with pytest.raises(KittiDisparityError, match="16-bit single-channel") as info:
        read_kitti_disparity(path)
    assert str(path) in str(info.value)


def test_read_missing_and_garbage_name_file(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(KittiDisparityError, match="does not exist") as info:
        read_kitti_disparity(missing)
    assert str(missing) in str(info.value)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png")
    with pytest.raises(KittiDisparityError, match="cannot read") as info:
        read_kitti_disparity(garbage)
    assert str(garbage) in str(info.value)
