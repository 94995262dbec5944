from __future__ import annotations

import math

import pytest
import torch

from lightning_depth.metrics.stereo import (
    EndPointError,
    ThreePixelError,
    end_point_error_per_sample,
    three_pixel_error_per_sample,
)


def _hand_batch():
    # Sample 0: gt 100 everywhere; errors 2 (< 3 px), 4 (> 3 px but < 5 %), 6 (outlier), and a
    # pixel beyond maxdisp that does not count. Sample 1: gt 10; error 2 is > 5 % but < 3 px,
    # error 3.5 is an outlier, gt 0 is ignored.
    gt = torch.tensor([[[[100.0, 100.0], [100.0, 300.0]]], [[[10.0, 10.0], [0.0, 10.0]]]])
    pred = torch.tensor([[[[102.0, 104.0], [106.0, 0.0]]], [[[12.0, 13.5], [50.0, 10.0]]]])
    return pred, gt


def test_three_pixel_error_hand_example():
    pred, gt = _hand_batch()
    per_sample = three_pixel_error_per_sample(pred, gt, maxdisp=192)
    torch.testing.assert_close(per_sample, torch.tensor([1 / 3, 1 / 3]))
    # Raising maxdisp lets the gt = 300 pixel (error 300) count.
    torch.testing.assert_close(
        three_pixel_error_per_sample(pred, gt, maxdisp=400), torch.tensor([0.5, 1 / 3])
    )


def test_end_point_error_hand_example():
    pred, gt = _hand_batch()
    torch.testing.assert_close(end_point_error_per_sample(pred, gt), torch.tensor([4.0, 5.5 / 3]))


def test_sample_without_valid_pixels_is_nan_and_skipped():
    pred, gt = _hand_batch()
    gt[1] = 0
    assert math.isnan(float(three_pixel_error_per_sample(pred, gt)[1]))
    metric = ThreePixelError()
    metric.update(pred, gt)
    torch.testing.assert_close(metric.compute(), torch.tensor(1 / 3))
    assert metric.per_sample().shape == (1,)


def test_epoch_value_is_mean_of_samples_and_batches_accumulate():
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(6, 1, 8, 8, generator=gen) * 50
    gt[gt < 5] = 0  # some invalid pixels, different counts per sample
    pred = gt + torch.randn(6, 1, 8, 8, generator=gen) * 4
    for metric_cls, fn in (
        (ThreePixelError, three_pixel_error_per_sample),
        (EndPointError, end_point_error_per_sample),
    ):
        whole, parts = metric_cls(), metric_cls()
        whole.update(pred, gt)
        for sl in (slice(0, 1), slice(1, 4), slice(4, 6)):
            parts.update(pred[sl], gt[sl])
        expected = fn(pred, gt).mean()
        torch.testing.assert_close(whole.compute(), expected)
        torch.testing.assert_close(parts.compute(), expected)
        torch.testing.assert_close(parts.per_sample(), fn(pred, gt))
        parts.reset()
        assert parts.per_sample().numel() == 0
        with pytest.warns(UserWarning, match="before the ``update``"):
            assert math.isnan(float(parts.compute()))


def test_metric_states_use_sum_and_cat_reductions():
    metric = ThreePixelError()
    assert metric._reductions["total"].__name__ == "dim_zero_sum"
    assert metric._reductions["count"].__name__ == "dim_zero_sum"
    assert metric._reductions["values"].__name__ == "dim_zero_cat"


def test_device(device):
    pred, gt = (t.to(device) for t in _hand_batch())
    metric = EndPointError().to(device)
    metric.update(pred, gt)
    assert metric.compute().device == pred.device


def test_errors():
    pred, gt = _hand_batch()
    with pytest.raises(ValueError, match=r"pred and gt must have the same shape \(B, 1, H, W\)"):
        three_pixel_error_per_sample(pred, gt[..., :1])
    with pytest.raises(ValueError, match=r"gt must have shape \(B, 1, H, W\)"):
        end_point_error_per_sample(pred, gt[:, 0])
    with pytest.raises(ValueError, match="maxdisp must be > 0"):
        ThreePixelError(maxdisp=0)
