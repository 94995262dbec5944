from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_depth.losses.stereo import MultiStageSmoothL1, multi_stage_smooth_l1


def _example(device="cpu", dtype=torch.float32):
    gt = torch.tensor(
        [[[[0.0, 2.0], [10.0, 250.0]]], [[[1.0, 5.0], [0.0, 3.0]]]], device=device, dtype=dtype
    )
    preds = [gt + torch.randn_like(gt) * s for s in (3.0, 2.0, 1.0, 0.5)]
    return preds, gt


def test_matches_masked_smooth_l1(device, dtype):
    preds, gt = _example(device, dtype)
    weights = (0.25, 0.5, 1.0, 1.0)
    total, per_stage = multi_stage_smooth_l1(preds, gt, weights=weights, maxdisp=192)
    mask = (gt > 0) & (gt < 192)  # 5 valid pixels: not 0, not 250
    assert int(mask.sum()) == 5
    expected = [F.smooth_l1_loss(p[mask], gt[mask]) for p in preds]
    for got, exp in zip(per_stage, expected):
        torch.testing.assert_close(got, exp)
    torch.testing.assert_close(total, sum(w * e for w, e in zip(weights, expected)))


def test_hand_example_and_beta():
    gt = torch.tensor([[[[4.0, 8.0]]]])
    pred = torch.tensor([[[[4.5, 11.0]]]])  # errors 0.5 (quadratic part) and 3 (linear part)
    total, (loss,) = multi_stage_smooth_l1([pred], gt, weights=(2.0,))
    torch.testing.assert_close(loss, torch.tensor((0.5 * 0.5**2 + (3 - 0.5)) / 2))
    torch.testing.assert_close(total, 2 * loss)
    _, (loss_b,) = multi_stage_smooth_l1([pred], gt, weights=(1.0,), beta=4.0)
    torch.testing.assert_close(loss_b, torch.tensor((0.5 * 0.5**2 / 4 + 0.5 * 3**2 / 4) / 2))


def test_empty_mask_gives_zero_connected_loss():
    pred = torch.randn(2, 1, 4, 4, requires_grad=True)
    gt = torch.zeros(2, 1, 4, 4)
    gt[0, 0, 0, 0] = 500.0  # beyond maxdisp
    gt[1, 0, 0, 0] = float("inf")
    total, per_stage = multi_stage_smooth_l1([pred, pred * 2], gt)
    assert total.item() == 0 and all(p.item() == 0 for p in per_stage)
    assert total.requires_grad
    total.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


def test_invalid_ground_truth_never_gives_nan():
    pred = torch.randn(1, 1, 2, 2, requires_grad=True)
    gt = torch.tensor([[[[float("nan"), float("inf")], [3.0, 0.0]]]])
    total, _ = multi_stage_smooth_l1([pred], gt, weights=(1.0,))
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(pred.grad).all()
    assert pred.grad[0, 0, 0].abs().sum() == 0 and pred.grad[0, 0, 1, 0] != 0


def test_module_equals_function():
    preds, gt = _example()
    module = MultiStageSmoothL1(weights=(1, 1, 1, 1), maxdisp=100, beta=0.5)
    total, per_stage = module(preds, gt)
    total_f, per_stage_f = multi_stage_smooth_l1(preds, gt, (1, 1, 1, 1), 100, 0.5)
    torch.testing.assert_close(total, total_f)
    assert all(torch.equal(a, b) for a, b in zip(per_stage, per_stage_f))


def test_errors():
    preds, gt = _example()
    with pytest.raises(ValueError, match=r"gt must have shape \(B, 1, H, W\)"):
        multi_stage_smooth_l1(preds, gt[:, 0])
    with pytest.raises(ValueError, match=r"preds\[1\] must have the shape of gt \(B, 1, H, W\)"):
        multi_stage_smooth_l1([preds[0], preds[1][..., :1]], gt)
    with pytest.raises(ValueError, match="4 stages but only 3 weights"):
        multi_stage_smooth_l1(preds, gt, weights=(1, 1, 1))
    with pytest.raises(TypeError, match="non-empty list"):
        multi_stage_smooth_l1([], gt)
    with pytest.raises(TypeError, match="non-empty list"):
        multi_stage_smooth_l1(preds[0], gt)
