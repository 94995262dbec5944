"""What of ``benchmarks/bench_gpu.py`` runs without a GPU: its refusal, and the utilisation
sampler behind ``gpu_util`` (with NVML's reading replaced)."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def _bench_gpu():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks/bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_gpu_refuses_without_cuda():
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_gpu.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "needs a CUDA device (torch.cuda.is_available() is False)" in done.stderr


def test_utilization_sampler_averages_nvml_readings(monkeypatch):
    readings = iter([100.0, 60.0, 80.0] + [80.0] * 10_000)
    monkeypatch.setattr(torch.cuda, "utilization", lambda: next(readings))
    with _bench_gpu().UtilizationSampler(period=0.005) as sampler:
        deadline = time.monotonic() + 10
        while len(sampler.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sampler.reason is None and len(sampler.samples) >= 3
    # the first reading only checks NVML; the samples are the readings after it
    assert sampler.samples[:2] == [60.0, 80.0]
    assert sampler.mean == sum(sampler.samples) / len(sampler.samples)


def test_utilization_sampler_says_why_without_nvml(monkeypatch):
    def missing():
        raise ModuleNotFoundError("pynvml does not seem to be installed")

    monkeypatch.setattr(torch.cuda, "utilization", missing)
    with _bench_gpu().UtilizationSampler() as sampler:
        pass
    assert math.isnan(sampler.mean) and "pynvml does not seem" in sampler.reason


def test_pipeline_trains_from_shards_with_both_augmentation_paths(tmp_path):
    """The pipeline part run on the CPU at toy sizes: each run trains from the shards the
    benchmark wrote, the task receives augmented float views (the packed draws consumed by
    the transfer hook in the device run), and the rate counts exactly the timed steps."""
    steps, warmup, batch = 9, 2, 2  # 11 training scenes: 6 steps an epoch, so two epochs
    figures, timers = _bench_gpu().bench_pipeline(
        tmp_path,
        accelerator="cpu",
        steps=steps,
        warmup=warmup,
        scenes=12,
        size=(64, 128),
        crop=(32, 64),
        batch=batch,
        workers=0,
        precision="32-true",
    )
    assert sorted(figures) == ["pipeline_samples_s_device", "pipeline_samples_s_worker"]
    shards = sorted(p.name for p in (tmp_path / "shards").iterdir())
    assert shards == ["train", "val"]
    for timer in timers.values():
        assert timer.steps == steps
        assert timer.samples == (steps - warmup) * batch - 1  # epoch 1's last batch holds one
        assert timer.rate == timer.samples / (timer.end - timer.start) > 0
        assert timer.view_dtype == torch.float32 and "augment" not in timer.batch_keys
        assert timer.sampler is None
    key = "pipeline_samples_s_device"
    assert figures[key] == timers[True].rate


def test_to_channels_last_converts_2d_and_3d_weights_and_keeps_the_outputs():
    from lightning_depth.models.anynet import AnyNet
    from lightning_depth.models.native import kernels_enabled

    torch.manual_seed(0)
    plain = AnyNet(spn_channels=2).eval()
    converted = _bench_gpu().to_channels_last(AnyNet(spn_channels=2).eval())
    converted.load_state_dict(plain.state_dict())  # copies values, keeps the layouts
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    dims = {p.dim() for p in converted.parameters()}
    assert {4, 5} <= dims
    for p in converted.parameters():
        if p.dim() in formats:
            assert p.is_contiguous(memory_format=formats[p.dim()])
    # most kernels (more than one input channel and tap) are no longer in the default layout
    assert sum(not p.is_contiguous() for p in converted.parameters()) > 10
    left, right = torch.randn(2, 1, 3, 32, 64).unbind(0)
    with torch.no_grad(), kernels_enabled(False):
        expected = plain(left, right)
        got = converted(*(x.contiguous(memory_format=torch.channels_last) for x in (left, right)))
    for a, b in zip(expected, got):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
