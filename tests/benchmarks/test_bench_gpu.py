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
