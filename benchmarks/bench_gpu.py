"""GPU speed of both models in float32, 16-mixed and bf16-mixed (needs a CUDA device).

What Lightning's ``precision="16-mixed"`` / ``"bf16-mixed"`` do per step, written out so the
step itself is timed: the forward and loss under ``torch.autocast``, a ``GradScaler`` for
float16, fused Adam. Random inputs (speed does not depend on the content).

- mono: 4-1-4 autoencoder, faithful loss, batch 32 at 256x256 (the Keras example's setting),
  training samples/s; ``mono_train_bf16_cl`` with channels-last weights and inputs.
- stereo: AnyNet with SPN-8: inference at 384x1248 (KITTI padded to 16), batch 1, ms per pass
  for 1, 2, 3 stages and 3 + SPN (``spn_overhead`` = 3 + SPN over 3 stages, minus 1); the SPN
  alone at its 1/4 resolution (gate network, lift, propagation, projection): ``spn_ms`` with
  the default backend (the Triton kernels where Triton imports) and ``spn_ms_torch`` with the
  PyTorch column loop; training at 256x512 crops, batch 8, samples/s (``_bf16_cl``:
  channels-last 2D and 3D weights and inputs).
- ``gpu_util``: the GPU's utilisation in percent (NVML, through ``torch.cuda.utilization``,
  sampled every 20 ms while the float32 stereo training steps run; ``nan`` where NVML is not
  installed: ``pip install nvidia-ml-py``).
- pipeline (skip with ``--no-pipeline``): AnyNet + SPN-8 trained through Lightning
  (bf16-mixed, batch 8, 256x512 crops with ``augment: true``) from litdata shards of 240
  generated things scenes, written first (not timed); once with the
  augmentation in the loader workers, once on the device (``augment_on_device``):
  ``pipeline_samples_s_worker`` / ``_device`` over 60 steps after 20 of warm-up, and the GPU's
  mean utilisation meanwhile, ``pipeline_gpu_util_worker`` / ``_device``. This is the issue's
  "the loader keeps up" figure; the random-input ``stereo_train_*`` rates above are the ceiling.
- compiled (only with ``--compile MODE``): bf16 training of both models compiled in place
  with ``torch.compile`` (as ``lightning_depth.callbacks.CompileNetwork`` does in a fit;
  ``MODE`` ``default``, ``reduce-overhead`` for CUDA graphs, or ``max-autotune``),
  ``mono_train_bf16_compiled`` and ``stereo_train_bf16_compiled``; the first (warm-up) steps
  compile, which is not timed.

Each setting is timed with ``torch.cuda.synchronize`` around ``--steps`` steps after warm-up;
the median of 3 repeats is reported. Last line::

    RESULT mono_train_fp32=<samples/s> mono_train_fp16=... mono_train_bf16=...
           mono_train_bf16_cl=... [mono_train_bf16_compiled=...] stereo_ms_1=...
           stereo_ms_2=... stereo_ms_3=... stereo_ms_3_spn=... stereo_ms_3_spn_fp16=...
           spn_overhead=... spn_ms=... spn_ms_torch=... stereo_train_fp32=... gpu_util=...
           stereo_train_fp16=... stereo_train_bf16=... stereo_train_bf16_cl=...
           [stereo_train_bf16_compiled=...]
           pipeline_samples_s_worker=... pipeline_gpu_util_worker=...
           pipeline_samples_s_device=... pipeline_gpu_util_device=...

Usage::

    python benchmarks/bench_gpu.py [--steps N] [--workers N] [--no-pipeline] [--compile MODE]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import lightning as L
import torch

from lightning_depth.data.monkaa import MonkaaDataModule, synthesize_monkaa
from lightning_depth.data.prepare import main as prepare
from lightning_depth.losses.mono import MonoDepthLoss
from lightning_depth.losses.stereo import multi_stage_smooth_l1
from lightning_depth.models.anynet import AnyNet
from lightning_depth.models.autoencoder import DepthAutoencoder
from lightning_depth.tasks.stereo import StereoDepthModule

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def _median_seconds(fn: Callable[[], object], steps: int, repeats: int = 3) -> float:
    """Median over ``repeats`` of the mean seconds per call of ``steps`` calls."""
    for _ in range(3):  # warm-up: cuDNN autotuning, allocator, lazy init
        fn()
    torch.cuda.synchronize()
    results = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
        results.append((time.perf_counter() - start) / steps)
    return statistics.median(results)


class UtilizationSampler:
    """Samples ``torch.cuda.utilization()`` (NVML) every ``period`` seconds in a thread while
    in its ``with`` block; :attr:`mean` is the mean percentage (``nan`` without NVML)."""

    def __init__(self, period: float = 0.02) -> None:
        self.period = period
        self.samples: list[float] = []
        self.reason: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> UtilizationSampler:
        try:
            torch.cuda.utilization()
        except Exception as e:  # ModuleNotFoundError (pynvml) or an NVML error
            self.reason = f"{type(e).__name__}: {e}"
            return self
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(float(torch.cuda.utilization()))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) if self.samples else math.nan


def training_step(
    model: torch.nn.Module,
    loss_fn: Callable[[object], torch.Tensor],
    inputs: tuple[torch.Tensor, ...],
    half: Optional[torch.dtype],
) -> Callable[[], None]:
    """One optimiser step as Lightning's mixed-precision plugin runs it."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    scaler = torch.amp.GradScaler("cuda", enabled=half == torch.float16)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=half or torch.float32, enabled=half is not None):
            loss = loss_fn(model(*inputs))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def to_channels_last(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` with its 4D weights channels-last and its 5D weights channels-last-3d, in
    place (``Module.to(memory_format=...)`` refuses a model that has both)."""
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    for param in net.parameters():
        if param.dim() in formats:
            param.data = param.data.contiguous(memory_format=formats[param.dim()])
    return net


def fresh_step(
    make_net: Callable[[], torch.nn.Module],
    loss_fn: Callable[[object], torch.Tensor],
    inputs: tuple[torch.Tensor, ...],
    half: Optional[torch.dtype],
    channels_last: bool = False,
    compile_mode: Optional[str] = None,
) -> Callable[[], None]:
    """:func:`training_step` of a network from ``make_net`` (seeded, on the GPU, in training
    mode); with ``channels_last`` its weights and ``inputs`` channels-last, with
    ``compile_mode`` compiled in place (``nn.Module.compile``; ``"default"`` is mode None)."""
    torch.manual_seed(0)
    net = make_net().cuda().train()
    if channels_last:
        net = to_channels_last(net)
        inputs = tuple(x.contiguous(memory_format=torch.channels_last) for x in inputs)
    if compile_mode:
        net.compile(mode=None if compile_mode == "default" else compile_mode)
    return training_step(net, loss_fn, inputs, half)


def bench_mono(
    steps: int, batch: int = 32, size: int = 256, compile_mode: Optional[str] = None
) -> dict[str, float]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    image = torch.rand(batch, 3, size, size, device="cuda", generator=gen)
    target = torch.rand(batch, 1, size, size, device="cuda", generator=gen) * 2 - 1
    loss = MonoDepthLoss()

    def rate(half: Optional[torch.dtype], **options) -> float:
        step = fresh_step(
            lambda: DepthAutoencoder(depth=4),
            lambda pred: loss(pred, target)["loss"],
            (image,),
            half,
            **options,
        )
        return batch / _median_seconds(step, steps)

    out = {f"mono_train_{name}": rate(half) for name, half in PRECISIONS.items()}
    # bf16 with channels-last weights and inputs (NHWC, what tensor cores take)
    out["mono_train_bf16_cl"] = rate(torch.bfloat16, channels_last=True)
    if compile_mode:
        out["mono_train_bf16_compiled"] = rate(torch.bfloat16, compile_mode=compile_mode)
    return out


def bench_stereo(
    steps: int, batch: int = 8, compile_mode: Optional[str] = None
) -> dict[str, float]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    out = {}
    torch.manual_seed(0)
    net = AnyNet(spn_channels=8).cuda().eval()
    left, right = (torch.randn(1, 3, 384, 1248, device="cuda", generator=gen) for _ in range(2))
    with torch.no_grad():
        for name, stages in (("1", 1), ("2", 2), ("3", 3), ("3_spn", 4)):
            ms = 1000 * _median_seconds(lambda s=stages: net(left, right, stages=s), steps)
            out[f"stereo_ms_{name}"] = ms
        with torch.autocast("cuda", dtype=torch.float16):
            ms = 1000 * _median_seconds(lambda: net(left, right), steps)
        out["stereo_ms_3_spn_fp16"] = ms
        out["spn_overhead"] = out["stereo_ms_3_spn"] / out["stereo_ms_3"] - 1
        quarter = (96, 312)
        image = torch.nn.functional.interpolate(left, quarter, mode="bilinear")
        disparity = torch.rand(1, 1, *quarter, device="cuda", generator=gen) * 48
        for key, backend in (("spn_ms", "auto"), ("spn_ms_torch", "torch")):
            net.spn.backend = backend
            out[key] = 1000 * _median_seconds(lambda: net.spn(image, disparity), steps)
        net.spn.backend = "auto"
    crops = tuple(torch.randn(batch, 3, 256, 512, device="cuda", generator=gen) for _ in range(2))
    gt = torch.rand(batch, 1, 256, 512, device="cuda", generator=gen) * 100

    def step(half: Optional[torch.dtype], **options) -> Callable[[], None]:
        return fresh_step(
            lambda: AnyNet(spn_channels=8),
            lambda preds: multi_stage_smooth_l1(preds, gt)[0],
            crops,
            half,
            **options,
        )

    for name, half in PRECISIONS.items():
        train = step(half)
        with UtilizationSampler() as sampler:
            out[f"stereo_train_{name}"] = batch / _median_seconds(train, steps)
        if name == "fp32":
            out["gpu_util"] = sampler.mean
            if sampler.reason:
                print(f"gpu_util: nan, NVML unavailable ({sampler.reason})")
    out["stereo_train_bf16_cl"] = batch / _median_seconds(
        step(torch.bfloat16, channels_last=True), steps
    )
    if compile_mode:
        out["stereo_train_bf16_compiled"] = batch / _median_seconds(
            step(torch.bfloat16, compile_mode=compile_mode), steps
        )
    return out


class PipelineTimer(L.Callback):
    """Wall time and samples of the training steps after the first ``warmup``, each step
    waited for (``sync``), with the GPU's utilisation sampled over them where ``sample_gpu``."""

    def __init__(self, warmup: int, sync: Callable[[], None], sample_gpu: bool) -> None:
        self.warmup, self.sync, self.sample_gpu = warmup, sync, sample_gpu
        self.start: Optional[float] = None
        self.end: Optional[float] = None
        self.steps = 0  # counted here: batch_idx restarts every epoch
        self.samples = 0
        self.sampler: Optional[UtilizationSampler] = None
        self.batch_keys: set[str] = set()
        self.view_dtype: Optional[torch.dtype] = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batch_keys |= set(batch)
        self.view_dtype = batch["left"].dtype

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.sync()
        self.steps += 1
        if self.steps == self.warmup:
            self.start = time.perf_counter()
            if self.sample_gpu:
                self.sampler = UtilizationSampler().__enter__()
        elif self.steps > self.warmup:
            self.samples += len(batch["left"])
            self.end = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.sampler is not None:
            self.sampler.__exit__(None, None, None)

    @property
    def rate(self) -> float:
        """Samples/s over the timed steps."""
        if self.start is None or self.end is None:
            raise RuntimeError(f"no step after the {self.warmup} warm-up steps was timed")
        return self.samples / (self.end - self.start)


def bench_pipeline(
    root: Path,
    accelerator: str = "gpu",
    steps: int = 80,
    warmup: int = 20,
    scenes: int = 240,
    size: tuple[int, int] = (320, 640),
    crop: tuple[int, int] = (256, 512),
    batch: int = 8,
    workers: Optional[int] = None,
    precision: str = "bf16-mixed",
) -> tuple[dict[str, float], dict[bool, PipelineTimer]]:
    """AnyNet + SPN-8 trained by Lightning from litdata shards of generated things scenes
    (``scenes`` of ``size``, one frame each, ``root``), ``crop`` crops with photometric
    augmentation in the loader workers and then on the device (``augment_on_device``):
    samples/s over ``steps - warmup`` steps and, on a GPU, its mean utilisation meanwhile.
    Returns the figures and the timers (for tests)."""
    things = root / "things"
    synthesize_monkaa(things, scenes=scenes, frames=1, size=size, seed=0, style="things")
    shards = root / "shards"
    argv = ["monkaa", "--src", str(things), "--out", str(shards)]
    prepare([*argv, "--val-fraction", "0.05", "--test-fraction", "0", "--num-workers", "4"])
    out, timers = {}, {}
    sync = torch.cuda.synchronize if accelerator == "gpu" else (lambda: None)
    for on_device in (False, True):
        key = "device" if on_device else "worker"
        data = MonkaaDataModule(
            source="shards",
            shards=str(shards),
            cache_dir=str(root / f"cache_{key}"),
            size=crop,
            batch_size=batch,
            augment=True,
            augment_on_device=on_device,
            num_workers=workers,
            persistent_workers=True,
        )
        timer = PipelineTimer(warmup, sync, sample_gpu=accelerator == "gpu")
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            precision=precision,
            max_steps=steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
        )
        torch.manual_seed(0)
        trainer.fit(StereoDepthModule(net=AnyNet(spn_channels=8)), datamodule=data)
        out[f"pipeline_samples_s_{key}"] = timer.rate
        if accelerator == "gpu":
            out[f"pipeline_gpu_util_{key}"] = timer.sampler.mean if timer.sampler else math.nan
        timers[on_device] = timer
    return out, timers


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument(
        "--workers", type=int, default=None, help="pipeline: loader workers (default: automatic)"
    )
    parser.add_argument(
        "--no-pipeline", action="store_true", help="skip the training run from litdata shards"
    )
    parser.add_argument(
        "--compile",
        choices=("default", "reduce-overhead", "max-autotune"),
        help="also time bf16 training compiled with torch.compile in this mode",
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA device (torch.cuda.is_available() is False)")
    torch.backends.cudnn.benchmark = True
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    results = {
        **bench_mono(args.steps, compile_mode=args.compile),
        **bench_stereo(args.steps, compile_mode=args.compile),
    }
    if not args.no_pipeline:
        with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
            results.update(bench_pipeline(Path(tmp), workers=args.workers)[0])
    for key, value in results.items():
        print(f"{key:24s} {value:10.2f}")
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
