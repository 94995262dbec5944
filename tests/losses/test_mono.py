from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_depth.losses.mono import MonoDepthLoss, mono_depth_loss
from lightning_depth.losses.smoothness import depth_smoothness_edge_aware, depth_smoothness_faithful
from lightning_depth.losses.ssim import ssim_loss_kornia, ssim_tf

CORRECTED = dict(
    data_range=math.log(300.0), ssim_k1=0.01, ssim_k2=0.03, smoothness="edge_aware", use_mask=True
)


def _batch(b: int = 2, h: int = 16, w: int = 24) -> tuple[torch.Tensor, ...]:
    target = 0.1 + 5.6 * torch.rand(b, 1, h, w)
    pred = torch.tanh(torch.randn(b, 1, h, w))
    mask = torch.rand(b, 1, h, w) > 0.2
    image = torch.rand(b, 3, h, w)
    return pred, target, mask, image


def test_flat_images_hand_computed() -> None:
    # pred = 0 and target = 2 everywhere: SSIM is luminance only, no gradients.
    pred = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    target = torch.full((1, 1, 16, 16), 2.0, dtype=torch.float64)
    c1 = (0.01**2 * 256.0) ** 2
    ssim = c1 / (4.0 + c1)
    terms = MonoDepthLoss()(pred, target)
    assert terms["ssim"].item() == pytest.approx(1 - ssim)
    assert terms["l1"].item() == pytest.approx(2.0)
    assert terms["smoothness"].item() == pytest.approx(0.0)
    assert terms["loss"].item() == pytest.approx(0.85 * (1 - ssim) + 0.1 * 2.0)


def test_faithful_is_the_weighted_sum_of_the_terms() -> None:
    pred, target, mask, image = _batch()
    terms = MonoDepthLoss()(pred, target, mask=mask, image=image)  # mask ignored without use_mask
    ssim = (1 - ssim_tf(target, pred, 256.0, 7, 1.5, 0.01**2, 0.03**2)).mean()
    l1 = (target - pred).abs().mean()
    smooth = depth_smoothness_faithful(pred, target)
    torch.testing.assert_close(terms["ssim"], ssim)
    torch.testing.assert_close(terms["l1"], l1)
    torch.testing.assert_close(terms["smoothness"], smooth)
    torch.testing.assert_close(terms["loss"], 0.85 * ssim + 0.1 * l1 + 0.9 * smooth)
    assert set(terms) == {"loss", "ssim", "l1", "smoothness"}


def test_weights_and_constants_are_configurable() -> None:
    pred, target, _, image = _batch()
    terms = MonoDepthLoss(
        ssim_weight=1.0,
        l1_weight=2.0,
        smoothness_weight=3.0,
        data_range=1.0,
        ssim_k1=0.01,
        ssim_k2=0.03,
        ssim_window=5,
    )(pred, target)
    ssim = (1 - ssim_tf(target, pred, 1.0, 5, 1.5, 0.01, 0.03)).mean()
    torch.testing.assert_close(terms["ssim"], ssim)
    torch.testing.assert_close(terms["loss"], ssim + 2.0 * terms["l1"] + 3.0 * terms["smoothness"])


def test_kornia_ssim_and_edge_aware_terms() -> None:
    pred, target, _, image = _batch()
    terms = MonoDepthLoss(ssim="kornia", data_range=2.0, smoothness="edge_aware")(
        pred, target, image=image
    )
    torch.testing.assert_close(terms["ssim"], ssim_loss_kornia(pred, target, 2.0, 7))
    torch.testing.assert_close(terms["smoothness"], depth_smoothness_edge_aware(pred, image))


def test_module_equals_function() -> None:
    pred, target, mask, image = _batch()
    module = MonoDepthLoss(**CORRECTED)
    out_m = module(pred, target, mask=mask, image=image)
    out_f = mono_depth_loss(pred, target, mask=mask, image=image, **CORRECTED)
    for k in out_f:
        torch.testing.assert_close(out_m[k], out_f[k])


@pytest.mark.parametrize("ssim", ["tf", "kornia"])
@pytest.mark.parametrize("smoothness", ["faithful", "edge_aware"])
def test_masked_terms_ignore_invalid_pixels(ssim: str, smoothness: str) -> None:
    pred, target, mask, image = _batch()
    loss_fn = MonoDepthLoss(ssim=ssim, smoothness=smoothness, use_mask=True, data_range=6.0)
    ref = loss_fn(pred, target, mask=mask, image=image)
    target2 = torch.where(mask, target, torch.full_like(target, 1e4))
    pred2 = torch.where(mask, pred, torch.full_like(pred, -50.0))
    out = loss_fn(pred2, target2, mask=mask, image=image)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k])
    valid = mask.float()
    torch.testing.assert_close(ref["l1"], ((target - pred).abs() * valid).sum() / valid.sum())


def test_masked_loss_gives_no_gradient_to_invalid_pixels() -> None:
    pred, target, mask, image = _batch()
    pred.requires_grad_(True)
    MonoDepthLoss(**CORRECTED)(pred, target, mask=mask, image=image)["loss"].backward()
    assert (pred.grad[~mask] == 0).all()
    assert pred.grad[mask].abs().sum() > 0


def test_all_valid_mask_keeps_l1_and_ssim() -> None:
    pred, target, _, image = _batch()
    ones = torch.ones_like(pred, dtype=torch.bool)
    a = MonoDepthLoss(use_mask=True)(pred, target, mask=ones)
    b = MonoDepthLoss()(pred, target)
    torch.testing.assert_close(a["l1"], b["l1"])
    torch.testing.assert_close(a["ssim"], b["ssim"])


def test_errors() -> None:
    pred, target, mask, _ = _batch()
    with pytest.raises(ValueError, match="use_mask=True needs mask"):
        MonoDepthLoss(use_mask=True)(pred, target)
    with pytest.raises(ValueError, match="edge_aware' needs image"):
        MonoDepthLoss(smoothness="edge_aware")(pred, target)
    with pytest.raises(
        ValueError, match=r"pred must have shape \(B, 1, H, W\), got \(2, 3, 16, 24\)"
    ):
        MonoDepthLoss()(pred.expand(2, 3, 16, 24), target)
    with pytest.raises(ValueError, match=r"same shape.*\(2, 1, 16, 24\) and \(2, 1, 16, 16\)"):
        MonoDepthLoss()(pred, target[..., :16])
    with pytest.raises(ValueError, match="ssim must be one of"):
        MonoDepthLoss(ssim="skimage")
    with pytest.raises(ValueError, match="smoothness must be one of"):
        MonoDepthLoss(smoothness="tv")


def test_gradients_flow_to_prediction() -> None:
    pred, target, _, _ = _batch()
    pred.requires_grad_(True)
    MonoDepthLoss()(pred, target)["loss"].backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


@pytest.mark.parity
def test_faithful_loss_matches_tensorflow() -> None:
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    target = np.clip(np.cumsum(rng.normal(0, 0.05, (2, 32, 48, 1)), axis=2) + 3.0, 0.1, 5.7).astype(
        np.float32
    )
    pred = np.tanh(rng.normal(0, 1, target.shape)).astype(np.float32)

    # The keras-io example's calculate_loss, verbatim in TF ops (WIDTH = 256).
    t, p = tf.constant(target), tf.constant(pred)
    dy_true, dx_true = tf.image.image_gradients(t)
    dy_pred, dx_pred = tf.image.image_gradients(p)
    weights_x = tf.exp(tf.reduce_mean(tf.abs(dx_true)))
    weights_y = tf.exp(tf.reduce_mean(tf.abs(dy_true)))
    l_edges = tf.reduce_mean(abs(dx_pred * weights_x)) + tf.reduce_mean(abs(dy_pred * weights_y))
    l_ssim = tf.reduce_mean(
        1 - tf.image.ssim(t, p, max_val=256, filter_size=7, k1=0.01**2, k2=0.03**2)
    )
    l1 = tf.reduce_mean(tf.abs(t - p))
    ref = 0.85 * l_ssim + 0.1 * l1 + 0.9 * l_edges

    terms = MonoDepthLoss()(
        torch.from_numpy(pred).permute(0, 3, 1, 2), torch.from_numpy(target).permute(0, 3, 1, 2)
    )
    assert abs(terms["ssim"].item() - float(l_ssim)) <= 1e-5
    assert abs(terms["l1"].item() - float(l1)) <= 1e-5
    assert abs(terms["smoothness"].item() - float(l_edges)) <= 1e-5
    assert abs(terms["loss"].item() - float(ref)) <= 1e-5


def test_named_data_range_is_the_log_depth_range() -> None:
    """``data_range="log_depth"`` is log(300), the largest log-depth target, and gives the
    same loss as the number (so configs need not copy 5.7038)."""
    assert MonoDepthLoss(data_range="log_depth").data_range == pytest.approx(math.log(300.0))
    g = torch.Generator().manual_seed(3)
    pred, target = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    named = MonoDepthLoss(data_range="log_depth")(pred, target)["ssim"]
    number = MonoDepthLoss(data_range=math.log(300.0))(pred, target)["ssim"]
    assert float(named) == float(number)
    with pytest.raises(ValueError, match="data_range must be a number or one of"):
        MonoDepthLoss(data_range="metres")
