from __future__ import annotations

import math

import pytest
import torch

from lightning_depth.metrics.depth import METRIC_NAMES, DepthMetrics, depth_metrics_per_sample


def _sample(pred: list[float], target: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(pred).view(1, 1, 1, -1), torch.tensor(target).view(1, 1, 1, -1)


def test_hand_example_in_metric_depth() -> None:
    # Depths (m): target 1, 2, 4, 10; prediction 1.1, 2, 2, 30.
    pred, target = _sample([1.1, 2.0, 2.0, 30.0], [1.0, 2.0, 4.0, 10.0])
    out = depth_metrics_per_sample(pred, target, log_input=False)
    assert out["abs_rel"].item() == pytest.approx((0.1 + 0 + 0.5 + 2.0) / 4)
    assert out["rmse"].item() == pytest.approx(math.sqrt((0.01 + 0 + 4 + 400) / 4), rel=1e-6)
    expected_log10 = (math.log10(1.1) + 0 + math.log10(2) + math.log10(3)) / 4
    assert out["log10"].item() == pytest.approx(expected_log10, rel=1e-6)
    # ratios 1.1, 1, 2, 3: < 1.25 -> 2, < 1.5625 -> 2, < 1.953 -> 2 of 4
    assert out["delta1"].item() == pytest.approx(0.5)
    assert out["delta2"].item() == pytest.approx(0.5)
    assert out["delta3"].item() == pytest.approx(0.5)
    assert out["num_valid"].item() == 4


def test_log_input_is_exponentiated(dtype: torch.dtype) -> None:
    pred, target = _sample([1.1, 2.0, 2.0, 30.0], [1.0, 2.0, 4.0, 10.0])
    lin = depth_metrics_per_sample(pred, target, log_input=False)
    log = depth_metrics_per_sample(pred.log().to(dtype), target.log().to(dtype), log_input=True)
    for k in METRIC_NAMES:
        torch.testing.assert_close(log[k].float(), lin[k], rtol=1e-5, atol=1e-6)


def test_mask_and_invalid_targets_are_skipped() -> None:
    pred, target = _sample([1.0, 5.0, 1.0, 1.0], [1.0, 1.0, 0.0, float("inf")])
    mask = torch.tensor([True, False, True, True]).view(1, 1, 1, 4)
    out = depth_metrics_per_sample(pred, target, mask, log_input=False)
    # Only pixel 0 counts: masked, zero and infinite targets are out.
    assert out["num_valid"].item() == 1
    assert out["abs_rel"].item() == 0.0 and out["delta1"].item() == 1.0


def test_prediction_is_clamped_before_ratios() -> None:
    pred, target = _sample([0.0, -1.0], [1.0, 1.0])
    out = depth_metrics_per_sample(pred, target, log_input=False)
    for k in METRIC_NAMES:
        assert torch.isfinite(out[k]).all(), k
    # -200 in log space underflows to 0 in float32, the clamp keeps log10 finite.
    out = depth_metrics_per_sample(torch.full((1, 1, 1, 2), -200.0), torch.zeros(1, 1, 1, 2))
    assert torch.isfinite(out["log10"]).all()
    assert out["delta3"].item() == 0.0


def test_metric_averages_samples_and_skips_empty_ones() -> None:
    metric = DepthMetrics(log_input=False)
    pred = torch.tensor([[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]]).view(3, 1, 1, 2)
    target = torch.ones(3, 1, 1, 2)
    mask = torch.tensor([[True, True], [True, False], [False, False]]).view(3, 1, 1, 2)
    metric.update(pred, target, mask)
    out = metric.compute()
    # Samples: abs_rel 0 and 1 (the third has no valid pixel and is skipped).
    assert out["abs_rel"].item() == pytest.approx(0.5)
    assert out["rmse"].item() == pytest.approx(0.5)
    assert out["delta1"].item() == pytest.approx(0.5)
    assert metric.num_samples.item() == 2
    per_sample = depth_metrics_per_sample(pred, target, mask, log_input=False)
    assert torch.isnan(per_sample["abs_rel"][2])


def test_two_batches_equal_one_batch() -> None:
    pred = torch.randn(6, 1, 8, 8) * 0.3 + 1.0
    target = torch.randn(6, 1, 8, 8) * 0.3 + 1.0
    mask = torch.rand(6, 1, 8, 8) > 0.3
    mask[4] = False
    one, two = DepthMetrics(), DepthMetrics()
    one.update(pred, target, mask)
    two.update(pred[:2], target[:2], mask[:2])
    two.update(pred[2:], target[2:], mask[2:])
    a, b = one.compute(), two.compute()
    for k in METRIC_NAMES:
        torch.testing.assert_close(a[k], b[k])
    per_sample = depth_metrics_per_sample(pred, target, mask)
    keep = per_sample["num_valid"] > 0
    torch.testing.assert_close(a["abs_rel"], per_sample["abs_rel"][keep].mean())


def test_reset_and_state_reduction() -> None:
    metric = DepthMetrics()
    metric.update(
        torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2, dtype=torch.bool)
    )
    assert metric.compute()["delta1"].item() == 1.0
    metric.reset()
    assert metric.num_samples.item() == 0
    assert all(fx is not None for fx in metric._reductions.values())


def test_errors() -> None:
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match=r"pred must have shape \(B, 1, H, W\), got \(1, 2, 2\)"):
        depth_metrics_per_sample(torch.zeros(1, 2, 2), x)
    with pytest.raises(ValueError, match=r"same shape.*\(1, 1, 2, 2\) and \(1, 1, 2, 3\)"):
        DepthMetrics().update(x, torch.zeros(1, 1, 2, 3), None)
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 1, 2, 2\)"):
        DepthMetrics().update(x, x, torch.ones(1, 1, 3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        depth_metrics_per_sample(x, [[1.0]])
