"""Export a trained checkpoint to ONNX or TorchScript and check it against PyTorch.

``lightning_depth export --ckpt_path X --format onnx|torchscript --dtype fp32|fp16|bf16
[--stages k] [--out PATH] [--height H --width W]``

The task class is read from the checkpoint's task record, and everything else from the task
(:class:`~lightning_depth.tasks.base.DepthTask`): the graph is ``task.export_module(stages)``,
its inputs are named ``task.input_keys`` and its output ``task.output_name``; the example size
defaults to ``task.default_export_size``. ONNX has dynamic height and width (multiples of
``task.size_multiple``: pad with :class:`~lightning_depth.models.padding.InputPadder` and crop
back, as ``predict`` does) and a dynamic batch where ``task.dynamic_batch_export``. For the
shipped tasks:

- ``MonoDepthModule``: ``image (B, 3, H, W) in [0, 1] -> depth_log (B, 1, H, W)``, any batch;
  TorchScript (traced) runs any size as well.
- ``StereoDepthModule``: ``left, right (B, 3, H, W) ImageNet-normalised -> disparity
  (B, 1, H, W)`` of stage ``stages`` (default the last), batch 1: the SPN's column loop is one
  ONNX ``Scan`` (see :mod:`lightning_depth.models.spn`). TorchScript unrolls that loop when
  tracing, so a traced AnyNet is FIXED to ``--height x --width``.

ONNX goes through ``torch.onnx.export(dynamo=True)`` at opset 18 (grid sampling included, no
custom ops); TorchScript through ``torch.jit.trace``. Both are checked on random inputs
(``task.example_inputs``): ONNX with onnxruntime (CPU), TorchScript by running the loaded
file; fp32 must agree to ``1e-4`` relative to the output's scale.

The checkpoint helpers (:func:`load_task`, :func:`checkpoint_task`,
:func:`check_checkpoint_task`) live in :mod:`lightning_depth.deploy.checkpoints` and are
re-exported here.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from lightning_depth.deploy.checkpoints import check_checkpoint_task, checkpoint_task, load_task
from lightning_depth.tasks.base import DepthTask

__all__ = [
    "DTYPES",
    "check_checkpoint_task",
    "check_exported",
    "checkpoint_task",
    "export_model",
    "load_task",
    "main",
    "run_exported",
]

PathLike = Union[str, Path]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
ONNX_OPSET = 18


def _check_size(task: DepthTask, height: int, width: int) -> None:
    multiple = task.size_multiple
    if height % multiple or width % multiple or height < 1 or width < 1:
        raise ValueError(
            f"export size must be positive multiples of {multiple} for this model, got "
            f"{height}x{width} (HxW)"
        )


def export_model(
    task: DepthTask,
    out: PathLike,
    fmt: str = "onnx",
    dtype: str = "fp32",
    height: Optional[int] = None,
    width: Optional[int] = None,
    stages: Optional[int] = None,
) -> Path:
    """Write ``task.export_module(stages)`` as ONNX or TorchScript.

    The graph's inputs are named ``task.input_keys`` and its output ``task.output_name``;
    ONNX height and width are dynamic (multiples of ``task.size_multiple``), and so is the
    batch where ``task.dynamic_batch_export``.

    Args:
        task: the task whose network is exported (it is not modified).
        out: output file (``.onnx`` / ``.pt``).
        fmt: ``"onnx"`` or ``"torchscript"``.
        dtype: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (weights and inputs).
        height: example input height; default ``task.default_export_size``.
        width: example input width; default ``task.default_export_size``.
        stages: anytime networks: the stage whose output is exported (default the last).

    Returns:
        the path written.
    """
    if fmt not in ("onnx", "torchscript"):
        raise ValueError(f"format must be 'onnx' or 'torchscript', got {fmt!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    default_height, default_width = task.default_export_size
    height = default_height if height is None else height
    width = default_width if width is None else width
    _check_size(task, height, width)
    if fmt == "onnx" and dtype == "bf16":
        raise ValueError(
            "bf16 ONNX is not exported: ONNX Conv takes bfloat16 only from opset 22 and "
            "onnxruntime has no bfloat16 convolution kernels to run it; use --dtype fp16 for "
            "ONNX, or --format torchscript --dtype bf16"
        )
    m = task.size_multiple
    if fmt == "onnx" and min(height, width) < 2 * m:
        raise ValueError(
            f"ONNX export traces dynamic sizes from an example of at least {2 * m} pixels per "
            f"side (two network strides), got {height}x{width}"
        )
    # A copy, so the caller's model stays as it is.
    module = copy.deepcopy(task.export_module(stages)).to(DTYPES[dtype]).eval()
    inputs = task.example_inputs(height, width, batch=1, dtype=DTYPES[dtype])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(module, inputs, check_trace=False)
        traced.save(str(out))
        return out
    with torch.no_grad():
        # Dynamic spatial size in multiples of the network's stride, and batch if it can.
        dim = torch.export.Dim
        # (At least 2 blocks: torch.export specialises a size-1 dimension to a constant.)
        sizes = {2: m * dim("h_blocks", min=2), 3: m * dim("w_blocks", min=2)}
        if task.dynamic_batch_export:
            sizes[0] = dim("batch")
        program = torch.onnx.export(
            module,
            inputs,
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=list(task.input_keys),
            output_names=[task.output_name],
            dynamic_shapes={name: sizes for name in task.input_keys},
            verbose=False,
        )
        program.save(str(out))
    return out


def run_exported(path: PathLike, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Run an exported file (ONNX with onnxruntime's CPU provider, or TorchScript)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        feeds = {n: _to_numpy(t) for n, t in zip(names, inputs)}
        return torch.from_numpy(np.asarray(session.run(None, feeds)[0]))
    module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(*inputs)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        raise TypeError("onnxruntime's Python API has no bfloat16 inputs; check bf16 with torch")
    return t.detach().cpu().numpy()


def check_exported(
    path: PathLike,
    task: DepthTask,
    height: int,
    width: int,
    dtype: str = "fp32",
    seed: int = 1,
    stages: Optional[int] = None,
) -> dict[str, float]:
    """Compare the exported file with PyTorch on random inputs (other than the export's).

    Args:
        path: the exported file.
        task: the task that was exported (any dtype; it is not modified).
        height: input height.
        width: input width.
        dtype: the export's dtype: inputs are made in it.
        seed: input seed.
        stages: the ``stages`` the file was exported with.

    Returns:
        ``max_abs_error`` and ``max_rel_error`` against PyTorch running the same dtype (the
        exporter's fidelity; relative to ``max(1, max |reference|)``), ``max_rel_error_fp32``
        against the float32 model (what the precision costs), and the exported run's latency
        ``latency_ms``.
    """
    module = task.export_module(stages).eval()
    inputs = task.example_inputs(height, width, batch=1, dtype=DTYPES[dtype], seed=seed)
    with torch.no_grad():
        reference32 = copy.deepcopy(module).float()(*(t.float() for t in inputs)).float()
        reference = (
            reference32
            if dtype == "fp32"
            else copy.deepcopy(module).to(DTYPES[dtype])(*inputs).float()
        )
    start = time.perf_counter()
    result = run_exported(path, inputs).float()
    latency = (time.perf_counter() - start) * 1000.0
    if result.shape != reference.shape:
        raise AssertionError(
            f"exported {path} returns shape {tuple(result.shape)}, PyTorch {tuple(reference.shape)}"
        )
    err = float((result - reference).abs().max())
    scale = max(1.0, float(reference32.abs().max()))
    return {
        "max_abs_error": err,
        "max_rel_error": err / scale,
        "max_rel_error_fp32": float((result - reference32).abs().max()) / scale,
        "latency_ms": latency,
    }


TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``lightning_depth export``: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="lightning_depth export",
        description="Export a checkpoint to ONNX or TorchScript and check it against PyTorch.",
    )
    parser.add_argument("--ckpt_path", required=True, help="checkpoint of lightning_depth fit")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument(
        "--stages", type=int, default=None, help="anytime networks: stop after k stages"
    )
    parser.add_argument("--out", default=None, help="default: next to the checkpoint")
    parser.add_argument("--height", type=int, default=None, help="default: the task's")
    parser.add_argument("--width", type=int, default=None, help="default: the task's")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check")
    args = parser.parse_args(list(argv or []))

    task = load_task(args.ckpt_path)
    height = args.height or task.default_export_size[0]
    width = args.width or task.default_export_size[1]
    suffix = ".onnx" if args.format == "onnx" else ".pt"
    out = (
        Path(args.out)
        if args.out
        else Path(args.ckpt_path).with_name(f"{Path(args.ckpt_path).stem}_{args.dtype}{suffix}")
    )
    export_model(task, out, args.format, args.dtype, height, width, args.stages)
    summary: dict = {
        "task": task.name,
        "file": str(out),
        "bytes": out.stat().st_size,
        "inputs": list(task.input_keys),
        "output": task.output_name,
        "height": height,
        "width": width,
    }
    if not args.no_check:
        stats = check_exported(out, task, height, width, args.dtype, stages=args.stages)
        summary.update(stats)
        # fp32 files are held to PyTorch; half-precision ones to the float32 model, since
        # PyTorch's and onnxruntime's half kernels round differently (onnxruntime's fp16
        # convolutions on CPU were the closer of the two to float32 in our checks).
        key = "max_rel_error" if args.dtype == "fp32" else "max_rel_error_fp32"
        if stats[key] > TOLERANCE[args.dtype]:
            print(json.dumps(summary))
            raise SystemExit(
                f"exported {out} differs from the {'PyTorch' if args.dtype == 'fp32' else 'float32'}"
                f" model by {stats[key]:.3g} (> {TOLERANCE[args.dtype]:g} for {args.dtype})"
            )
    print(json.dumps(summary))
    return 0
