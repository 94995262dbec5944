"""AnyNet speed on CPU: anytime inference FPS, the SPN's share, and training throughput.

Inference: 384x1248 (KITTI padded to a multiple of 16), batch 1, eval mode, no grad, for 1, 2
and 3 stages and 3 stages + SPN. Training: 256x512 crops, batch 4, Adam, the multi-stage
smooth-L1 loss over all four stages. Random inputs (speed does not depend on the content).

Two paths are timed. The default one, which the ``fps_*`` and ``train_samples_per_s`` keys
report, uses the C kernels of ``lightning_depth.models.native`` where they apply (built at the
first use with the system C compiler; the first lines say whether they are available): in
inference the SPN, the few-output-channel convolutions, the 3D layers' tap sums with the next
batch norm, the 2x2 max pooling; in training the SPN's forward and backward. The ``*_torch``
keys time the same model with the kernels disabled (``native.kernels_enabled(False)``: the
pure-PyTorch forms, as before the kernels); ``kernel_speedup`` is the median, over rounds, of
the per-round time ratio PyTorch forms / kernels for 3 stages + SPN, and ``spn_overhead`` is
``time(3 stages + SPN) / time(3 stages) - 1`` on the default path, likewise the median of the
per-round ratios (measured back to back, so that load drifting between rounds cancels; the
ratio of the medians, ``fps_3 / fps_3_spn - 1``, is printed above the RESULT line too, and
``spn_overhead_torch`` is that ratio for the PyTorch forms).

The settings are measured in interleaved rounds, so that load from other processes on a shared
machine spreads over all of them; the reported values use the median time. Last line::

    RESULT fps_1=<x> fps_2=<x> fps_3=<x> fps_3_spn=<x> train_samples_per_s=<x>
           spn_overhead=<x> fps_3_torch=<x> fps_3_spn_torch=<x> spn_overhead_torch=<x>
           kernel_speedup=<x> train_samples_per_s_torch=<x>

(one line). Usage::

    python benchmarks/bench_stereo.py [--quick] [--threads N] [--profile] [--default-malloc]

Memory: unless ``--default-malloc`` is given, the script first calls
``native.retain_freed_memory()`` (glibc keeps freed memory for reuse instead of returning it to
the system and faulting it in again: 4,000-8,000 page faults and 12-20 ms of system time per
pass at 384x1248 otherwise). It changes no result; the first lines say whether it applied.

OpenMP: the script leaves ``OMP_WAIT_POLICY`` as the environment sets it, so the figures are
what a program started the usual way gets (libgomp's default: idle threads spin a while before
they sleep). On a quiet machine that is the fastest setting: the C kernels run on PyTorch's own
OpenMP threads, which are still awake between operators (measured on the 2-core machine:
3 stages + SPN 29 ms by default, 44 ms with ``OMP_WAIT_POLICY=PASSIVE``, whose sleeping
threads are woken for each of the ~150 parallel regions of a pass). On a machine shared with
other processes, spinning threads take cores that a descheduled sibling needs; there
``OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_stereo.py`` measures the robust setting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from lightning_depth.losses.stereo import multi_stage_smooth_l1
from lightning_depth.models import native
from lightning_depth.models.anynet import AnyNet


def _time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_inference(rounds: int, height: int, width: int) -> dict[str, list[float]]:
    """Seconds per forward pass, one value per round, for stages 1, 2, 3 and 3 + SPN with the
    C kernels (where available) and for 3 and 3 + SPN without them (``*_torch``)."""
    model = AnyNet().eval()
    gen = torch.Generator().manual_seed(0)
    left = torch.randn(1, 3, height, width, generator=gen)
    right = torch.randn(1, 3, height, width, generator=gen)
    settings = {
        "1": (1, True),
        "2": (2, True),
        "3": (3, True),
        "3_spn": (4, True),
        "3_torch": (3, False),
        "3_spn_torch": (4, False),
    }

    def run(stages: int, kernels: bool) -> None:
        with native.kernels_enabled(kernels):
            model(left, right, stages=stages)

    times: dict[str, list[float]] = {name: [] for name in settings}
    with torch.no_grad():
        for stages, kernels in settings.values():  # warm-up: oneDNN primitives, allocations
            run(stages, kernels)
        for _ in range(rounds):
            for name, (stages, kernels) in settings.items():
                times[name].append(_time_once(lambda s=stages, k=kernels: run(s, k)))
    return times


def bench_training(steps: int, batch: int, height: int, width: int) -> dict[str, float]:
    """Median seconds per training step (forward, loss, backward, Adam step), with the SPN's
    C kernels (``default``) and with its PyTorch form (``torch``), interleaved."""
    model = AnyNet().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(0)
    left = torch.randn(batch, 3, height, width, generator=gen)
    right = torch.randn(batch, 3, height, width, generator=gen)
    gt = torch.rand(batch, 1, height, width, generator=gen) * 100

    def step(kernels: bool) -> None:
        with native.kernels_enabled(kernels):
            optimizer.zero_grad(set_to_none=True)
            total, _ = multi_stage_smooth_l1(model(left, right), gt)
            total.backward()
            optimizer.step()

    step(True)
    step(False)
    times: dict[str, list[float]] = {"default": [], "torch": []}
    for _ in range(steps):
        times["default"].append(_time_once(lambda: step(True)))
        times["torch"].append(_time_once(lambda: step(False)))
    return {name: statistics.median(t) for name, t in times.items()}


def profile_inference(height: int, width: int, stages: int) -> None:
    """Print the torch.profiler table of a few eval forward passes (default path)."""
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
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc as it is (no native.retain_freed_memory())",
    )
    args = parser.parse_args()
    retained = False if args.default_malloc else native.retain_freed_memory()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rounds, steps = (3, 2) if args.quick else (40, 8)

    print(
        f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}, "
        f"freed memory retained: {retained}"
    )
    kernels = native.native_kernels()
    print(
        f"C kernels: {'available, ' + str(kernels.path) if kernels.available else kernels.reason}"
        " (the default path uses them where available); threads: "
        f"{'OpenMP (PyTorch pool)' if kernels.available and native.uses_openmp(kernels.library) else 'Python'}"
    )
    times = bench_inference(rounds, 384, 1248)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    for name, s in seconds.items():
        print(
            f"inference 384x1248 batch 1, stages {name:>11}: {1000 * s:7.1f} ms  {1 / s:6.2f} FPS"
        )
    medians_overhead = seconds["3_spn"] / seconds["3"] - 1
    spn_overhead_torch = seconds["3_spn_torch"] / seconds["3_torch"] - 1
    # Ratios within a round are measured back to back, so load drifts cancel in them.
    kernel_speedup = statistics.median(t / k for t, k in zip(times["3_spn_torch"], times["3_spn"]))
    spn_overhead = statistics.median(s / t - 1 for s, t in zip(times["3_spn"], times["3"]))
    print(
        f"SPN adds {100 * spn_overhead:.1f}% to the 3-stage time (median of per-round ratios; "
        f"ratio of the medians {100 * medians_overhead:.1f}%); without the C kernels "
        f"{100 * spn_overhead_torch:.1f}% (ratio of the medians)"
    )
    print(f"C kernels speed 3 stages + SPN up {kernel_speedup:.2f}x (median per-round ratio)")
    train_s = bench_training(steps, 4, 256, 512)
    for name, s in train_s.items():
        print(f"training 256x512 batch 4 ({name}): {1000 * s:.1f} ms/step  {4 / s:.2f} samples/s")
    if args.profile:
        profile_inference(384, 1248, 4)
    fps = {name: 1 / s for name, s in seconds.items()}
    print(
        f"RESULT fps_1={fps['1']:.2f} fps_2={fps['2']:.2f} fps_3={fps['3']:.2f} "
        f"fps_3_spn={fps['3_spn']:.2f} train_samples_per_s={4 / train_s['default']:.2f} "
        f"spn_overhead={spn_overhead:.3f} fps_3_torch={fps['3_torch']:.2f} "
        f"fps_3_spn_torch={fps['3_spn_torch']:.2f} spn_overhead_torch={spn_overhead_torch:.3f} "
        f"kernel_speedup={kernel_speedup:.2f} "
        f"train_samples_per_s_torch={4 / train_s['torch']:.2f}"
    )


if __name__ == "__main__":
    main()
