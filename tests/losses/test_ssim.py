from __future__ import annotations

import kornia
import numpy as np
import pytest
import torch

from lightning_depth.losses.ssim import (
    SSIMLossTF,
    gaussian_window_tf,
    ssim_loss_kornia,
    ssim_loss_tf,
    ssim_tf,
    ssim_tf_map,
    window_validity,
)


def ssim_loop_reference(
    x: np.ndarray, y: np.ndarray, max_val: float, size: int, sigma: float, k1: float, k2: float
) -> np.ndarray:
    """Independent float64 SSIM: explicit window loops with the textbook covariance form."""
    coords = np.arange(size) - (size - 1) / 2.0
    g1 = np.exp(-(coords**2) / (2 * sigma**2))
    w = np.outer(g1, g1)
    w /= w.sum()
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    b, c, h, wd = x.shape
    out = np.zeros(b)
    for n in range(b):
        per_channel = []
        for ch in range(c):
            vals = []
            for i in range(h - size + 1):
                for j in range(wd - size + 1):
                    px = x[n, ch, i : i + size, j : j + size]
                    py = y[n, ch, i : i + size, j : j + size]
                    mx, my = (w * px).sum(), (w * py).sum()
                    vx = (w * (px - mx) ** 2).sum()
                    vy = (w * (py - my) ** 2).sum()
                    cxy = (w * (px - mx) * (py - my)).sum()
                    vals.append(
                        ((2 * mx * my + c1) * (2 * cxy + c2))
                        / ((mx**2 + my**2 + c1) * (vx + vy + c2))
                    )
            per_channel.append(np.mean(vals))
        out[n] = np.mean(per_channel)
    return out


@pytest.mark.parametrize(
    ("max_val", "k1", "k2", "size"),
    [(1.0, 0.01, 0.03, 7), (256.0, 0.01**2, 0.03**2, 7), (2.0, 0.01, 0.03, 4)],
)
def test_ssim_tf_matches_loop_reference(max_val: float, k1: float, k2: float, size: int) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 2, 10, 11, generator=g, dtype=torch.float64)
    y = (x + 0.3 * torch.rand(2, 2, 10, 11, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = ssim_tf(x, y, max_val, filter_size=size, filter_sigma=1.5, k1=k1, k2=k2)
    ref = ssim_loop_reference(x.numpy(), y.numpy(), max_val, size, 1.5, k1, k2)
    assert ours.shape == (2,)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_ssim_tf_float32_close_to_float64(dtype: torch.dtype) -> None:
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    y = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    ref = ssim_tf(x, y, 1.0, k1=0.01, k2=0.03)
    ours = ssim_tf(x.to(dtype), y.to(dtype), 1.0, k1=0.01, k2=0.03)
    assert ours.dtype == dtype
    torch.testing.assert_close(ours.double(), ref, atol=1e-5, rtol=0)


def test_gaussian_window_tf() -> None:
    w = gaussian_window_tf(7, 1.5, dtype=torch.float64)
    c = torch.arange(7, dtype=torch.float64) - 3
    g = torch.exp(-(c**2) / (2 * 1.5**2))
    torch.testing.assert_close(w, torch.outer(g, g) / torch.outer(g, g).sum())
    # TF accepts even sizes (centre between pixels).
    w6 = gaussian_window_tf(6, 1.5, dtype=torch.float64)
    torch.testing.assert_close(w6, w6.flip(0).flip(1))
    assert w6.sum().item() == pytest.approx(1.0)


def test_identical_images_and_map_shape() -> None:
    x = torch.rand(3, 2, 12, 9)
    torch.testing.assert_close(ssim_tf(x, x, 1.0), torch.ones(3))
    assert ssim_tf_map(x, x, 1.0, filter_size=7).shape == (3, 2, 6, 3)
    assert ssim_loss_tf(x, x, 1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_constant_images_give_luminance_only() -> None:
    # Flat images: cs == 1, luminance == (2ab + c1) / (a^2 + b^2 + c1).
    a, b, c1 = 0.2, 0.6, (0.01 * 1.0) ** 2
    x = torch.full((1, 1, 8, 8), a, dtype=torch.float64)
    y = torch.full((1, 1, 8, 8), b, dtype=torch.float64)
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)
    assert ssim_tf(x, y, 1.0, k1=0.01, k2=0.03).item() == pytest.approx(expected, rel=1e-10)


def test_module_equals_function() -> None:
    pred, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    module = SSIMLossTF(data_range=256.0)
    torch.testing.assert_close(module(pred, target), (1 - ssim_tf(target, pred, 256.0)).mean())
    mask = torch.rand(2, 1, 16, 16) > 0.1
    torch.testing.assert_close(
        module(pred, target, mask), ssim_loss_tf(pred, target, 256.0, mask=mask)
    )


def test_mask_all_valid_equals_unmasked() -> None:
    pred, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    ones = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    torch.testing.assert_close(ssim_tf(pred, target, 1.0, mask=ones), ssim_tf(pred, target, 1.0))
    torch.testing.assert_close(
        ssim_loss_tf(pred, target, 1.0, mask=ones), ssim_loss_tf(pred, target, 1.0)
    )
    torch.testing.assert_close(
        ssim_loss_kornia(pred, target, 1.0, mask=ones), ssim_loss_kornia(pred, target, 1.0)
    )


def test_mask_excludes_windows_touching_invalid_pixels() -> None:
    pred, target = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    mask = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    mask[..., 0, 0] = False  # only windows covering pixel (0, 0) are dropped
    valid = window_validity(mask, 7)
    assert valid.shape == (1, 1, 10, 10)
    assert valid.sum().item() == 100 - 1  # only window (0, 0) covers pixel (0, 0)
    ssim_map = ssim_tf_map(target, pred, 1.0)
    expected = (1 - ssim_map).flatten()[1:].mean()
    torch.testing.assert_close(ssim_loss_tf(pred, target, 1.0, mask=mask), expected)
    # Whatever lies under invalid pixels does not matter.
    target2 = target.clone()
    target2[..., 0, 0] = 1e3
    torch.testing.assert_close(ssim_loss_tf(pred, target2, 1.0, mask=mask), expected)
    torch.testing.assert_close(
        ssim_loss_kornia(pred, target2, 1.0, mask=mask),
        ssim_loss_kornia(pred, target, 1.0, mask=mask),
    )


def test_kornia_same_padding_validity_treats_outside_as_valid() -> None:
    mask = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    mask[..., 4, 4] = False
    valid = window_validity(mask, 3, padding="same")
    assert valid.shape == (1, 1, 8, 8)
    assert valid.sum().item() == 64 - 9
    assert valid[..., 3:6, 3:6].sum().item() == 0


def test_empty_mask() -> None:
    pred = torch.rand(2, 1, 16, 16, requires_grad=True)
    target = torch.rand(2, 1, 16, 16)
    mask = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    mask[1] = False
    per_image = ssim_tf(pred, target, 1.0, mask=mask)
    assert torch.isfinite(per_image[0]) and torch.isnan(per_image[1])
    loss = ssim_loss_tf(pred, target, 1.0, mask=torch.zeros_like(mask))
    loss.backward()
    assert loss.item() == 0.0
    assert pred.grad is not None and (pred.grad == 0).all()


def test_kornia_loss_is_kornias() -> None:
    pred, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    expected = kornia.losses.ssim_loss(pred, target, 7, max_val=2.0)
    torch.testing.assert_close(ssim_loss_kornia(pred, target, 2.0, 7), expected)
    # (1 - SSIM) / 2 with kornia's "same" map.
    ssim_map = kornia.metrics.ssim(pred, target, 7, max_val=2.0)
    torch.testing.assert_close(ssim_loss_kornia(pred, target, 2.0, 7), ((1 - ssim_map) / 2).mean())


def test_gradcheck_ssim_tf() -> None:
    x = torch.rand(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: ssim_tf(a, b, 1.0, filter_size=3, k1=0.01, k2=0.03), (x, y)
    )
    mask = torch.rand(1, 1, 6, 7) > 0.2
    assert torch.autograd.gradcheck(
        lambda a: ssim_loss_tf(a, y.detach(), 1.0, filter_size=3, mask=mask), (x,)
    )


def test_half_precision_is_computed_in_float32() -> None:
    x = torch.rand(1, 1, 16, 16) + 5.0
    y = x + 0.01 * torch.rand(1, 1, 16, 16)
    ref = ssim_tf(x, y, 1.0, k1=0.01, k2=0.03)
    out = ssim_tf(x.bfloat16(), y.bfloat16(), 1.0, k1=0.01, k2=0.03)
    assert out.dtype == torch.float32
    # Within bfloat16's rounding of the inputs, not the nonsense bfloat16 variances give.
    assert (out - ref).abs().item() < 0.2


def test_errors_name_the_problem() -> None:
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(
        ValueError, match=r"same shape \(B, C, H, W\).*\(1, 1, 16, 16\) and \(1, 1, 16, 8\)"
    ):
        ssim_tf(x, torch.rand(1, 1, 16, 8), 1.0)
    with pytest.raises(ValueError, match=r"at least 7x7.*H=5, W=16"):
        ssim_tf(torch.rand(1, 1, 5, 16), torch.rand(1, 1, 5, 16), 1.0)
    with pytest.raises(ValueError, match=r"img1 must have shape \(B, C, H, W\), got \(16, 16\)"):
        ssim_tf(torch.rand(16, 16), torch.rand(16, 16), 1.0)
    with pytest.raises(TypeError, match="img2 must be a torch.Tensor"):
        ssim_tf(x, x.numpy(), 1.0)
    with pytest.raises(TypeError, match="floating point"):
        ssim_tf(x.long(), x.long(), 1.0)
    with pytest.raises(ValueError, match="data_range must be > 0"):
        ssim_tf(x, x, 0.0)
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 1, 16, 16\)"):
        ssim_tf(x, x, 1.0, mask=torch.ones(1, 1, 8, 8, dtype=torch.bool))


@pytest.mark.parity
@pytest.mark.parametrize(
    ("max_val", "k1", "k2"), [(256.0, 0.01**2, 0.03**2), (float(np.log(300.0)), 0.01, 0.03)]
)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("return_map", [False, True])
@pytest.mark.parametrize("size", [7, 4])
def test_ssim_tf_matches_tensorflow(
    max_val: float, k1: float, k2: float, size: int, channels: int, return_map: bool
) -> None:
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    # Log-depth-like targets in [0.1, 5.7] and tanh-range predictions, as in training.
    target = np.clip(
        np.cumsum(rng.normal(0, 0.05, (2, 24, 32, channels)), axis=2) + 3.0, 0.1, 5.7
    ).astype(np.float32)
    pred = np.tanh(target / 5 + rng.normal(0, 0.1, target.shape)).astype(np.float32)
    ref = tf.image.ssim(
        target, pred, max_val=max_val, filter_size=size, k1=k1, k2=k2, return_index_map=return_map
    ).numpy()
    t, p = (torch.from_numpy(a).permute(0, 3, 1, 2) for a in (target, pred))
    if return_map:
        ours = ssim_tf_map(t, p, max_val, size, 1.5, k1, k2).mean(dim=1).numpy()
        # Per-window values carry float32 cancellation error in the variances (both sides).
        np.testing.assert_allclose(ours, ref, atol=2e-4)
    else:
        ours = ssim_tf(t, p, max_val, size, 1.5, k1, k2).numpy()
        # Both sides are float32 within ~1e-6 of a float64 computation.
        np.testing.assert_allclose(ours, ref, atol=3e-6)
