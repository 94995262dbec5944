"""CPU training throughput of the mono depth autoencoder against a float32 matmul.

One training step is ``forward -> faithful MonoDepthLoss -> backward -> Adam step`` on random
data (batch 8, 256x256 by default). Its useful work is counted once with
``torch.utils.flop_counter.FlopCounterMode`` on the plain eager model (convolutions; the
element-wise work is not counted), and its rate is compared with a large float32 matmul
measured in the same run, interleaved with the steps (a matmul before and after every
step), so that load from other processes on a shared machine hits both alike.

The CPU options (all keep float32 numerics; see ``optimize_for_cpu`` in
``lightning_depth/models/autoencoder.py``):

- ``channels_last``: NHWC activations and weights, which oneDNN convolves without reordering.
- ``compile``: ``torch.compile`` (inductor) of network + loss, which fuses batch norm,
  activations, the residual adds, the concatenations and the loss into a few C++ loops.
- ``fused_adam``: ``torch.optim.Adam(fused=True)``, one kernel for the optimizer step.
- ``OMP_WAIT_POLICY=PASSIVE`` (set here unless the environment sets it; OpenMP reads it when
  torch loads, so export it before starting a training run too): idle OpenMP threads sleep
  instead of spinning. On a CPU shared with other processes, spinning threads steal the
  cores the other threads of the same step wait for; compare with
  ``OMP_WAIT_POLICY=ACTIVE python benchmarks/bench_mono.py``.

Usage::

    python benchmarks/bench_mono.py                # depth 4 and 3, best options
    python benchmarks/bench_mono.py --ablation     # also each option added one at a time
    python benchmarks/bench_mono.py --quick        # smoke run (tiny sizes, not comparable)

The last line is ``RESULT train_vs_matmul_414=<x> train_vs_matmul_313=<y>
samples_per_s_414=<z> port_vs_keras_414=<r> port_vs_keras_313=<r>``: the Keras reference's
training step (``reference_keras``, the full original loss and Adam) is timed on the same
batch shape in the same run (``--no-keras`` skips it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

# Before torch loads OpenMP, which reads it once (see the module docstring).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from lightning_depth.losses.mono import MonoDepthLoss  # noqa: E402
from lightning_depth.models.autoencoder import DepthAutoencoder  # noqa: E402


@dataclass(frozen=True)
class StepOptions:
    """CPU options of the training step."""

    channels_last: bool = True
    compile: bool = True
    fused_adam: bool = True

    def label(self) -> str:
        on = [name for name in ("channels_last", "compile", "fused_adam") if getattr(self, name)]
        return "+".join(on) if on else "eager"


def make_batch(batch_size: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images ``(B, 3, S, S)`` in [0, 1] and log-depth targets ``(B, 1, S, S)``."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch_size, 3, size, size, generator=g)
    target = 0.1 + 5.6 * torch.rand(batch_size, 1, size, size, generator=g)
    return image, target


def build_training_step(
    depth: int = 4, batch_size: int = 8, size: int = 256, options: StepOptions = StepOptions()
) -> Callable[[], torch.Tensor]:
    """A closure running one training step (forward, faithful loss, backward, Adam step).

    Returns:
        ``step() -> loss`` (a detached scalar).
    """
    torch.manual_seed(0)
    net = DepthAutoencoder(depth=depth)
    loss_fn = MonoDepthLoss()
    image, target = make_batch(batch_size, size)
    if options.channels_last:
        net = net.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)
    # Keras' Adam: lr 2e-4, epsilon 1e-7.
    optimizer = torch.optim.Adam(
        net.parameters(), lr=2e-4, eps=1e-7, fused=options.fused_adam or None
    )

    def forward_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(net(x), y)["loss"]

    if options.compile:
        # A fresh compilation per configuration: dynamo caches by code object, and this
        # closure's code is shared by every step built here.
        torch._dynamo.reset()
        forward = torch.compile(forward_loss)
    else:
        forward = forward_loss

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = forward(image, target)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def count_step_flops(depth: int = 4, batch_size: int = 8, size: int = 256) -> int:
    """FLOPs of one training step of the plain eager model (the work, whatever the options)."""
    step = build_training_step(depth, batch_size, size, StepOptions(False, False, False))
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def matmul_gflops(n: int = 2048, repeats: int = 3, _cache: dict = {}) -> float:  # noqa: B006
    """GFLOP/s of ``repeats`` float32 ``(n, n) @ (n, n)`` products (operands cached)."""
    if n not in _cache:
        g = torch.Generator().manual_seed(0)
        _cache[n] = (torch.randn(n, n, generator=g), torch.randn(n, n, generator=g))
    a, b = _cache[n]
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2.0 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def time_training_step(
    step: Callable[[], Any],
    steps: int = 5,
    warmup: int = 2,
    between: Optional[Callable[[], Any]] = None,
) -> list[float]:
    """Wall-clock seconds of ``steps`` calls of ``step`` after ``warmup`` untimed calls.

    Framework independent (works for a Keras ``train_on_batch`` closure too). ``between`` is
    called before every timed step and after the last, untimed (e.g. a matmul probe).
    """
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        if between is not None:
            between()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if between is not None:
        between()
    return times


@dataclass
class Measurement:
    label: str
    step_s: float  # median seconds per step
    samples_per_s: float
    gflops: float  # useful GFLOP/s of the step
    matmul_gflops: float  # median matmul GFLOP/s probed around the steps
    ratio: float  # median over steps of (step GFLOP/s) / (matmul GFLOP/s around that step)
    best_ratio: float  # best step against the median matmul (the least disturbed one)


def measure(
    step: Callable[[], Any],
    flops: int,
    batch_size: int,
    steps: int,
    warmup: int,
    matmul_n: int = 2048,
    label: str = "",
) -> Measurement:
    """Time ``step`` interleaved with matmul probes and compare the rates."""
    probes: list[float] = []
    times = time_training_step(
        step, steps, warmup, between=lambda: probes.append(matmul_gflops(matmul_n))
    )
    # The probe before and after each step bracket it.
    around = [(probes[i] + probes[i + 1]) / 2 for i in range(steps)]
    ratios = [flops / t / 1e9 / m for t, m in zip(times, around)]
    step_s = statistics.median(times)
    mm = statistics.median(probes)
    return Measurement(
        label=label,
        step_s=step_s,
        samples_per_s=batch_size / step_s,
        gflops=flops / step_s / 1e9,
        matmul_gflops=mm,
        ratio=statistics.median(ratios),
        best_ratio=flops / min(times) / 1e9 / mm,
    )


def _print(m: Measurement) -> None:
    print(
        f"  {m.label:<40s} step {m.step_s * 1e3:8.1f} ms  {m.samples_per_s:6.2f} samples/s  "
        f"{m.gflops:6.1f} GFLOP/s  matmul {m.matmul_gflops:6.1f} GFLOP/s  "
        f"ratio {m.ratio:.3f} (best step {m.best_ratio:.3f})",
        flush=True,
    )


def run(
    depth: int,
    batch_size: int,
    size: int,
    steps: int,
    warmup: int,
    options: StepOptions,
    matmul_n: int,
) -> Measurement:
    flops = count_step_flops(depth, batch_size, size)
    step = build_training_step(depth, batch_size, size, options)
    start = time.perf_counter()
    step()  # compiles when asked to
    first = time.perf_counter() - start
    label = f"{depth}-1-{depth} {options.label()}"
    m = measure(step, flops, batch_size, steps, max(warmup - 1, 0), matmul_n, label)
    print(f"  ({label}: {flops / 1e9:.1f} GFLOP/step, first step {first:.1f} s)", flush=True)
    _print(m)
    return m


def keras_samples_per_s(depth: int, batch_size: int, size: int, steps: int, warmup: int) -> float:
    """Training throughput of the Keras reference (``reference_keras``, the original
    ``train_step`` with the full original loss and Adam) on the same batch shape."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reference_keras/
    import numpy as np

    import reference_keras as rk

    model = rk.build_model(depth=depth, height=size, width=size)
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, size, size, 3), dtype=np.float32)
    y = rng.random((batch_size, size, size, 1), dtype=np.float32)
    times = time_training_step(lambda: model.train_on_batch(x, y), steps, warmup)
    return batch_size / statistics.median(times)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=7, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (the first compiles)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="square input size")
    parser.add_argument("--matmul-n", type=int, default=2048, help="size of the matmul probe")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--ablation", action="store_true", help="also time each option alone")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, few steps")
    parser.add_argument(
        "--no-keras", action="store_true", help="skip the Keras reference (needs the parity extra)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.batch_size, args.size, args.matmul_n = 2, 1, 2, 64, 512
    if args.threads:
        torch.set_num_threads(args.threads)
    best = StepOptions(compile=not args.no_compile)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"{args.size}x{args.size}, {args.steps} steps after {args.warmup} warm-up, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; "
        "shared CPU: numbers move with other load, ratios are taken against matmuls run "
        "between the steps",
        flush=True,
    )
    if args.ablation:
        print("ablation, 4-1-4:", flush=True)
        for options in (
            StepOptions(False, False, False),
            StepOptions(True, False, False),
            StepOptions(True, False, True),
            StepOptions(False, not args.no_compile, True),
        ):  # the best (all on) follows below
            run(4, args.batch_size, args.size, args.steps, args.warmup, options, args.matmul_n)
    print("best options:", flush=True)
    m4 = run(4, args.batch_size, args.size, args.steps, args.warmup, best, args.matmul_n)
    m3 = run(3, args.batch_size, args.size, args.steps, args.warmup, best, args.matmul_n)
    result = (
        f"RESULT train_vs_matmul_414={m4.ratio:.3f} train_vs_matmul_313={m3.ratio:.3f} "
        f"samples_per_s_414={m4.samples_per_s:.2f}"
    )
    if not args.no_keras:
        print("Keras reference (reference_keras, original train_step and loss):", flush=True)
        for depth, m in ((4, m4), (3, m3)):
            keras = keras_samples_per_s(depth, args.batch_size, args.size, args.steps, args.warmup)
            print(
                f"  {depth}-1-{depth} keras {keras:6.2f} samples/s, port {m.samples_per_s:6.2f}: "
                f"port/keras {m.samples_per_s / keras:.2f}x",
                flush=True,
            )
            result += f" port_vs_keras_{depth}1{depth}={m.samples_per_s / keras:.2f}"
    print(result)


if __name__ == "__main__":
    main()
