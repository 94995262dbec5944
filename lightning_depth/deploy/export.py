"""Export a trained checkpoint to ONNX or TorchScript, with its contract, and check it.

``lightning_depth export --ckpt_path X [--network] --format onnx|torchscript
--dtype fp32|fp16|bf16 [--stages k] [--resolution train|native] [--out PATH]
[--height H --width W] [--no-check]``

By default the file holds the **camera graph** (:class:`~lightning_depth.deploy.graph.
CameraGraph`): ``uint8`` RGB ``(N, H, W, 3)`` images, one per ``task.input_keys``, in;
metric depth (metres) or disparity (pixels) ``(N, H, W)`` at the input size out, exactly
``task.predict_map`` (what ``lightning_depth predict`` writes). Scaling, ImageNet
normalisation, padding to the network's multiple or resizing to the training size (mono
checkpoints predict at their training size, ``--resolution``) all happen inside it. ONNX
takes any height and width of at least ``2 * task.size_multiple`` and, where
``task.dynamic_batch_export``, any batch (the stereo network is batch 1).

``--network`` exports the bare network instead, ``task.export_module(stages)``, as before:
inputs named ``task.input_keys`` in the network's encoding (mono ``image (B, 3, H, W)`` in
[0, 1]; stereo ``left, right`` ImageNet-normalised), sizes multiples of
``task.size_multiple``, output ``task.output_name`` (mono log-depth, stereo disparity)
``(B, 1, H, W)``.

Every file carries its contract (:func:`lightning_depth.deploy.graph.describe`: task, model
and settings, inputs with layout, dtype, range and normalisation, size rules, training size,
output meaning and unit, max disparity, stages, package version, the checkpoint's SHA-256):
ONNX ``metadata_props`` (``"lightning_depth"``: the JSON, plus flat ``task``, ``graph``,
``output_unit`` keys), TorchScript ``_extra_files["lightning_depth.json"]``.
:func:`lightning_depth.deploy.runtime.read_metadata` reads it back and
:func:`lightning_depth.deploy.load` runs the file with checked inputs.

ONNX goes through ``torch.onnx.export(dynamo=True)`` at opset 18 (grid sampling included, no
custom ops; the SPN's column loop is one ``Scan``); TorchScript through ``torch.jit.trace``,
whose graph is bound to the traced size wherever the code turns sizes into numbers (the
camera graph's padding and resizing, AnyNet's unrolled SPN loop): the file is then tried at
another size, and a size-bound file records ``fixed_size`` in its metadata (the runtime
refuses other sizes). TorchScript files run one sample at a time (``batch: 1``).

The check runs the file against PyTorch on inputs other than the export's: the camera graph
on random ``uint8`` images of a size that is not a multiple of the network's (through the
runtime), fp32 within ``1e-4`` relative (depth) or ``1e-3`` pixels (disparity); the bare
network on random encoded inputs, fp32 within ``1e-4`` relative to the output's scale.

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
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from lightning_depth.deploy.checkpoints import check_checkpoint_task, checkpoint_task, load_task
from lightning_depth.deploy.graph import GRAPHS, CameraGraph, camera_inputs, describe, min_size
from lightning_depth.deploy.runtime import METADATA_FILE, METADATA_KEY, load, onnx_session
from lightning_depth.tasks.base import DepthTask

__all__ = [
    "DTYPES",
    "check_checkpoint_task",
    "check_exported",
    "checkpoint_task",
    "export_model",
    "export_with_metadata",
    "load_task",
    "main",
    "run_exported",
]

PathLike = Union[str, Path]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
ONNX_OPSET = 18
#: the ``DepthTask.predict_resolution`` values a camera graph can hold (one graph for every
#: input size; ``"tiles"`` loops over a size-dependent number of tiles). Stereo ``"x2"``: the
#: enlargement and the halved disparity's way back are in the graph.
EXPORTABLE_RESOLUTIONS = ("train", "native", "x2")


def _check_size(task: DepthTask, height: int, width: int, graph: str) -> None:
    multiple = task.size_multiple
    if graph == "network" and (height % multiple or width % multiple or height < 1 or width < 1):
        raise ValueError(
            f"export size must be positive multiples of {multiple} for this model, got "
            f"{height}x{width} (HxW)"
        )
    low_h, low_w = min_size(task)
    if height < low_h or width < low_w:
        raise ValueError(
            f"export traces dynamic sizes from an example of at least {low_h}x{low_w} pixels "
            f"(two network strides of {multiple} per side), got {height}x{width} (HxW)"
        )


def _prepared(
    task: DepthTask,
    graph: str,
    dtype: str,
    stages: Optional[int],
    resolution: Optional[str],
) -> torch.nn.Module:
    """The module to export, on a copy of the task (the caller's stays as it is)."""
    if graph == "network":
        if resolution is not None:
            raise ValueError("resolution applies to the camera graph, not to --network")
        return copy.deepcopy(task.export_module(stages)).to(DTYPES[dtype]).eval()
    resolution = resolution or task.default_predict_resolution  # as predict's default
    if resolution not in EXPORTABLE_RESOLUTIONS:
        why = {
            "tiles": "a Python loop over tiles whose count depends on the image size",
        }.get(resolution, "unknown")
        raise ValueError(
            f"resolution {resolution!r} cannot be exported ({why}); export one of "
            f"{EXPORTABLE_RESOLUTIONS}"
        )
    task = copy.deepcopy(task).to(DTYPES[dtype]).eval()
    if stages is not None:  # else the task's own predict_stages, as predict runs it
        task.set_predict_stages(stages)
    task.set_predict_resolution(resolution)
    return CameraGraph(task, DTYPES[dtype]).eval()


def _example(
    task: DepthTask, graph: str, height: int, width: int, batch: int, dtype: str, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    if graph == "camera":
        return camera_inputs(task, height, width, batch=batch, seed=seed)
    return task.example_inputs(height, width, batch=batch, dtype=DTYPES[dtype], seed=seed)


def _dynamic_shapes(task: DepthTask, graph: str) -> dict[int, Any]:
    """torch.export sizes of each input: dynamic H, W (and batch where the task allows)."""
    dim = torch.export.Dim
    if graph == "camera":
        # Any size from the minimum: the graph pads or resizes itself (layout N, H, W, 3).
        low_h, low_w = min_size(task)
        sizes: dict[int, Any] = {1: dim.DYNAMIC(min=low_h), 2: dim.DYNAMIC(min=low_w)}
    else:
        # Multiples of the network's stride; at least 2 blocks (torch.export specialises a
        # size-1 dimension to a constant). Layout N, 3, H, W.
        m = task.size_multiple
        sizes = {2: m * dim("h_blocks", min=2), 3: m * dim("w_blocks", min=2)}
    if task.dynamic_batch_export:
        sizes[0] = dim.DYNAMIC
    return sizes


def _size_bound(
    traced: Callable,
    module: torch.nn.Module,
    task: DepthTask,
    graph: str,
    height: int,
    width: int,
    dtype: str,
) -> bool:
    """Whether a traced module only takes its traced size: it fails or disagrees with the
    eager module at another size (one that needs other padding and another resize)."""
    m = task.size_multiple
    other = (height + m, width + 2 * m) if graph == "network" else (height + m + 1, width + 3)
    inputs = _example(task, graph, *other, batch=1, dtype=dtype, seed=2)
    with torch.no_grad():
        expected = module(*inputs).float()
        try:
            got = traced(*inputs).float()
        except Exception:  # a traced shape constant no longer fits (reshape, cat, ...)
            return True
    if got.shape != expected.shape:
        return True
    scale = max(1.0, float(expected.abs().max()))
    return float((got - expected).abs().max()) / scale > 1e-3


def _capture(module: torch.nn.Module, inputs: tuple, dynamic: Any) -> Any:
    """``torch.export`` of the camera graph with dynamic sizes, or a ValueError saying that
    the task's predict path fixed them."""
    try:
        return torch.export.export(module, inputs, dynamic_shapes=dynamic, strict=False)
    except Exception as error:  # torch.export's UserError and friends
        if "specialized" not in str(error) and "Constraints violated" not in str(error):
            raise
        raise ValueError(
            "the camera graph cannot take any image size: tracing the task's predict_map "
            "fixed the size to the example's (code that turns a size into a Python number, "
            "e.g. int(x.shape[-1]) in a padder, or branches on one). torch.export said: "
            + str(error).split("\n\nThe error above")[0]
        ) from error


def _write_onnx_metadata(path: Path, metadata: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    flat = {
        METADATA_KEY: json.dumps(metadata),
        "task": metadata["task"],
        "graph": metadata["graph"],
        "output_unit": metadata["output"]["unit"],
        "lightning_depth_version": metadata["lightning_depth_version"],
    }
    kept = [p for p in model.metadata_props if p.key not in flat]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in flat.items():
        model.metadata_props.add(key=key, value=str(value))
    model.doc_string = metadata["summary"]
    onnx.save(model, str(path))


def export_with_metadata(
    task: DepthTask,
    out: PathLike,
    fmt: str = "onnx",
    dtype: str = "fp32",
    height: Optional[int] = None,
    width: Optional[int] = None,
    stages: Optional[int] = None,
    graph: str = "camera",
    checkpoint: Optional[PathLike] = None,
    resolution: Optional[str] = None,
) -> tuple[Path, dict]:
    """Write the camera graph (default) or the bare network as ONNX or TorchScript, with its
    contract inside (see the module docstring).

    Args:
        task: the task to export (it is not modified).
        out: output file (``.onnx`` / ``.pt``).
        fmt: ``"onnx"`` or ``"torchscript"``.
        dtype: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (weights; bare-network inputs too).
        height: example height (TorchScript camera graphs: the size they take); default
            ``task.default_export_size``.
        width: example width.
        stages: anytime networks: the stages run (default all).
        graph: ``"camera"`` or ``"network"``.
        checkpoint: the checkpoint the task was loaded from (its SHA-256 goes into the
            metadata); ``None``: recorded as ``null``.
        resolution: camera graph: the ``task.predict_resolution`` to export, ``"train"`` or
            ``"native"``; default ``task.default_predict_resolution``, as ``predict`` (the
            training size where the task supports it and knows it: mono checkpoints).

    Returns:
        the path written and the metadata stored in it.
    """
    if fmt not in ("onnx", "torchscript"):
        raise ValueError(f"format must be 'onnx' or 'torchscript', got {fmt!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
    default_height, default_width = task.default_export_size
    height = default_height if height is None else height
    width = default_width if width is None else width
    if fmt == "onnx" and dtype == "bf16":
        raise ValueError(
            "bf16 ONNX is not exported: ONNX Conv takes bfloat16 only from opset 22 and "
            "onnxruntime has no bfloat16 convolution kernels to run it; use --dtype fp16 for "
            "ONNX, or --format torchscript --dtype bf16"
        )
    _check_size(task, height, width, graph)
    module = _prepared(task, graph, dtype, stages, resolution)
    exported_task = module.task if graph == "camera" else task
    if graph == "camera":
        stages = exported_task.predict_stages
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        inputs = _example(task, graph, height, width, batch=1, dtype=dtype)
        with torch.no_grad():
            traced = torch.jit.trace(module, inputs, check_trace=False)
        bound = _size_bound(traced, module, task, graph, height, width, dtype)
        metadata = describe(
            exported_task, graph, fmt, dtype, (height, width), stages, checkpoint,
            fixed_size=(height, width) if bound else None, batch=1,
        )  # fmt: skip
        traced.save(str(out), _extra_files={METADATA_FILE: json.dumps(metadata)})
        return out, metadata
    # (A batch of 2 where the batch is dynamic: torch.export specialises a size-1 dimension.)
    batch = 2 if task.dynamic_batch_export else 1
    inputs = _example(task, graph, height, width, batch=batch, dtype=dtype)
    sizes = _dynamic_shapes(task, graph)
    with torch.no_grad():
        if graph == "camera":
            # The graph takes its images as *images; captured here first, so that code that
            # fixes the size (int() of a size, a test on one) is named as the problem.
            source = _capture(module, inputs, (tuple(sizes for _ in task.input_keys),))
            dynamic = None
        else:
            source, dynamic = module, {name: sizes for name in task.input_keys}
        program = torch.onnx.export(
            source,
            inputs,
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=list(task.input_keys),
            output_names=[task.map_kind if graph == "camera" else task.output_name],
            dynamic_shapes=dynamic,
            verbose=False,
        )
        program.save(str(out))
    metadata = describe(
        exported_task, graph, fmt, dtype, (height, width), stages, checkpoint,
        batch=None if task.dynamic_batch_export else 1,
    )  # fmt: skip
    metadata["opset"] = ONNX_OPSET
    _write_onnx_metadata(out, metadata)
    return out, metadata


def export_model(
    task: DepthTask,
    out: PathLike,
    fmt: str = "onnx",
    dtype: str = "fp32",
    height: Optional[int] = None,
    width: Optional[int] = None,
    stages: Optional[int] = None,
    graph: str = "network",
    checkpoint: Optional[PathLike] = None,
    resolution: Optional[str] = None,
) -> Path:
    """:func:`export_with_metadata`, returning only the path. Its default is the bare
    network (``task.export_module(stages)``, float inputs: what compression and the
    benchmarks quantise and time); the ``export`` command's default is the camera graph."""
    path, _ = export_with_metadata(
        task, out, fmt, dtype, height, width, stages, graph, checkpoint, resolution
    )
    return path


def run_exported(path: PathLike, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Run an exported file on tensors as they are (ONNX with onnxruntime's CPU provider, or
    TorchScript), without the runtime's checks."""
    path = Path(path)
    if path.suffix == ".onnx":
        session = onnx_session(path, ["CPUExecutionProvider"])
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
    graph: str = "network",
    resolution: Optional[str] = None,
) -> dict[str, Any]:
    """Compare the exported file with PyTorch on random inputs (other than the export's).

    The camera graph gets random ``uint8 (1, height, width, 3)`` images and runs through
    the runtime (:func:`lightning_depth.deploy.load`, CPU), checks included; PyTorch is
    ``task.predict_map`` of the same images (:class:`CameraGraph` in eager mode). The bare
    network gets ``task.example_inputs``.

    Args:
        path: the exported file.
        task: the task that was exported (any dtype; it is not modified).
        height: input height (camera graph: take one that is not a multiple of the
            network's, to check the padding or resizing inside).
        width: input width.
        dtype: the export's dtype.
        seed: input seed.
        stages: the ``stages`` the file was exported with.
        graph: ``"camera"`` or ``"network"``: what the file holds.
        resolution: camera graph: the ``resolution`` it was exported with.

    Returns:
        ``nonfinite`` (how many values are NaN or infinite in the file's output and finite
        in PyTorch's), ``max_abs_error`` (output units) and ``max_rel_error`` against
        PyTorch running the same dtype (bare network: relative to
        ``max(1, max |reference|)``; camera graph: the largest per-pixel
        ``|error| / |reference|``), ``max_rel_error_fp32`` against the
        float32 model relative to ``max(1, max |reference|)`` (what the precision costs),
        ``check_size`` and the exported run's latency ``latency_ms``.

    Raises:
        AssertionError: the file's output shape is not PyTorch's.
    """
    module32 = _prepared(task, graph, "fp32", stages, resolution)
    inputs = _example(task, graph, height, width, batch=1, dtype=dtype, seed=seed)
    with torch.no_grad():
        reference32 = module32(*(t if graph == "camera" else t.float() for t in inputs)).float()
        reference = (
            reference32
            if dtype == "fp32"
            else _prepared(task, graph, dtype, stages, resolution)(*inputs).float()
        )
    start = time.perf_counter()
    if graph == "camera":
        model = load(path, providers=["CPUExecutionProvider"])
        result = torch.from_numpy(model(*(t.numpy() for t in inputs)))
    else:
        result = run_exported(path, inputs).float()
    latency = (time.perf_counter() - start) * 1000.0
    if result.shape != reference.shape:
        raise AssertionError(
            f"exported {path} returns shape {tuple(result.shape)}, PyTorch {tuple(reference.shape)}"
        )
    diff = (result - reference).abs()
    scale = max(1.0, float(reference32.abs().max()))
    if graph == "camera":
        nonzero = reference.abs() > 0
        rel = float((diff[nonzero] / reference.abs()[nonzero]).max()) if nonzero.any() else 0.0
    else:
        rel = float(diff.max()) / scale
    return {
        # values the file returns as NaN or inf where PyTorch's are finite (must be 0)
        "nonfinite": int((~torch.isfinite(result) & torch.isfinite(reference)).sum()),
        "max_abs_error": float(diff.max()),
        "max_rel_error": rel,
        "max_rel_error_fp32": float((result - reference32).abs().max()) / scale,
        "check_size": [height, width],
        "latency_ms": latency,
    }


#: half-precision files are held to the float32 model (``max_rel_error_fp32``).
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}
#: fp32 camera graphs: ``map_kind`` -> (statistic, bound): depth relative, disparity in pixels.
CAMERA_TOLERANCE = {"depth": ("max_rel_error", 1e-4), "disparity": ("max_abs_error", 1e-3)}


def _tolerance(task: DepthTask, graph: str, dtype: str) -> tuple[str, float]:
    # fp32 files are held to PyTorch; half-precision ones to the float32 model, since
    # PyTorch's and onnxruntime's half kernels round differently (onnxruntime's fp16
    # convolutions on CPU were the closer of the two to float32 in our checks).
    if dtype != "fp32":
        return "max_rel_error_fp32", TOLERANCE[dtype]
    if graph == "camera":
        return CAMERA_TOLERANCE.get(task.map_kind, ("max_rel_error", TOLERANCE["fp32"]))
    return "max_rel_error", TOLERANCE["fp32"]


def _check_size_for(task: DepthTask, graph: str, fmt: str, height: int, width: int):
    """Where to check: the camera graph in ONNX at a size off the network's multiple (the
    padding or resizing inside must work), anything else at the export size."""
    if graph == "camera" and fmt == "onnx":
        half = task.size_multiple // 2
        return height + half + 1, width + half + 3
    return height, width


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``lightning_depth export``: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="lightning_depth export",
        description=(
            "Export a checkpoint to ONNX or TorchScript, with its contract in the file, and "
            "check it against PyTorch. Default: the camera graph (uint8 RGB (N, H, W, 3) "
            "images in; depth in metres or disparity in pixels (N, H, W) at the input size "
            "out); --network: the bare network (encoded float inputs, sizes multiples of "
            "the network's)."
        ),
    )
    parser.add_argument("--ckpt_path", required=True, help="checkpoint of lightning_depth fit")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument(
        "--network",
        action="store_true",
        help="export the bare network (float inputs, log-depth for mono) instead of the "
        "camera graph",
    )
    parser.add_argument(
        "--stages", type=int, default=None, help="anytime networks: stop after k stages"
    )
    parser.add_argument(
        "--resolution",
        default=None,
        choices=EXPORTABLE_RESOLUTIONS,
        help="camera graph: predict at 'train' (resize to the training size and back), "
        "'native' (pad to the network's multiple and crop) or 'x2' (stereo: the pair enlarged "
        "2x, the disparity back at the pair's size, halved); default: as predict (train where "
        "the task supports it and the checkpoint records its training size, e.g. mono)",
    )
    parser.add_argument("--out", default=None, help="default: next to the checkpoint")
    parser.add_argument(
        "--height",
        type=int,
        default=None,
        help="example height (default: the task's); a TorchScript camera graph takes only it",
    )
    parser.add_argument("--width", type=int, default=None, help="example width")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check")
    args = parser.parse_args(list(argv or []))

    graph = "network" if args.network else "camera"
    task = load_task(args.ckpt_path)
    height = args.height or task.default_export_size[0]
    width = args.width or task.default_export_size[1]
    suffix = ".onnx" if args.format == "onnx" else ".pt"
    tag = "_network" if args.network else ""
    out = (
        Path(args.out)
        if args.out
        else Path(args.ckpt_path).with_name(
            f"{Path(args.ckpt_path).stem}{tag}_{args.dtype}{suffix}"
        )
    )
    out, metadata = export_with_metadata(
        task, out, args.format, args.dtype, height, width, args.stages, graph,
        checkpoint=args.ckpt_path, resolution=args.resolution,
    )  # fmt: skip
    summary: dict = {
        "task": task.name,
        "graph": graph,
        "file": str(out),
        "bytes": out.stat().st_size,
        "inputs": list(task.input_keys),
        "output": metadata["output"]["name"],
        "unit": metadata["output"]["unit"],
        "height": height,
        "width": width,
    }
    failure = None
    if not args.no_check:
        check_h, check_w = _check_size_for(task, graph, args.format, height, width)
        stats = check_exported(
            out, task, check_h, check_w, args.dtype, stages=args.stages, graph=graph,
            resolution=args.resolution,
        )  # fmt: skip
        summary.update(stats)
        key, bound = _tolerance(task, graph, args.dtype)
        if stats["nonfinite"]:
            failure = (
                f"exported {out} returns {stats['nonfinite']} NaN or infinite values where the "
                f"PyTorch model's are finite (check at {check_h}x{check_w}, HxW)"
            )
        elif not stats[key] <= bound:  # (a NaN error fails too)
            failure = (
                f"exported {out} differs from the "
                f"{'PyTorch' if args.dtype == 'fp32' else 'float32'} model by {key}="
                f"{stats[key]:.3g} (> {bound:g} for {graph} {args.dtype})"
            )
    summary["contract"] = metadata
    print(json.dumps(summary))  # (also when the check fails: the figures say by how much)
    if failure:
        raise SystemExit(failure)
    return 0
