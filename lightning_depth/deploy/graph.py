"""What an exported file computes, and the contract that says so.

:class:`CameraGraph` (the default export) takes what a camera gives and returns what a robot
uses: one ``uint8`` RGB ``(N, H, W, 3)`` tensor per ``task.input_keys`` (mono: ``image``;
stereo: ``left``, ``right``) of any size of at least :func:`min_size`, and returns
``task.predict_map`` of them, squeezed to ``(N, H, W)`` float32: metric depth in metres or
disparity in pixels at the input size, exactly what ``lightning_depth predict`` writes for the
same images. Inside: scaling by 1/255 (:func:`~lightning_depth.encoding.to_unit`), NCHW,
ImageNet normalisation where ``task.normalized_inputs``, then the task's own predict path
(padding to ``task.size_multiple`` and cropping back, or resizing to the training size and
back, per ``task.predict_resolution``). The map comes without a channel axis because a camera
gives one map per image; the bare network (``export --network``) keeps ``(B, 1, H, W)``.

:func:`describe` builds the contract stored in every exported file (see
:mod:`lightning_depth.deploy.runtime` for reading it back and for the checks it drives).
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

import lightning_depth
from lightning_depth.encoding import IMAGENET_MEAN, IMAGENET_STD, normalize, to_unit
from lightning_depth.tasks.base import DepthTask

__all__ = [
    "GRAPHS",
    "MAP_UNITS",
    "CameraGraph",
    "camera_inputs",
    "describe",
    "file_sha256",
    "min_size",
]

PathLike = Union[str, Path]

#: the graph kinds ``export`` writes: the camera graph (default) and the bare network.
GRAPHS = ("camera", "network")
#: the unit of each ``DepthTask.map_kind``.
MAP_UNITS = {"depth": "metres", "disparity": "pixels"}
#: what :func:`describe` calls the metadata's layout (bumped when keys change meaning).
FORMAT_VERSION = 1


class CameraGraph(nn.Module):
    """``uint8`` RGB images ``(N, H, W, 3)``, one per ``task.input_keys`` -> ``(N, H, W)``
    float32 ``task.predict_map`` (depth in metres or disparity in pixels, ``task.map_kind``).

    Args:
        task: the task, in eval mode and the dtype wanted (its current ``predict_stages``
            and ``predict_resolution`` apply); ``.to()``/``.eval()`` on the graph reach only
            its weighted children.
        dtype: the network's compute dtype (inputs are cast after normalisation; the map
            comes back in float32).

    Example:
        >>> graph = CameraGraph(task).eval()            # doctest: +SKIP
        >>> depth = graph(torch.zeros(1, 240, 320, 3, dtype=torch.uint8))  # (1, 240, 320)
    """

    def __init__(self, task: DepthTask, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        # The task stays outside the module tree (torch.jit.trace reads every submodule's
        # attributes, and a LightningModule's ``trainer`` raises outside a Trainer); its
        # children with weights (the network) are registered, so exports hold them as weights.
        object.__setattr__(self, "task", task)
        for name, child in task.named_children():
            if next(itertools.chain(child.parameters(), child.buffers()), None) is not None:
                self.add_module(name, child)
        self.dtype = dtype

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """``uint8 (N, H, W, 3)`` -> the network's input ``(N, 3, H, W)``, as predict's data
        pipeline encodes files (see :mod:`lightning_depth.encoding`)."""
        # NCHW while still uint8 (a quarter of the bytes to move), as predict's data do
        x = to_unit(image.permute(0, 3, 1, 2))
        if self.task.normalized_inputs:
            x = normalize(x)
        return x.to(self.dtype)

    def forward(self, *images: torch.Tensor) -> torch.Tensor:
        return self.task.predict_map(*(self.encode(i) for i in images))[:, 0].float()


def min_size(task: DepthTask) -> tuple[int, int]:
    """The smallest ``(H, W)`` an exported graph takes: two cells of the network's coarsest
    level (``2 * size_multiple``); export traces dynamic sizes from there."""
    m = task.size_multiple
    return 2 * m, 2 * m


def camera_inputs(
    task: DepthTask, height: int, width: int, batch: int = 1, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Random camera images for :class:`CameraGraph`: ``uint8 (batch, height, width, 3)``,
    one per ``task.input_keys``."""
    g = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randint(0, 256, (batch, height, width, 3), generator=g, dtype=torch.uint8)
        for _ in task.input_keys
    )


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model(task: DepthTask, checkpoint: Optional[PathLike]) -> dict[str, Any]:
    """The network's class and settings: the LightningCLI config it was trained with
    (``class_path``/``init_args`` in the checkpoint's hyper-parameters), else only the class
    of ``task.net``."""
    net = getattr(task, "net", None)
    config = None
    if checkpoint is not None:
        # Our own checkpoints hold the LightningCLI config as plain containers.
        hparams = torch.load(checkpoint, map_location="cpu", weights_only=False).get(
            "hyper_parameters"
        )
        config = (hparams or {}).get("net")
    if isinstance(config, dict) and "class_path" in config:
        cls, settings = config["class_path"], dict(config.get("init_args") or {})
    else:
        cls = f"{type(net).__module__}.{type(net).__qualname__}" if net is not None else None
        settings = {}
    return {"class": cls, "settings": settings, "parameters": int(task.parameter_count())}


def _encoding(task: DepthTask) -> tuple[str, dict[str, Any], list[float]]:
    """The network's input encoding: a formula, the normalisation, the value range."""
    if task.normalized_inputs:
        lo = min((0.0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
        hi = max((1.0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
        norm = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
        return "(x / 255 - mean) / std per RGB channel (ImageNet)", norm, [lo, hi]
    return "x / 255 (RGB in [0, 1])", {}, [0.0, 1.0]


def describe(
    task: DepthTask,
    graph: str,
    fmt: str,
    dtype: str,
    example_size: tuple[int, int],
    stages: Optional[int] = None,
    checkpoint: Optional[PathLike] = None,
    fixed_size: Optional[tuple[int, int]] = None,
    batch: Optional[int] = None,
) -> dict[str, Any]:
    """The contract of an exported file, as stored in it (JSON-serialisable).

    Keys: ``format_version``, ``lightning_depth_version``, ``task``, ``task_class``, ``model``
    (``class``, ``settings``, ``parameters``), ``graph`` (``"camera"``/``"network"``),
    ``format``, ``dtype``, ``inputs`` (per input: ``name``, ``layout``, ``dtype``, ``range``,
    ``channels``, ``encoding``, ``normalization``), ``batch`` (``"dynamic"`` or 1),
    ``size_multiple`` (of the file's inputs: 1 for the camera graph), ``network_size_multiple``,
    ``min_size``, ``fixed_size`` (``[H, W]`` of a traced size-bound file, else ``null``),
    ``example_size``, ``train_size``, ``predict_resolution``, ``output`` (``name``, ``kind``,
    ``unit``, ``layout``, ``meaning``), ``max_disparity``, ``stages``, ``num_stages``,
    ``checkpoint`` (``file``, ``sha256``; ``null`` for a task exported from memory), ``opset``
    (ONNX) and a one-line ``summary``.

    Args:
        task: the exported task.
        graph: ``"camera"`` or ``"network"``.
        fmt: ``"onnx"`` or ``"torchscript"``.
        dtype: ``"fp32"``, ``"fp16"`` or ``"bf16"``: the compute (and bare-network input)
            dtype.
        example_size: the size the file was traced at.
        stages: anytime networks: the stages the file runs (``None``: all).
        checkpoint: the checkpoint file the task came from (hashed).
        fixed_size: the only size a traced file takes, if so.
        batch: ``1`` for a batch-1 file; ``None``: dynamic.
    """
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
    encoding, normalization, value_range = _encoding(task)
    float_dtype = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}[dtype]
    names = list(task.input_keys)
    if graph == "camera":
        inputs = [
            {
                "name": name,
                "layout": "NHWC",
                "dtype": "uint8",
                "range": [0, 255],
                "channels": "RGB",
                "encoding": f"8-bit RGB as the camera gives it (the graph computes {encoding})",
                "normalization": normalization or None,
            }
            for name in names
        ]
        output = {
            "name": task.map_kind,
            "kind": task.map_kind,
            "unit": MAP_UNITS.get(task.map_kind, ""),
            "layout": "NHW",
            "meaning": f"{task.map_kind} ({MAP_UNITS.get(task.map_kind, '')}) of each input "
            "pixel, at the input size",
        }
        multiple = 1
    else:
        inputs = [
            {
                "name": name,
                "layout": "NCHW",
                "dtype": float_dtype,
                "range": value_range,
                "channels": "RGB",
                "encoding": encoding,
                "normalization": normalization or None,
            }
            for name in names
        ]
        output = {
            "name": task.output_name,
            "kind": task.output_name,
            "unit": task.output_unit,
            "layout": "NCHW",
            "meaning": f"the bare network's output: {task.output_unit}",
        }
        multiple = task.size_multiple
    shape = "(N, H, W, 3)" if graph == "camera" else "(N, 3, H, W)"
    out_shape = "(N, H, W)" if graph == "camera" else "(N, 1, H, W)"
    summary = (
        f"{task.name} {graph} graph: {', '.join(names)} {inputs[0]['dtype']} RGB {shape} -> "
        f"{output['name']} {out_shape} in {output['unit']}"
    )
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "lightning_depth_version": lightning_depth.__version__,
        "summary": summary,
        "task": task.name,
        "task_class": f"{type(task).__module__}.{type(task).__qualname__}",
        "model": _model(task, checkpoint),
        "graph": graph,
        "format": fmt,
        "dtype": dtype,
        "inputs": inputs,
        "batch": 1 if batch == 1 else "dynamic",
        "size_multiple": multiple,
        "network_size_multiple": task.size_multiple,
        "min_size": list(min_size(task)),
        "fixed_size": list(fixed_size) if fixed_size else None,
        "example_size": list(example_size),
        "train_size": list(task.train_size) if task.train_size else None,
        "predict_resolution": task.predict_resolution if graph == "camera" else None,
        "output": output,
        # stereo tasks ignore disparities at or above this in training and metrics
        "max_disparity": getattr(task, "maxdisp", None),
        "stages": stages if stages is not None else task.num_stages,
        "num_stages": task.num_stages,
        "checkpoint": (
            {"file": Path(checkpoint).name, "sha256": file_sha256(checkpoint)}
            if checkpoint is not None
            else None
        ),
    }
    return metadata
