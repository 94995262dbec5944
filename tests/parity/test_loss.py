"""The loss terms equal the original ``calculate_loss`` (tf.image.ssim, image_gradients, L1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_depth.losses.mono import MonoDepthLoss
from lightning_depth.losses.smoothness import image_gradients
from lightning_depth.losses.ssim import ssim_tf
from tests.parity.conftest import BATCH, HEIGHT, WIDTH, nchw_to_nhwc

pytestmark = pytest.mark.parity

LOSS_RTOL = 1e-5
# 1 - SSIM cancels when SSIM is near 1: float32 holds SSIM to ~6e-8, so for the "close" pair
# (1 - SSIM ~ 2e-3) TF and we are each ~1e-4 *relative* from the float64 value, equally. An
# absolute floor of 1e-6 (far above that rounding, far below any real difference) covers it.
LOSS_ATOL = 1e-6


def _pair(kind: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, target), ``(B, 1, H, W)``: tanh-range predictions and log-depth targets."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(BATCH, 1, HEIGHT // 8, WIDTH // 8, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bilinear")
    target = 0.1 + 5.6 * smooth + 0.05 * torch.rand(smooth.shape, generator=gen)
    if kind == "independent":
        pred = torch.tanh(torch.randn(target.shape, generator=gen))
    else:  # near the target, so SSIM is close to 1 and 1 - SSIM is small
        pred = target + 0.02 * torch.randn(target.shape, generator=gen)
    return pred, target


@pytest.mark.parametrize("kind", ["independent", "close"])
def test_loss_terms_match(rk, tf, kind):
    pred, target = _pair(kind, seed=1)
    ours = MonoDepthLoss()(pred, target)

    model = rk.DepthEstimationModel(depth=3)
    y_true, y_pred = tf.constant(nchw_to_nhwc(target)), tf.constant(nchw_to_nhwc(pred))
    theirs = {k: float(v) for k, v in model.loss_terms(y_true, y_pred).items()}
    theirs["loss"] = float(model.calculate_loss(y_true, y_pred))

    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert value > 1e-4, key  # a vanishing term would make the relative check void
        assert ours[key].item() == pytest.approx(value, rel=LOSS_RTOL, abs=LOSS_ATOL), key


@pytest.mark.parametrize(
    ("max_val", "k1", "k2"),
    [(256.0, 0.01**2, 0.03**2), (math.log(300.0), 0.01, 0.03), (1.0, 0.01, 0.03)],
    ids=["original", "corrected", "unit"],
)
def test_ssim_per_image_matches_tf(tf, max_val, k1, k2):
    gen = torch.Generator().manual_seed(2)
    a = torch.rand(3, 2, 24, 40, generator=gen) * max_val
    b = (a + 0.1 * max_val * torch.randn(a.shape, generator=gen)).clamp(0, max_val)
    ours = ssim_tf(a, b, data_range=max_val, filter_size=7, k1=k1, k2=k2)
    theirs = tf.image.ssim(
        nchw_to_nhwc(a), nchw_to_nhwc(b), max_val=max_val, filter_size=7, k1=k1, k2=k2
    ).numpy()
    assert ours.shape == (3,)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=LOSS_RTOL, atol=0)


def test_image_gradients_match_tf(tf):
    x = torch.randn(2, 3, 5, 7)
    dy, dx = image_gradients(x)
    dy_tf, dx_tf = tf.image.image_gradients(tf.constant(nchw_to_nhwc(x)))
    # TF pads the last row/column with zeros; those zeros count in the original's means.
    np.testing.assert_array_equal(nchw_to_nhwc(dy), dy_tf.numpy())
    np.testing.assert_array_equal(nchw_to_nhwc(dx), dx_tf.numpy())
