"""``benchmarks/bench_real.py --quick`` with the tiny demo checkpoints: its RESULT keys, and
its SGBM, AnyNet and mono figures against computations made here (OpenCV and numpy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import demo_checkpoints

REPO = Path(__file__).resolve().parents[2]
KEYS = (
    "sgbm_3px sgbm_epe sgbm_filled_3px sgbm_filled_epe anynet_3px_s1 anynet_3px_s2 "
    "anynet_3px_s3 anynet_3px_spn anynet_epe_s1 anynet_epe_s2 anynet_epe_s3 anynet_epe_spn "
    "anynet_x2_3px_s3 anynet_x2_3px_spn anynet_x2_epe_s3 anynet_x2_epe_spn "
    "mono_absrel mono_delta1 mono_baseline_absrel mono_baseline_delta1 seconds"
).split()
# written out here, not taken from the package
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
F, BASELINE, DOFFS = 994.978, 0.193001, 31.086


def _d1_and_epe(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """3-px error (percent, KITTI D1) and EPE over finite gt; NaN predictions are errors
    read as disparity 0."""
    valid = np.isfinite(gt)
    hole = np.isnan(pred)
    err = np.abs(np.where(hole, 0.0, pred) - gt)[valid]
    bad = ((err > 3) & (err > 0.05 * gt[valid])) | hole[valid]
    return 100.0 * bad.mean(), err.mean()


def _run(*args: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_real.py", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("RESULT "), done.stdout
    return dict(item.split("=", 1) for item in line.split()[1:])


@pytest.mark.slow
def test_quick_bench_real_reports_what_opencv_and_numpy_compute(tmp_path):
    from skimage.data import stereo_motorcycle

    from lightning_depth.deploy.checkpoints import load_task

    ckpts = demo_checkpoints(tmp_path)
    result = _run("--quick", "--no-pretrained", f"--stereo-ckpt={ckpts['stereo']}",
                  f"--mono-ckpt={ckpts['mono']}", f"--figure={tmp_path / 'fig.png'}")  # fmt: skip
    assert list(result) == KEYS
    assert (tmp_path / "fig.png").is_file()

    left, right, gt = stereo_motorcycle()
    gt = np.where(np.isfinite(gt), gt, np.inf)
    # SGBM as the docstring states its best setting: 64 disparities, block 3, uniqueness 5
    sgbm = cv2.StereoSGBM_create(
        minDisparity=0, numDisparities=64, blockSize=3, P1=8 * 3 * 9, P2=32 * 3 * 9,
        disp12MaxDiff=1, uniquenessRatio=5, speckleWindowSize=0, speckleRange=0,
        preFilterCap=63, mode=cv2.STEREO_SGBM_MODE_SGBM,
    )  # fmt: skip
    raw = sgbm.compute(left[..., ::-1].copy(), right[..., ::-1].copy()).astype(np.float32) / 16
    sgbm_disparity = np.where(raw < 0, np.nan, raw)
    three, epe = _d1_and_epe(sgbm_disparity, gt)
    assert float(result["sgbm_3px"]) == pytest.approx(three, abs=1e-6)
    assert float(result["sgbm_epe"]) == pytest.approx(epe, abs=1e-5)
    assert 15.0 < three < 20.0  # the 17.3 %

    # AnyNet: every stage of the checkpoint, run here
    task = load_task(ckpts["stereo"]).eval()

    def encode(image: np.ndarray) -> torch.Tensor:
        x = (image / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return torch.from_numpy(x.astype(np.float32).transpose(2, 0, 1))[None]

    with torch.no_grad():
        stages = [s[0, 0].numpy() for s in task(encode(left), encode(right))]
    for suffix, pred in zip(("s1", "s2", "s3", "spn"), stages):
        three, epe = _d1_and_epe(pred, gt)
        assert float(result[f"anynet_3px_{suffix}"]) == pytest.approx(three, abs=1e-4)
        assert float(result[f"anynet_epe_{suffix}"]) == pytest.approx(epe, rel=1e-5)
    # The pair at twice its size (1000x1482, bilinear), disparities back (bilinear) and halved.
    big = [cv2.resize(v, (1482, 1000), interpolation=cv2.INTER_LINEAR) for v in (left, right)]
    with torch.no_grad():
        stages = [s[0, 0].numpy() for s in task(encode(big[0]), encode(big[1]))]
    for suffix, pred in (("s3", stages[2]), ("spn", stages[3])):
        back = cv2.resize(pred, (741, 500), interpolation=cv2.INTER_LINEAR) / 2
        three, epe = _d1_and_epe(back, gt)
        assert float(result[f"anynet_x2_3px_{suffix}"]) == pytest.approx(three, abs=1e-4)
        assert float(result[f"anynet_x2_epe_{suffix}"]) == pytest.approx(epe, rel=1e-5)

    # mono: depth from the ground truth, the median-scaled constant as the baseline
    valid = np.isfinite(gt)
    depth = F * BASELINE / (gt[valid] + DOFFS)
    constant = np.median(depth)
    assert float(result["mono_baseline_absrel"]) == pytest.approx(
        np.mean(np.abs(constant - depth) / depth), rel=1e-5
    )
    ratio = np.maximum(constant / depth, depth / constant)
    assert float(result["mono_baseline_delta1"]) == pytest.approx(np.mean(ratio < 1.25), abs=1e-6)
    assert 0.0 < float(result["mono_absrel"]) < 1.0 and 0.0 < float(result["mono_delta1"]) <= 1.0


@pytest.mark.slow
def test_models_not_given_are_nan_and_said_so():
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_real.py", "--quick", "--no-pretrained"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = dict(item.split("=", 1) for item in done.stdout.splitlines()[-1].split()[1:])
    assert result["anynet_3px_spn"] == result["mono_absrel"] == "nan"
    assert float(result["sgbm_3px"]) > 0 and float(result["mono_baseline_absrel"]) > 0
    assert "no stereo model (pass --stereo-ckpt" in done.stdout
    assert "no mono model (pass --mono-ckpt" in done.stdout
