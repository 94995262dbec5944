"""viz: the near-is-warm colour convention and the colour bar, against matplotlib's colormaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import colormaps

from lightning_depth.viz import (
    MIN_COLORBAR_WIDTH,
    add_colorbar,
    colorbar,
    colorize,
    colorize_map,
    map_colormap,
)


def _rgb(cmap: str, x: float) -> np.ndarray:
    """Matplotlib's colour of ``x`` in [0, 1] as uint8 RGB (the reference)."""
    return np.round(np.asarray(colormaps[cmap](x)[:3]) * 255).astype(np.uint8)


def _bar_row(strip: np.ndarray) -> np.ndarray:
    """A row through the middle of the bar: the first rows of the strip that are not all
    white, two rows in."""
    rows = np.flatnonzero((strip != 255).any(axis=(1, 2)))
    return strip[rows[0] + 2]


def _bar_ends(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coloured = np.flatnonzero((row != 255).any(-1))
    return row[coloured[0]], row[coloured[-1]]


def test_near_is_warm_for_depth_and_disparity():
    # depth: 1 m is near, 10 m far; disparity: 50 px is near, 5 px far
    depth = colorize_map(np.array([[1.0, 10.0]]), "depth")
    np.testing.assert_array_equal(depth[0, 0], _rgb("jet", 1.0))  # dark red
    np.testing.assert_array_equal(depth[0, 1], _rgb("jet", 0.0))  # dark blue
    disparity = colorize_map(np.array([[50.0, 5.0]]), "disparity")
    np.testing.assert_array_equal(disparity[0, 0], _rgb("jet", 1.0))
    np.testing.assert_array_equal(disparity[0, 1], _rgb("jet", 0.0))
    for picture in (depth, disparity):
        near, far = picture[0, 0].astype(int), picture[0, 1].astype(int)
        assert near[0] > far[0] and near[2] < far[2]  # more red, less blue


def test_colorize_map_range_mask_and_colormap_names():
    value = torch.tensor([[0.0, 1.0, 2.0, float("nan")]])
    picture = colorize_map(
        value, "disparity", vmin=0.0, vmax=4.0, mask=torch.tensor([[1, 1, 0, 1]])
    )
    np.testing.assert_array_equal(picture[0, 0], _rgb("jet", 0.0))
    np.testing.assert_array_equal(picture[0, 1], _rgb("jet", 0.25))
    assert (picture[0, 2:] == 0).all()  # masked and NaN: black
    assert map_colormap("depth", "turbo") == "turbo_r"
    assert map_colormap("depth", "viridis_r") == "viridis"
    assert map_colormap("disparity", "turbo") == "turbo"
    with pytest.raises(ValueError, match="one of \\('depth', 'disparity'\\)"):
        colorize_map(value, "log_depth")
    with pytest.raises(ValueError, match="colormap name"):
        map_colormap("depth", "no_such_map")
    # the generic colorize keeps the colormap as given
    np.testing.assert_array_equal(colorize(np.array([[0.0, 1.0]]))[0, 0], _rgb("jet", 0.0))


@pytest.mark.parametrize("kind, left, right", [("depth", 1.0, 0.0), ("disparity", 0.0, 1.0)])
def test_colorbar_ends_are_the_colormaps_ends(kind, left, right):
    strip = colorbar(300, kind, 0.5, 9.5)
    assert strip.shape[1] == 300 and strip.dtype == np.uint8
    first, last = _bar_ends(_bar_row(strip))
    np.testing.assert_array_equal(first, _rgb("jet", left))  # the bar's vmin end
    np.testing.assert_array_equal(last, _rgb("jet", right))  # its vmax end
    # the printed range is part of the strip: another range draws other text
    assert not np.array_equal(strip, colorbar(300, kind, 0.5, 7.0))


def test_add_colorbar_keeps_the_picture_and_pads_narrow_ones():
    picture = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = add_colorbar(picture, "depth", 1.0, 2.0)
    assert out.shape[1] == MIN_COLORBAR_WIDTH and out.shape[0] > 5
    np.testing.assert_array_equal(out[:5, :7], picture)
    assert (out[:5, 7:] == 255).all()
    wide = np.zeros((4, 600, 3), np.uint8)
    assert add_colorbar(wide, "disparity", 0, 1).shape[1] == 600
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\)"):
        add_colorbar(picture.astype(np.float32), "depth", 1.0, 2.0)
