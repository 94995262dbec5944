"""``load_diode_sample`` reproduces the original ``DataGenerator.load`` (OpenCV + numpy + TF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_depth.data.diode import load_diode_sample

pytestmark = pytest.mark.parity

# The image goes through the same integer arithmetic on both sides (OpenCV's fixed-point
# INTER_LINEAR on uint8, then x * float32(1/255)): bit-exact, so any rounding slip of one
# grey level (1/255 = 3.9e-3) fails.
IMAGE_ATOL = 0.0
# The log-depth target is resized in floating point; summation order may differ in the last
# float32 bit (values <= log(300) = 5.7, ulp 4.8e-7). 2e-6 is a few ulps; a different kernel
# (antialiasing, corner alignment, swapped H/W) is off by 1e-2 or more.
TARGET_ATOL = 2e-6


def _write_sample(folder: Path, far: bool, seed: int = 0) -> tuple[str, str, str]:
    """A 96x128 DIODE-format sample: ``<id>.png``, ``<id>_depth.npy`` (H, W, 1) float32 and
    ``<id>_depth_mask.npy`` (H, W) float32 0/1 with a few invalid pixels."""
    rng = np.random.default_rng(seed)
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Smooth structure plus noise, so resizing has something to get wrong.
    image = np.stack([xx * 2, yy * 2.5, (xx + yy)], axis=-1) + rng.normal(0, 20, (h, w, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    top = 400.0 if far else 40.0  # far: p99 > 300, the bound is the int 300 (float64 path)
    depth = 0.05 + top * (0.5 + 0.5 * np.sin(xx / 9.0) * np.cos(yy / 7.0))
    depth = (depth * rng.uniform(0.9, 1.1, (h, w))).astype(np.float32)[..., None]
    mask = np.ones((h, w), np.float32)
    mask[rng.integers(0, h, 40), rng.integers(0, w, 40)] = 0.0
    mask[10:14, 20:30] = 0.0
    depth[10:14, 20:30] = 0.0  # DIODE marks missing depth with 0 and mask 0

    stem = folder / "00019_00183_indoors_000_010"
    Image.fromarray(image, mode="RGB").save(f"{stem}.png")
    np.save(f"{stem}_depth.npy", depth)
    np.save(f"{stem}_depth_mask.npy", mask)
    return f"{stem}.png", f"{stem}_depth.npy", f"{stem}_depth_mask.npy"


@pytest.mark.parametrize("far", [False, True], ids=["p99-below-300", "p99-above-300"])
@pytest.mark.parametrize(
    "size", [(64, 64), (32, 32), (48, 80), (256, 256)], ids=["64x64", "32x32", "48x80", "256x256"]
)
def test_preprocessing_matches_reference(rk, tmp_path, size, far):
    paths = _write_sample(tmp_path, far=far)
    ref_image, ref_target = rk.load_sample(*paths, dim=size)
    ours = load_diode_sample(*paths, size=size)

    h, w = size
    assert ref_image.shape == (h, w, 3) and ref_target.shape == (h, w, 1)
    assert ours["image"].shape == (3, h, w) and ours["target"].shape == (1, h, w)
    assert ours["image"].dtype == ours["target"].dtype == torch.float32
    assert ref_image.dtype == ref_target.dtype == np.float32
    np.testing.assert_allclose(
        ours["image"].permute(1, 2, 0).numpy(), ref_image, rtol=0, atol=IMAGE_ATOL
    )
    np.testing.assert_allclose(
        ours["target"].permute(1, 2, 0).numpy(), ref_target, rtol=0, atol=TARGET_ATOL
    )
    # The sample really exercises both clips and the invalid pixels.
    assert ref_target.min() == pytest.approx(0.1, abs=1e-6)
    assert ref_target.max() > (5.0 if far else 3.0)


def test_reference_names_a_missing_file(rk, tmp_path):
    image, depth, mask = _write_sample(tmp_path, far=False)
    Path(mask).unlink()
    with pytest.raises(FileNotFoundError, match="_depth_mask.npy"):
        rk.load_sample(image, depth, mask, dim=(32, 32))
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        rk.load_sample(str(tmp_path / "nothere.png"), depth, mask, dim=(32, 32))
