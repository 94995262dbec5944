"""The real benchmarks' bad-pixel rates (Middlebury bad-2.0/4.0, KITTI D1) and the hole
convention, against hand-counted examples and numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_depth.metrics.benchmark import (
    BENCHMARK_METRICS,
    benchmark_metric,
    check_benchmark_metrics,
)
from lightning_depth.metrics.stereo import (
    BadPixelRate,
    EndPointError,
    ThreePixelError,
    bad_pixel_counts,
    bad_pixel_rate_per_sample,
    end_point_error_per_sample,
    three_pixel_error_per_sample,
)

INF, NAN = float("inf"), float("nan")


def _t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def test_bad_pixel_rate_hand_example():
    # gt: 4 pixels with ground truth (inf and 0 have none); errors 1, 3, 5, and a hole
    gt = _t([[10.0, 10.0, 10.0, 10.0, INF, 0.0]])
    pred = _t([[11.0, 13.0, 15.0, NAN, 1.0, 1.0]])
    bad, counted = bad_pixel_counts(pred, gt, 2.0)
    assert (int(bad), int(counted)) == (3, 4)
    torch.testing.assert_close(bad_pixel_rate_per_sample(pred, gt, 2.0), torch.tensor([0.75]))
    torch.testing.assert_close(bad_pixel_rate_per_sample(pred, gt, 4.0), torch.tensor([0.5]))
    # only the hole is bad above 5 px
    torch.testing.assert_close(bad_pixel_rate_per_sample(pred, gt, 5.0), torch.tensor([0.25]))
    # a mask keeps the first two pixels: error 1 (good) and 3 (bad at 2 px)
    mask = torch.tensor([[True, True, False, False, True, True]])[None, None]
    torch.testing.assert_close(
        bad_pixel_rate_per_sample(pred, gt, 2.0, mask=mask), torch.tensor([0.5])
    )


def test_d1_needs_both_the_absolute_and_the_relative_error():
    # gt 100: error 4 is > 3 px but < 5 % (not bad), error 6 is both; gt 10: error 3.5 is both
    gt = _t([[100.0, 100.0, 10.0, 10.0]])
    pred = _t([[104.0, 106.0, 13.5, 12.0]])
    torch.testing.assert_close(bad_pixel_rate_per_sample(pred, gt, 3.0, 0.05), torch.tensor([0.5]))


def test_bad_pixel_rate_matches_numpy_on_random_maps():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1, 80, size=(3, 1, 20, 30)).astype(np.float32)
    gt[rng.random(gt.shape) < 0.2] = np.inf
    pred = (gt + rng.normal(0, 4, size=gt.shape)).astype(np.float32)
    pred[np.isinf(gt)] = 5.0
    pred[rng.random(gt.shape) < 0.05] = np.nan
    mask = rng.random(gt.shape) < 0.7
    for threshold, relative in ((2.0, 0.0), (4.0, 0.0), (3.0, 0.05)):
        valid = np.isfinite(gt) & mask
        err = np.abs(np.nan_to_num(pred, nan=0.0) - gt)
        with np.errstate(invalid="ignore"):  # 0 * inf where gt is unknown
            bad = ((err > threshold) & (err > relative * gt)) | np.isnan(pred)
        expected = [(bad[i] & valid[i]).sum() / valid[i].sum() for i in range(3)]
        got = bad_pixel_rate_per_sample(
            torch.from_numpy(pred),
            torch.from_numpy(gt),
            threshold,
            relative,
            torch.from_numpy(mask),
        )
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_holes_are_errors_in_the_three_pixel_error_and_epe():
    # a NaN prediction is an outlier, and its end-point error is gt (read as disparity 0)
    gt = _t([[20.0, 20.0]])
    pred = _t([[20.5, NAN]])
    torch.testing.assert_close(three_pixel_error_per_sample(pred, gt), torch.tensor([0.5]))
    torch.testing.assert_close(end_point_error_per_sample(pred, gt), torch.tensor([10.25]))
    for metric in (ThreePixelError(), EndPointError()):
        metric.update(pred, gt)
        assert math.isfinite(float(metric.compute()))


def test_sample_and_pixel_reductions():
    # sample 0: 1 of 1 pixel bad; sample 1: 1 of 4 bad
    gt = torch.tensor([[[[10.0, 0.0, 0.0, 0.0]]], [[[10.0, 10.0, 10.0, 10.0]]]])
    pred = torch.tensor([[[[20.0, 0.0, 0.0, 0.0]]], [[[20.0, 10.0, 10.0, 10.0]]]])
    per_sample, pooled = BadPixelRate(2.0), BadPixelRate(2.0, reduction="pixel")
    for metric in (per_sample, pooled):
        metric.update(pred[:1], gt[:1])
        metric.update(pred[1:], gt[1:])
    torch.testing.assert_close(per_sample.compute(), torch.tensor((1.0 + 0.25) / 2))
    torch.testing.assert_close(pooled.compute(), torch.tensor(2 / 5))


def test_nonoccluded_region_needs_the_mask_and_skips_samples_without_one():
    gt = torch.full((2, 1, 1, 2), 10.0)
    pred = torch.tensor([[[[10.0, 20.0]]], [[[20.0, 20.0]]]])
    metric = BadPixelRate(2.0, region="nonoccluded")
    with pytest.raises(ValueError, match="non-occlusion mask"):
        metric.update(pred, gt)
    # sample 0 non-occluded at its good pixel; sample 1 has no mask (all False): skipped
    mask = torch.tensor([[[[True, False]]], [[[False, False]]]])
    metric.update(pred, gt, mask)
    torch.testing.assert_close(metric.compute(), torch.tensor(0.0))
    assert int(metric.samples) == 1


def test_empty_metric_is_nan_and_states_sum_under_ddp():
    metric = BadPixelRate(2.0)
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(float(metric.compute()))
    for state in ("rate_sum", "samples", "bad", "counted"):
        assert metric._reductions[state].__name__ == "dim_zero_sum"


def test_registry_and_errors():
    assert set(BENCHMARK_METRICS) == {"bad2", "bad4", "bad2_noc", "bad4_noc", "d1_all", "d1_noc"}
    d1 = benchmark_metric("d1_noc")
    assert (d1.threshold, d1.relative, d1.region, d1.reduction) == (
        3.0,
        0.05,
        "nonoccluded",
        "pixel",
    )
    with pytest.raises(ValueError, match="unknown benchmark metrics \\['bad3'\\]; known: bad2"):
        check_benchmark_metrics(["bad2", "bad3"])
    with pytest.raises(ValueError, match="region must be one of"):
        BadPixelRate(2.0, region="occluded")
    with pytest.raises(ValueError, match="reduction must be one of"):
        BadPixelRate(2.0, reduction="mean")
    with pytest.raises(ValueError, match="must have shape \\(B, 1, H, W\\)"):
        bad_pixel_rate_per_sample(torch.zeros(2, 3), torch.zeros(2, 3), 2.0)
    with pytest.raises(ValueError, match="mask must have the shape of gt"):
        bad_pixel_counts(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), 2.0, 0.0, torch.ones(2))
    with pytest.raises(ValueError, match="threshold and relative must be >= 0"):
        bad_pixel_counts(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), -1.0)


def test_device(device):
    gt = torch.full((1, 1, 2, 2), 10.0, device=device)
    metric = BadPixelRate(2.0).to(device)
    metric.update(gt + 3, gt)
    assert float(metric.compute()) == 1.0


# -- the stereo task reports them (tasks.stereo's metrics section) ---------------------------


def test_the_stereo_task_reports_the_benchmark_metrics_it_is_given():
    from lightning_depth.models.anynet import AnyNet
    from lightning_depth.tasks.stereo import StereoDepthModule

    task = StereoDepthModule(net=AnyNet(spn_channels=2)).eval()
    assert [h.key for h in task.headlines] == ["3px", "epe"]
    task.use_benchmark_metrics(["bad2", "bad4_noc", "d1_all"])
    assert [h.key for h in task.headlines] == ["3px", "epe", "bad2", "bad4_noc", "d1_all"]
    assert [h.key for h in StereoDepthModule.headlines] == ["3px", "epe"]  # the class keeps its
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 1, 32, 48, generator=g) * 20 + 1
    gt[:, :, :4] = 0  # no ground truth
    nonoccluded = torch.rand(2, 1, 32, 48, generator=g) < 0.6
    batch = {
        "left": torch.randn(2, 3, 32, 48, generator=g),
        "right": torch.randn(2, 3, 32, 48, generator=g),
        "disparity": gt,
        "nonoccluded": nonoccluded,
    }
    values = task.evaluate([batch])
    with torch.no_grad():
        pred = task(batch["left"], batch["right"])[-1].numpy()
    gt_np, noc = gt.numpy(), nonoccluded.numpy()
    err = np.abs(pred - gt_np)
    per_image = [(err[i][gt_np[i] > 0] > 2).mean() for i in range(2)]  # mean over images
    assert values["bad2"] == pytest.approx(np.mean(per_image), abs=1e-6)
    region = (gt_np > 0) & noc
    per_image = [(err[i][region[i]] > 4).mean() for i in range(2)]
    assert values["bad4_noc"] == pytest.approx(np.mean(per_image), abs=1e-6)
    d1 = (err > 3) & (err > 0.05 * gt_np)
    assert values["d1_all"] == pytest.approx(d1[gt_np > 0].mean(), abs=1e-6)  # pooled
    per_sample = task.per_sample_metrics(batch, task(batch["left"], batch["right"]))
    assert per_sample["bad2"].shape == (2,)
    # final-output metrics (exported models are evaluated so) carry them too
    final = task.evaluate([batch], predict=lambda b: task(b["left"], b["right"])[-1])
    assert final["d1_all"] == pytest.approx(values["d1_all"])
    with pytest.raises(ValueError, match="unknown benchmark metrics"):
        task.use_benchmark_metrics(["bad1"])
    task.use_benchmark_metrics(())
    assert "bad2" not in task.evaluate([batch]) and len(task.headlines) == 2
