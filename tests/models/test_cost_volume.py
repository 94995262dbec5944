from __future__ import annotations

import math

import pytest
import torch

from lightning_depth.models.cost_volume import (
    full_cost_volume,
    residual_cost_volume,
    warp_right_to_left,
)


def _sample_row(row: torch.Tensor, xs: float) -> torch.Tensor:
    """Linear interpolation of a (C, W) row at position xs, zeros outside [0, W - 1]."""
    w = row.shape[-1]
    x0 = math.floor(xs)
    a = xs - x0
    out = torch.zeros(row.shape[0], dtype=row.dtype)
    for x, weight in ((x0, 1 - a), (x0 + 1, a)):
        if 0 <= x < w and weight != 0:
            out += weight * row[:, x]
    return out


def test_full_cost_volume_matches_loop():
    fl = torch.randn(2, 3, 4, 7, dtype=torch.float64)
    fr = torch.randn(2, 3, 4, 7, dtype=torch.float64)
    cost = full_cost_volume(fl, fr, 5)
    assert cost.shape == (2, 5, 4, 7)
    for b in range(2):
        for d in range(5):
            for y in range(4):
                for x in range(7):
                    right = (
                        fr[b, :, y, x - d] if x - d >= 0 else torch.zeros(3, dtype=torch.float64)
                    )
                    expected = (fl[b, :, y, x] - right).abs().sum()
                    torch.testing.assert_close(cost[b, d, y, x], expected)


def test_full_cost_volume_more_disparities_than_width():
    fl, fr = torch.randn(1, 2, 2, 3), torch.randn(1, 2, 2, 3)
    cost = full_cost_volume(fl, fr, 5)
    torch.testing.assert_close(cost[:, 4], fl.abs().sum(1))


def test_warp_hand_example():
    feat_r = torch.tensor([10.0, 20.0, 30.0, 40.0]).view(1, 1, 1, 4).repeat(1, 2, 3, 1)
    disp = torch.tensor([0.0, 0.5, 1.0, 3.5]).view(1, 1, 1, 4).repeat(1, 1, 3, 1)
    # x - d = 0, 0.5, 1, -0.5: 10, halfway 10..20, 20, half of 10 (zeros left of the image)
    expected = torch.tensor([10.0, 15.0, 20.0, 5.0]).view(1, 1, 1, 4).expand(1, 2, 3, 4)
    torch.testing.assert_close(warp_right_to_left(feat_r, disp), expected)


def test_warp_integer_disparity_is_a_shift():
    feat_r = torch.randn(1, 3, 5, 8, dtype=torch.float64)
    out = warp_right_to_left(feat_r, torch.full((1, 1, 5, 8), 2.0, dtype=torch.float64))
    torch.testing.assert_close(out[..., 2:], feat_r[..., :-2])
    torch.testing.assert_close(out[..., :2], torch.zeros_like(out[..., :2]))


@pytest.mark.parametrize("max_residual", [1, 3])
def test_residual_cost_volume_matches_loop(max_residual):
    b_, c_, h_, w_ = 2, 3, 3, 6
    fl = torch.randn(b_, c_, h_, w_, dtype=torch.float64)
    fr = torch.randn(b_, c_, h_, w_, dtype=torch.float64)
    disp = torch.rand(b_, 1, h_, w_, dtype=torch.float64) * 4
    cost = residual_cost_volume(fl, fr, disp, max_residual)
    assert cost.shape == (b_, 2 * max_residual - 1, h_, w_)
    for b in range(b_):
        for k in range(2 * max_residual - 1):
            shift = k - (max_residual - 1)
            for y in range(h_):
                for x in range(w_):
                    xs = x - (float(disp[b, 0, y, x]) - shift)
                    warped = _sample_row(fr[b, :, y], xs)
                    expected = (fl[b, :, y, x] - warped).abs().sum()
                    torch.testing.assert_close(cost[b, k, y, x], expected, rtol=1e-9, atol=1e-9)


def test_residual_cost_volume_equals_per_shift_warps(device, dtype):
    fl = torch.randn(2, 4, 8, 16, device=device, dtype=dtype)
    fr = torch.randn(2, 4, 8, 16, device=device, dtype=dtype)
    disp = torch.rand(2, 1, 8, 16, device=device, dtype=dtype) * 5
    cost = residual_cost_volume(fl, fr, disp, 3)
    assert cost.dtype == dtype and cost.device == fl.device
    for k, shift in enumerate(range(-2, 3)):
        expected = (fl - warp_right_to_left(fr, disp - shift)).abs().sum(1)
        torch.testing.assert_close(cost[:, k], expected)


def test_errors():
    f = torch.zeros(1, 2, 4, 4)
    with pytest.raises(
        ValueError, match=r"feat_l and feat_r must have the same shape \(B, C, H, W\)"
    ):
        full_cost_volume(f, torch.zeros(1, 2, 4, 5), 3)
    with pytest.raises(ValueError, match="max_disp must be a positive integer"):
        full_cost_volume(f, f, 0)
    with pytest.raises(ValueError, match=r"disp must have shape \(B, 1, H, W\) = \(1, 1, 4, 4\)"):
        residual_cost_volume(f, f, torch.zeros(1, 2, 4, 4), 3)
    with pytest.raises(ValueError, match="max_residual must be a positive integer"):
        residual_cost_volume(f, f, torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match=r"disp must be \(B, 1, H, W\)"):
        warp_right_to_left(f, torch.zeros(1, 1, 4, 3))
