"""AnyNet speed on CPU: anytime inference FPS and training throughput.

Inference: 384x1248 (KITTI padded to a multiple of 16), batch 1, eval mode, no grad, for 1, 2
and 3 stages and 3 stages + SPN. Training: 256x512 crops, batch 4, Adam, the multi-stage
smooth-L1 loss over all four stages. Random inputs (speed does not depend on the content).

The settings are measured in interleaved rounds, so that load from other processes on a shared
machine spreads over all of them; the reported value uses the median time. Last line::

    RESULT fps_1=<x> fps_2=<x> fps_3=<x> fps_3_spn=<x> train_samples_per_s=<x>

Usage::

    python benchmarks/bench_stereo.py [--quick] [--threads N] [--profile]

OpenMP: unless ``OMP_WAIT_POLICY`` is already set, this script sets it to ``PASSIVE`` before
importing torch. With the default (spinning) policy, a worker thread that finishes early spins
on the core that a descheduled sibling needs; on a 2-core machine shared with other processes
that made every step several times slower (measured: 3 stages 448 ms -> 118 ms, training
17 s -> 1.2 s per step). Run with ``OMP_WAIT_POLICY=ACTIVE`` to measure the default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the OpenMP runtime's start

import torch  # noqa: E402

from lightning_depth.losses.stereo import multi_stage_smooth_l1  # noqa: E402
from lightning_depth.models.anynet import AnyNet  # noqa: E402


def _time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_inference(rounds: int, height: int, width: int) -> dict[str, float]:
    """Median seconds per forward pass for stages 1, 2, 3 and 3 + SPN."""
    model = AnyNet().eval()
    gen = torch.Generator().manual_seed(0)
    left = torch.randn(1, 3, height, width, generator=gen)
    right = torch.randn(1, 3, height, width, generator=gen)
    settings = {"1": 1, "2": 2, "3": 3, "3_spn": 4}
    times: dict[str, list[float]] = {name: [] for name in settings}
    with torch.no_grad():
        for stages in settings.values():  # warm-up: oneDNN primitive creation, allocations
            model(left, right, stages=stages)
        for _ in range(rounds):
            for name, stages in settings.items():
                times[name].append(_time_once(lambda s=stages: model(left, right, stages=s)))
    return {name: statistics.median(t) for name, t in times.items()}


def bench_training(steps: int, batch: int, height: int, width: int) -> float:
    """Median seconds per training step (forward, loss, backward, Adam step)."""
    model = AnyNet().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(0)
    left = torch.randn(batch, 3, height, width, generator=gen)
    right = torch.randn(batch, 3, height, width, generator=gen)
    gt = torch.rand(batch, 1, height, width, generator=gen) * 100

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        total, _ = multi_stage_smooth_l1(model(left, right), gt)
        total.backward()
        optimizer.step()

    step()
    return statistics.median(_time_once(step) for _ in range(steps))


def profile_inference(height: int, width: int, stages: int) -> None:
    """Print the torch.profiler table of a few eval forward passes."""
    from torch.profiler import ProfilerActivity, profile

    model = AnyNet().eval()
    left = torch.randn(1, 3, height, width)
    right = torch.randn(1, 3, height, width)
    with torch.no_grad():
        model(left, right, stages=stages)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(3):
                model(left, right, stages=stages)
    print(
        prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=25
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print a profile of 3 stages + SPN"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rounds, steps = (3, 2) if args.quick else (15, 8)

    print(
        f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
    )
    seconds = bench_inference(rounds, 384, 1248)
    for name, s in seconds.items():
        print(f"inference 384x1248 batch 1, stages {name:>5}: {1000 * s:7.1f} ms  {1 / s:6.2f} FPS")
    spn_share = seconds["3_spn"] / seconds["3"] - 1
    print(f"SPN adds {100 * spn_share:.1f}% to the 3-stage time")
    train_s = bench_training(steps, 4, 256, 512)
    print(f"training 256x512 batch 4: {1000 * train_s:.1f} ms/step  {4 / train_s:.2f} samples/s")
    if args.profile:
        profile_inference(384, 1248, 4)
    fps = {name: 1 / s for name, s in seconds.items()}
    print(
        f"RESULT fps_1={fps['1']:.2f} fps_2={fps['2']:.2f} fps_3={fps['3']:.2f} "
        f"fps_3_spn={fps['3_spn']:.2f} train_samples_per_s={4 / train_s:.2f}"
    )


if __name__ == "__main__":
    main()
