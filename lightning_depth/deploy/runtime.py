"""A small runtime for exported files: load one, feed it camera images, get depth or disparity.

::

    from lightning_depth.deploy import load

    model = load("stereo.onnx")            # onnxruntime (or TorchScript for a .pt file)
    disparity = model(left, right)         # uint8 (H, W, 3) RGB arrays -> float32 (H, W)
    print(model.kind, model.unit)          # "disparity", "pixels"

Every file ``lightning_depth export`` writes carries its contract (:func:`read_metadata`:
ONNX ``metadata_props["lightning_depth"]``, TorchScript ``_extra_files["lightning_depth.json"]``),
and :class:`DeployedModel` checks inputs against it before running, with errors that say
what was expected: the number of images, their dtype, shape and channels, the smallest size,
and for bare-network files (``export --network``) the size multiple and the value range.

Inputs and outputs, per image: a camera-graph file (the default export) takes ``uint8``
RGB ``(H, W, 3)`` arrays, or ``(N, H, W, 3)`` batches, and returns metric depth (metres) or
disparity (pixels) as float32 ``(H, W)``, or ``(N, H, W)`` for batches; a bare-network file
takes float ``(3, H, W)`` or ``(N, 3, H, W)`` arrays encoded as its metadata says and returns
its raw output the same way (e.g. log-depth). Files traced for batch 1 (the stereo network)
are run one sample at a time.

This module needs only numpy and onnxruntime for ONNX files (torch only for TorchScript
files) and imports no model code, so it runs where the training package's dependencies are
not installed.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from lightning_depth.io.errors import DataError

__all__ = [
    "METADATA_FILE",
    "METADATA_KEY",
    "DeployedModel",
    "load",
    "onnx_session",
    "read_metadata",
]

PathLike = Union[str, Path]

#: ONNX ``metadata_props`` key holding the contract as JSON.
METADATA_KEY = "lightning_depth"
#: TorchScript extra file holding the contract as JSON.
METADATA_FILE = "lightning_depth.json"
#: the suffixes :func:`load` knows: ONNX files and TorchScript archives.
SUFFIXES = (".onnx", ".pt")


def _require_file(path: Path) -> None:
    if path.suffix not in SUFFIXES:
        raise DataError(
            f"exported model {path}: expected a .onnx (ONNX) or .pt (TorchScript) file, got "
            f"suffix {path.suffix!r}"
        )
    if not path.is_file():
        reason = "is a folder, not a file" if path.exists() else "does not exist"
        raise DataError(f"exported model {path} {reason}")


def onnx_session(path: Path, providers: Optional[Sequence[str]] = None, optimize: bool = True):
    """An onnxruntime session of ``path`` (quiet; CUDA first where available unless
    ``providers`` says otherwise); an unreadable file is a DataError naming it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:  # only the metadata is wanted: skip graph optimisation
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if providers is None:
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider",) if p in available]
        providers.append("CPUExecutionProvider")
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as e:  # onnxruntime raises its own types for unreadable files
        raise DataError(f"exported model {path} cannot be read by onnxruntime: {e}") from e


def _parse(path: Path, text: Optional[str]) -> dict:
    if text is None:
        where = (
            f"ONNX metadata_props[{METADATA_KEY!r}]"
            if path.suffix == ".onnx"
            else f"TorchScript extra file {METADATA_FILE!r}"
        )
        raise DataError(
            f"exported model {path} has no lightning_depth metadata ({where} is missing): it was "
            "not written by `lightning_depth export`, or by a version before the contract was "
            "stored; export it again"
        )
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"exported model {path}: its lightning_depth metadata is not JSON: {e}"
        ) from e
    if not isinstance(metadata, dict) or "inputs" not in metadata or "output" not in metadata:
        raise DataError(
            f"exported model {path}: its lightning_depth metadata lacks 'inputs'/'output'"
        )
    return metadata


def _torchscript_metadata_text(path: Path) -> Optional[str]:
    """The extra file of a TorchScript archive (a zip: ``<name>/extra/<file>``), read without
    torch."""
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(f"/extra/{METADATA_FILE}"):
                    return archive.read(name).decode("utf-8")
    except zipfile.BadZipFile as e:
        raise DataError(f"exported model {path} is not a TorchScript archive: {e}") from e
    return None


def read_metadata(path: PathLike) -> dict:
    """The contract stored in an exported file (what :func:`lightning_depth.deploy.export.
    export_model` wrote), as a dict.

    Raises:
        DataError: the file is missing, not ONNX/TorchScript, or has no lightning_depth
            metadata.
    """
    path = Path(path)
    _require_file(path)
    if path.suffix == ".onnx":
        meta = onnx_session(path, ["CPUExecutionProvider"], optimize=False).get_modelmeta()
        return _parse(path, meta.custom_metadata_map.get(METADATA_KEY))
    return _parse(path, _torchscript_metadata_text(path))


def _fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


class DeployedModel:
    """An exported file with its contract; call it with one image (or batch) per input.

    Args:
        path: a ``.onnx`` or ``.pt`` file written by ``lightning_depth export``.
        providers: onnxruntime execution providers; default CUDA when onnxruntime has it,
            then CPU. Ignored for TorchScript files (run on CPU).

    Call: ``model(*images)`` with numpy arrays (anything ``np.asarray`` takes), one per
    :attr:`input_names`, all the same size; returns float32 ``(N, H, W)``, or ``(H, W)`` when
    the images were unbatched (``(H, W, 3)`` / ``(3, H, W)``).

    Raises (on call):
        DataError: inputs that do not fit the contract; the message says what was expected.
    """

    def __init__(self, path: PathLike, providers: Optional[Sequence[str]] = None) -> None:
        self.path = Path(path)
        _require_file(self.path)
        if self.path.suffix == ".onnx":
            self._session = onnx_session(self.path, providers)
            text = self._session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
            self.metadata = _parse(self.path, text)
            self._feed_names = [i.name for i in self._session.get_inputs()]
            self._module = None
        else:
            self.metadata = _parse(self.path, _torchscript_metadata_text(self.path))
            import torch

            self._session = None
            self._module = torch.jit.load(str(self.path), map_location="cpu").eval()
            self._feed_names = self.input_names
        self._inputs: list[dict] = list(self.metadata["inputs"])
        self._output: dict = dict(self.metadata["output"])
        layout = self._inputs[0]["layout"]
        if layout not in ("NHWC", "NCHW"):
            raise DataError(f"exported model {self.path}: unknown input layout {layout!r}")
        self._channel_axis = -1 if layout == "NHWC" else -3

    # -- the contract ----------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """The inputs in call order (e.g. ``["left", "right"]``)."""
        return [i["name"] for i in self.metadata["inputs"]]

    @property
    def kind(self) -> str:
        """What the output holds: ``"depth"`` or ``"disparity"`` (camera graphs), or the bare
        network's output name (e.g. ``"depth_log"``)."""
        return str(self._output["kind"])

    @property
    def unit(self) -> str:
        """The output's unit (``"metres"``, ``"pixels"``, ...)."""
        return str(self._output["unit"])

    @property
    def session(self) -> Any:
        """The onnxruntime ``InferenceSession`` of an ONNX file (``None`` for TorchScript):
        ``session.run`` skips the checks (e.g. to time them)."""
        return self._session

    @property
    def graph(self) -> str:
        """``"camera"`` (uint8 images in, metric map out) or ``"network"`` (bare network)."""
        return str(self.metadata.get("graph", "network"))

    def __repr__(self) -> str:
        return f"DeployedModel({str(self.path)!r}: {self.metadata.get('summary', '')})"

    # -- checks ----------------------------------------------------------------------------
    def _what(self) -> str:
        task = self.metadata.get("task", "")
        names = ", ".join(self.input_names)
        n = len(self.input_names)
        return f"this {task} model takes {n} image{'s' if n != 1 else ''} ({names})".replace(
            "  ", " "
        )

    def _expected_shape(self) -> str:
        return (
            "(H, W, 3) or (N, H, W, 3)" if self._channel_axis == -1 else "(3, H, W) or (N, 3, H, W)"
        )

    def check(self, *images: Any) -> tuple[list[np.ndarray], bool]:
        """Check ``images`` against the contract.

        Returns:
            the images as batched numpy arrays (``N`` first), and whether they came unbatched.

        Raises:
            DataError: naming what was expected.
        """
        spec = self._inputs
        if len(images) != len(spec):
            raise DataError(f"{self._what()}, got {len(images)}")
        arrays = [np.asarray(image) for image in images]
        first = arrays[0]
        for info, array in zip(spec, arrays):
            name = info["name"]
            dtype = np.dtype(info["dtype"])
            if array.dtype != dtype:
                hint = (
                    ": give the camera's 8-bit RGB pixels (0..255), not scaled or normalised "
                    "images; the graph scales and normalises them itself"
                    if dtype == np.uint8
                    else f": encode images as {info.get('encoding', 'the metadata says')}"
                )
                raise DataError(
                    f"input {name!r} must be {dtype.name} images {self._expected_shape()}, "
                    f"got dtype {array.dtype}{hint}"
                )
            if array.ndim not in (3, 4) or array.shape[self._channel_axis] != 3:
                raise DataError(
                    f"input {name!r} must be RGB images {self._expected_shape()} with 3 "
                    f"channels, got shape {_fmt_shape(array.shape)}"
                )
            if array.ndim != first.ndim or array.shape != first.shape:
                raise DataError(
                    f"inputs {spec[0]['name']!r} and {name!r} must have the same shape, got "
                    f"{_fmt_shape(first.shape)} and {_fmt_shape(array.shape)}"
                )
        unbatched = first.ndim == 3
        arrays = [a[None] if unbatched else a for a in arrays]
        height, width = arrays[0].shape[1:3] if self._channel_axis == -1 else arrays[0].shape[2:]
        min_h, min_w = self.metadata.get("min_size") or (1, 1)
        if height < min_h or width < min_w:
            raise DataError(
                f"images must be at least {min_h}x{min_w} (HxW) for this model, got "
                f"{height}x{width}"
            )
        fixed = self.metadata.get("fixed_size")
        if fixed and (height, width) != tuple(fixed):
            raise DataError(
                f"this {self.path.suffix} file was traced for {fixed[0]}x{fixed[1]} (HxW) images "
                f"only, got {height}x{width}; export it again at that size, or as ONNX (any size)"
            )
        multiple = int(self.metadata.get("size_multiple") or 1)
        if height % multiple or width % multiple:
            raise DataError(
                f"this bare-network file takes heights and widths that are multiples of "
                f"{multiple}, got {height}x{width} (HxW): pad the images (e.g. lightning_depth."
                "models.padding.InputPadder) or export the camera graph (the default), which "
                "takes any size"
            )
        for info, array in zip(spec, arrays):
            lo, hi = info.get("range") or (None, None)
            if lo is None or array.dtype == np.uint8:
                continue
            amin, amax = float(np.min(array)), float(np.max(array))
            tol = 1e-3 * (hi - lo)
            if not (np.isfinite(amin) and np.isfinite(amax)) or amin < lo - tol or amax > hi + tol:
                hint = ": 8-bit pixel values? scale them by 1/255" if amax > 2 * hi + 1 else ""
                raise DataError(
                    f"input {info['name']!r} must hold values in [{lo:.4g}, {hi:.4g}] "
                    f"({info.get('encoding', '')}), got values in [{amin:.4g}, {amax:.4g}]{hint}"
                )
        return arrays, unbatched

    # -- running ---------------------------------------------------------------------------
    def _run_batch(self, arrays: list[np.ndarray]) -> np.ndarray:
        if self._session is not None:
            feeds = {n: np.ascontiguousarray(a) for n, a in zip(self._feed_names, arrays)}
            out = self._session.run(None, feeds)[0]
        else:
            import torch

            with torch.no_grad():
                out = self._module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
            out = out.float().numpy()
        return np.asarray(out, dtype=np.float32)

    def __call__(self, *images: Any) -> np.ndarray:
        arrays, unbatched = self.check(*images)
        if self.metadata.get("batch") == 1 and len(arrays[0]) > 1:
            # traced for batch 1: one sample at a time
            maps = [self._run_batch([a[i : i + 1] for a in arrays]) for i in range(len(arrays[0]))]
            out = np.concatenate(maps)
        else:
            out = self._run_batch(arrays)
        if self._output.get("layout") == "NCHW":
            out = out[:, 0]
        return out[0] if unbatched else out


def load(path: PathLike, providers: Optional[Sequence[str]] = None) -> DeployedModel:
    """Load an exported ``.onnx`` / ``.pt`` file with its contract (see :class:`DeployedModel`).

    Raises:
        DataError: the file is missing, of another kind, or has no lightning_depth metadata.
    """
    return DeployedModel(path, providers)
