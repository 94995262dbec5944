from __future__ import annotations

import kornia
import numpy as np
import pytest
import torch

from lightning_depth.losses.smoothness import (
    DepthSmoothnessLoss,
    depth_smoothness_edge_aware,
    depth_smoothness_faithful,
    image_gradients,
)


def test_image_gradients_hand_example() -> None:
    # tf.image.image_gradients docstring example: x[i, j] = 5 i + j on a 5x5 grid.
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    dy, dx = image_gradients(x)
    expected_dy = torch.full((5, 5), 5.0)
    expected_dy[-1] = 0
    expected_dx = torch.ones(5, 5)
    expected_dx[:, -1] = 0
    torch.testing.assert_close(dy[0, 0], expected_dy)
    torch.testing.assert_close(dx[0, 0], expected_dx)
    assert dy.shape == dx.shape == x.shape


def test_image_gradients_per_channel(dtype: torch.dtype) -> None:
    x = torch.rand(2, 3, 4, 6, dtype=dtype)
    dy, dx = image_gradients(x)
    torch.testing.assert_close(dy[..., :-1, :], x[..., 1:, :] - x[..., :-1, :])
    torch.testing.assert_close(dx[..., :, :-1], x[..., :, 1:] - x[..., :, :-1])
    assert (dy[..., -1, :] == 0).all() and (dx[..., :, -1] == 0).all()


def test_faithful_on_ramps() -> None:
    # Target: x-ramp with slope 2 on 4x4 -> dx = 2 on 12 of 16 pixels, dy = 0.
    h = w = 4
    target = 2.0 * torch.arange(w, dtype=torch.float64).expand(1, 1, h, w)
    # Prediction: y-ramp with slope 3 -> dy = 3 on 12 of 16 pixels, dx = 0.
    pred = 3.0 * torch.arange(h, dtype=torch.float64).view(1, 1, h, 1).expand(1, 1, h, w)
    weights_x = np.exp(2.0 * 12 / 16)
    weights_y = np.exp(0.0)
    expected = 0.0 * weights_x + 3.0 * 12 / 16 * weights_y
    assert depth_smoothness_faithful(pred, target).item() == pytest.approx(expected)
    # Swapped: the scalar x-weight now multiplies the prediction's x-gradient.
    pred_x = 3.0 * torch.arange(w, dtype=torch.float64).expand(1, 1, h, w)
    assert depth_smoothness_faithful(pred_x, target).item() == pytest.approx(
        3.0 * 12 / 16 * weights_x
    )


def test_faithful_weights_are_batch_scalars() -> None:
    # A rough target in sample 0 raises the weight for the smooth sample 1 as well.
    pred = torch.rand(2, 1, 8, 8)
    flat = torch.zeros(2, 1, 8, 8)
    rough = flat.clone()
    rough[0] = torch.rand(8, 8)
    value_flat = depth_smoothness_faithful(pred, flat)
    value_rough = depth_smoothness_faithful(pred, rough)
    dy, dx = image_gradients(rough)
    scale_x, scale_y = torch.exp(dx.abs().mean()), torch.exp(dy.abs().mean())
    pdy, pdx = image_gradients(pred)
    torch.testing.assert_close(value_rough, pdx.abs().mean() * scale_x + pdy.abs().mean() * scale_y)
    torch.testing.assert_close(value_flat, pdx.abs().mean() + pdy.abs().mean())


def test_faithful_mask() -> None:
    target = torch.rand(1, 1, 6, 6)
    pred = torch.rand(1, 1, 6, 6)
    mask = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    mask[..., 2, 3] = False
    value = depth_smoothness_faithful(pred, target, mask)
    # Values at invalid pixels do not matter.
    pred2, target2 = pred.clone(), target.clone()
    pred2[..., 2, 3] = 100.0
    target2[..., 2, 3] = -100.0
    torch.testing.assert_close(depth_smoothness_faithful(pred2, target2, mask), value)
    # Hand count: x-pairs valid: 6*5 - 2 = 28, y-pairs: 5*6 - 2 = 28.
    vx = torch.ones(6, 5, dtype=torch.bool)
    vx[2, 2] = vx[2, 3] = False
    vy = torch.ones(5, 6, dtype=torch.bool)
    vy[1, 3] = vy[2, 3] = False
    p, t = pred[0, 0], target[0, 0]
    tdx, tdy = (t[:, 1:] - t[:, :-1])[vx], (t[1:] - t[:-1])[vy]
    pdx, pdy = (p[:, 1:] - p[:, :-1])[vx], (p[1:] - p[:-1])[vy]
    assert tdx.numel() == 28 and tdy.numel() == 28
    expected = (pdx * tdx.abs().mean().exp()).abs().mean() + (
        pdy * tdy.abs().mean().exp()
    ).abs().mean()
    torch.testing.assert_close(value, expected)


def test_edge_aware_equals_kornia_and_all_valid_mask() -> None:
    pred = torch.rand(2, 1, 8, 10)
    image = torch.rand(2, 3, 8, 10)
    expected = kornia.losses.inverse_depth_smoothness_loss(pred, image)
    torch.testing.assert_close(depth_smoothness_edge_aware(pred, image), expected)
    ones = torch.ones(2, 1, 8, 10, dtype=torch.bool)
    torch.testing.assert_close(depth_smoothness_edge_aware(pred, image, ones), expected)


def test_edge_aware_hand_example() -> None:
    # Prediction step between columns 1 and 2; the image has an edge there in one case.
    pred = torch.zeros(1, 1, 2, 4)
    pred[..., 2:] = 1.0
    flat = torch.zeros(1, 3, 2, 4)
    edge = flat.clone()
    edge[..., 2:] = 1.0
    # 2 rows x 3 x-differences, one column of them is 1: mean 1/3; no y-differences change.
    assert depth_smoothness_edge_aware(pred, flat).item() == pytest.approx(1 / 3)
    assert depth_smoothness_edge_aware(pred, edge).item() == pytest.approx(np.exp(-1.0) / 3)


def test_edge_aware_mask_drops_pairs() -> None:
    pred = torch.zeros(1, 1, 2, 4)
    pred[..., 2:] = 1.0
    image = torch.zeros(1, 3, 2, 4)
    mask = torch.ones(1, 1, 2, 4, dtype=torch.bool)
    mask[..., 2] = False  # the step's right pixel: no counted difference crosses the step
    assert depth_smoothness_edge_aware(pred, image, mask).item() == pytest.approx(0.0)


def test_empty_mask_gives_zero() -> None:
    pred = torch.rand(1, 1, 4, 4, requires_grad=True)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    value = depth_smoothness_faithful(pred, torch.rand(1, 1, 4, 4), mask)
    value.backward()
    assert value.item() == 0.0 and (pred.grad == 0).all()


def test_module_equals_functions() -> None:
    pred, target, image = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), torch.rand(2, 3, 8, 8)
    mask = torch.rand(2, 1, 8, 8) > 0.3
    torch.testing.assert_close(
        DepthSmoothnessLoss("faithful")(pred, target, mask),
        depth_smoothness_faithful(pred, target, mask),
    )
    torch.testing.assert_close(
        DepthSmoothnessLoss("edge_aware")(pred, mask=mask, image=image),
        depth_smoothness_edge_aware(pred, image, mask),
    )


def test_gradcheck() -> None:
    pred = torch.rand(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 1, 5, 6, dtype=torch.float64)
    image = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    mask = torch.rand(1, 1, 5, 6) > 0.2
    assert torch.autograd.gradcheck(lambda p: depth_smoothness_faithful(p, target), (pred,))
    assert torch.autograd.gradcheck(lambda p: depth_smoothness_faithful(p, target, mask), (pred,))
    assert torch.autograd.gradcheck(lambda p: depth_smoothness_edge_aware(p, image, mask), (pred,))


def test_errors() -> None:
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\), got \(4, 4\)"):
        image_gradients(torch.rand(4, 4))
    with pytest.raises(ValueError, match=r"same shape.*\(1, 1, 4, 4\) and \(1, 1, 4, 5\)"):
        depth_smoothness_faithful(x, torch.rand(1, 1, 4, 5))
    with pytest.raises(ValueError, match=r"pred must have shape \(B, 1, H, W\)"):
        depth_smoothness_edge_aware(torch.rand(1, 2, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"image must have shape \(1, C, 4, 4\)"):
        depth_smoothness_edge_aware(x, torch.rand(1, 3, 4, 5))
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 1, 4, 4\)"):
        depth_smoothness_faithful(x, x, torch.ones(1, 1, 2, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        depth_smoothness_faithful(x, x.numpy())
    with pytest.raises(ValueError, match="needs image"):
        DepthSmoothnessLoss("edge_aware")(x)
    with pytest.raises(ValueError, match="mode must be"):
        DepthSmoothnessLoss("sobel")
