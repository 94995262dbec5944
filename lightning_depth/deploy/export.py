"""Export a trained checkpoint to ONNX or TorchScript and check it against PyTorch.

``lightning_depth export --ckpt_path X --format onnx|torchscript --dtype fp32|fp16|bf16
[--stages k] [--out PATH] [--height H --width W]``

The task (mono or stereo) is read from the checkpoint. Exported graphs:

- mono: ``image (B, 3, H, W) in [0, 1] -> depth_log (B, 1, H, W)``. ONNX has dynamic batch,
  height and width (multiples of ``2**depth``: pad with
  :class:`~lightning_depth.models.padding.InputPadder` and crop back, as ``predict`` does);
  TorchScript (traced) runs any such size as well.
- stereo: ``left, right (B, 3, H, W) ImageNet-normalised -> disparity (B, 1, H, W)`` of stage
  ``stages`` (default the last). ONNX has dynamic height and width (multiples of 16) and batch
  1: the SPN's column loop is one ONNX ``Scan`` (see :mod:`lightning_depth.models.spn`).
  TorchScript unrolls that loop when tracing, so a traced stereo model is FIXED to
  ``--height x --width``.

ONNX goes through ``torch.onnx.export(dynamo=True)`` at opset 18 (grid sampling included, no
custom ops); TorchScript through ``torch.jit.trace``. Both are checked on random inputs:
ONNX with onnxruntime (CPU), TorchScript by running the loaded file; fp32 must agree to
``1e-4`` relative to the output's scale.
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
from torch import nn

from lightning_depth.io.errors import DataError

__all__ = [
    "DTYPES",
    "ExportedMono",
    "ExportedStereo",
    "check_checkpoint_task",
    "checkpoint_task",
    "export_model",
    "export_wrapper",
    "load_task",
    "main",
    "run_exported",
]

PathLike = Union[str, Path]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
ONNX_OPSET = 18
_TASK_CLASS = {"mono": "MonoDepthModule", "stereo": "StereoDepthModule"}
_PREDICT_CONFIG = {"mono": "configs/predict/mono.yaml", "stereo": "configs/predict/stereo.yaml"}


# -- checkpoints ---------------------------------------------------------------------------
def _read_checkpoint(path: PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"checkpoint {path} {'is not a file' if path.exists() else 'does not exist'}"
        )
    try:
        # Our own checkpoints hold the LightningCLI config (plain containers) and tensors.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch.load raises many types for a bad file
        raise DataError(f"checkpoint {path} cannot be read: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DataError(f"checkpoint {path} is not a Lightning checkpoint (no 'state_dict')")
    return ckpt


def checkpoint_task(checkpoint: Union[PathLike, dict]) -> str:
    """``"mono"`` or ``"stereo"``: the task a checkpoint was trained for, from its weights
    (AnyNet has a ``feature_extractor`` and ``cost_filters``, the autoencoder ``down`` and
    ``bottleneck`` blocks).

    Raises:
        DataError: unreadable, or weights of neither model.
    """
    ckpt = checkpoint if isinstance(checkpoint, dict) else _read_checkpoint(checkpoint)
    keys = list(ckpt["state_dict"])
    if any(k.startswith(("net.feature_extractor.", "net.cost_filters.")) for k in keys):
        return "stereo"
    if any(k.startswith(("net.down.", "net.bottleneck.")) for k in keys):
        return "mono"
    where = "" if isinstance(checkpoint, dict) else f" {checkpoint}"
    raise DataError(
        f"checkpoint{where} holds neither a DepthAutoencoder nor an AnyNet (state-dict keys "
        f"start with {sorted({k.split('.')[0] + '.' + k.split('.')[1] for k in keys if '.' in k})[:5]})"
    )


def check_checkpoint_task(path: PathLike, expected: str) -> None:
    """Raise a clear error if the checkpoint at ``path`` is not a ``expected`` (mono/stereo)
    checkpoint."""
    task = checkpoint_task(path)
    if task != expected:
        raise DataError(
            f"checkpoint {path} holds a {task} model ({_TASK_CLASS[task]}) but this run builds "
            f"a {expected} model ({_TASK_CLASS[expected]}); use {_PREDICT_CONFIG[task]} or a "
            f"{expected} checkpoint"
        )


def load_task(path: PathLike, map_location: str = "cpu") -> nn.Module:
    """The task module of a checkpoint written by ``lightning_depth fit``, in eval mode.

    Raises:
        DataError: unreadable, neither task, or without the LightningCLI config needed to
            rebuild the network.
    """
    from lightning_depth.tasks.mono import MonoDepthModule
    from lightning_depth.tasks.stereo import StereoDepthModule

    ckpt = _read_checkpoint(path)
    task = checkpoint_task(ckpt)
    cls = StereoDepthModule if task == "stereo" else MonoDepthModule
    net = (ckpt.get("hyper_parameters") or {}).get("net")
    if not net:
        raise DataError(
            f"checkpoint {path} has no network config in its hyper-parameters (it was not "
            "written by `lightning_depth fit`); load it in Python with "
            f"{cls.__name__}.load_from_checkpoint(path, net=...)"
        )
    return cls.load_from_checkpoint(path, map_location=map_location).eval()


# -- export wrappers -----------------------------------------------------------------------
class ExportedMono(nn.Module):
    """``image (B, 3, H, W) -> depth_log (B, 1, H, W)``; H, W multiples of ``2**depth``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class ExportedStereo(nn.Module):
    """``left, right (B, 3, H, W) -> disparity (B, 1, H, W)`` of stage ``stages``."""

    def __init__(self, net: nn.Module, stages: Optional[int] = None) -> None:
        super().__init__()
        self.net = net
        self.stages = stages

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.net(left, right, stages=self.stages)[-1]


def export_wrapper(task: nn.Module, stages: Optional[int] = None) -> nn.Module:
    """The plain network of a task module, with one tensor output, in eval mode."""
    from lightning_depth.tasks.stereo import StereoDepthModule

    if isinstance(task, StereoDepthModule):
        return ExportedStereo(task.net, stages).eval()
    if stages is not None:
        raise ValueError("--stages applies to stereo models only")
    return ExportedMono(task.net).eval()


def example_inputs(
    wrapper: nn.Module, height: int, width: int, batch: int = 1, dtype=torch.float32, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Random inputs of the wrapper's signature (images in [0, 1] or normalised)."""
    g = torch.Generator().manual_seed(seed)
    if isinstance(wrapper, ExportedStereo):
        return tuple(torch.randn(batch, 3, height, width, generator=g).to(dtype) for _ in range(2))
    return (torch.rand(batch, 3, height, width, generator=g).to(dtype),)


def _input_names(wrapper: nn.Module) -> list[str]:
    return ["left", "right"] if isinstance(wrapper, ExportedStereo) else ["image"]


def _multiple(wrapper: nn.Module) -> int:
    """Input heights and widths must be multiples of this (the network's total stride)."""
    return 16 if isinstance(wrapper, ExportedStereo) else 2**wrapper.net.depth


def _check_size(wrapper: nn.Module, height: int, width: int) -> None:
    multiple = _multiple(wrapper)
    if height % multiple or width % multiple or height < 1 or width < 1:
        raise ValueError(
            f"export size must be positive multiples of {multiple} for this model, got "
            f"{height}x{width} (HxW)"
        )


def export_model(
    wrapper: nn.Module,
    out: PathLike,
    fmt: str = "onnx",
    dtype: str = "fp32",
    height: int = 256,
    width: int = 256,
) -> Path:
    """Write ``wrapper`` (from :func:`export_wrapper`) as ONNX or TorchScript.

    Args:
        wrapper: the module to export.
        out: output file (``.onnx`` / ``.pt``).
        fmt: ``"onnx"`` or ``"torchscript"``.
        dtype: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (weights and inputs).
        height: example input height (the fixed height for stereo).
        width: example input width (the fixed width for stereo).

    Returns:
        the path written.
    """
    if fmt not in ("onnx", "torchscript"):
        raise ValueError(f"format must be 'onnx' or 'torchscript', got {fmt!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    _check_size(wrapper, height, width)
    if fmt == "onnx" and dtype == "bf16":
        raise ValueError(
            "bf16 ONNX is not exported: ONNX Conv takes bfloat16 only from opset 22 and "
            "onnxruntime has no bfloat16 convolution kernels to run it; use --dtype fp16 for "
            "ONNX, or --format torchscript --dtype bf16"
        )
    if fmt == "onnx" and min(height, width) < 2 * _multiple(wrapper):
        raise ValueError(
            f"ONNX export traces dynamic sizes from an example of at least "
            f"{2 * _multiple(wrapper)} pixels per side (two network strides), got {height}x{width}"
        )
    wrapper = copy.deepcopy(wrapper).to(DTYPES[dtype]).eval()  # the caller's model stays as is
    inputs = example_inputs(wrapper, height, width, batch=1, dtype=DTYPES[dtype])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, inputs, check_trace=False)
        traced.save(str(out))
        return out
    with torch.no_grad():
        # Dynamic batch and spatial size, in multiples of the network's stride.
        dim = torch.export.Dim
        m = _multiple(wrapper)
        # (At least 2 blocks: torch.export specialises a size-1 dimension to a constant.)
        sizes = {2: m * dim("h_blocks", min=2), 3: m * dim("w_blocks", min=2)}
        if isinstance(wrapper, ExportedMono):
            sizes[0] = dim("batch")
        dynamic = {name: sizes for name in _input_names(wrapper)}
        program = torch.onnx.export(
            wrapper,
            inputs,
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=_input_names(wrapper),
            output_names=["disparity" if isinstance(wrapper, ExportedStereo) else "depth_log"],
            dynamic_shapes=dynamic,
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
    path: PathLike, wrapper: nn.Module, height: int, width: int, dtype: str = "fp32", seed: int = 1
) -> dict[str, float]:
    """Compare the exported file with PyTorch on random inputs (other than the export's).

    Args:
        path: the exported file.
        wrapper: the module that was exported (any dtype; it is not modified).
        height: input height.
        width: input width.
        dtype: the export's dtype: inputs are made in it.
        seed: input seed.

    Returns:
        ``max_abs_error`` and ``max_rel_error`` against PyTorch running the same dtype (the
        exporter's fidelity; relative to ``max(1, max |reference|)``), ``max_rel_error_fp32``
        against the float32 model (what the precision costs), and the exported run's latency
        ``latency_ms``.
    """
    inputs = example_inputs(wrapper, height, width, batch=1, dtype=DTYPES[dtype], seed=seed)
    with torch.no_grad():
        reference32 = copy.deepcopy(wrapper).float()(*(t.float() for t in inputs)).float()
        reference = (
            reference32
            if dtype == "fp32"
            else copy.deepcopy(wrapper).to(DTYPES[dtype])(*inputs).float()
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
    parser.add_argument("--stages", type=int, default=None, help="stereo: stop after k stages")
    parser.add_argument("--out", default=None, help="default: next to the checkpoint")
    parser.add_argument("--height", type=int, default=None, help="default: 256 mono, 256 stereo")
    parser.add_argument("--width", type=int, default=None, help="default: 256 mono, 512 stereo")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check")
    args = parser.parse_args(list(argv or []))

    task = load_task(args.ckpt_path)
    wrapper = export_wrapper(task, args.stages)
    stereo = isinstance(wrapper, ExportedStereo)
    height = args.height or 256
    width = args.width or (512 if stereo else 256)
    suffix = ".onnx" if args.format == "onnx" else ".pt"
    out = (
        Path(args.out)
        if args.out
        else Path(args.ckpt_path).with_name(f"{Path(args.ckpt_path).stem}_{args.dtype}{suffix}")
    )
    export_model(wrapper, out, args.format, args.dtype, height, width)
    summary: dict = {
        "file": str(out),
        "bytes": out.stat().st_size,
        "height": height,
        "width": width,
    }
    if not args.no_check:
        stats = check_exported(out, wrapper, height, width, args.dtype)
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
