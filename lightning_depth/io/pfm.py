"""Reading and writing PFM (Portable Float Map) files, the format of SceneFlow's disparities.

Written by hand: no maintained library reads PFM (pillow, imageio and OpenCV either lack it or
get the byte order and the bottom-up rows wrong for SceneFlow's files), and the format is small.

Layout::

    Pf | PF            # magic: Pf = 1 channel, PF = 3 channels (RGB)
    <width> <height>
    <scale>            # |scale| is a scale factor; scale < 0: little-endian, > 0: big-endian
    <float32 data>     # width * height * channels values, rows stored bottom-up
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Union

import numpy as np

from lightning_depth.io.errors import DataError

PathLike = Union[str, os.PathLike]

# A header line longer than this means the file is not a PFM; the cap keeps a stray binary
# file from being read whole by `readline`.
_MAX_HEADER_LINE = 256


class PFMError(DataError):
    """A PFM file is malformed or holds values it should not."""


def _header_line(f, path: Path, what: str) -> str:
    raw = f.readline(_MAX_HEADER_LINE)
    if not raw.endswith(b"\n"):
        raise PFMError(f"{path}: PFM header ended before the {what} line was complete")
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise PFMError(f"{path}: PFM {what} line is not ASCII text: {raw[:32]!r}") from None


def read_pfm(path: PathLike, check_finite: bool = False) -> tuple[np.ndarray, float]:
    """Read a PFM file.

    Args:
        path: file to read.
        check_finite: raise if the data holds NaN or +-inf.

    Returns:
        ``(array, scale)``: ``array`` is float32 of shape ``(H, W)`` for ``Pf`` or ``(H, W, 3)``
        for ``PF``, top row first, in native byte order; ``scale`` is the header's absolute
        scale (its sign only encodes the byte order).

    Raises:
        PFMError: (a ``ValueError``) naming the file and the problem: wrong magic, bad dimensions
            line, non-numeric or zero scale, truncated or overlong data, non-finite values.
    """
    path = Path(path)
    with open(path, "rb") as f:
        magic = _header_line(f, path, "magic")
        if magic not in ("Pf", "PF"):
            raise PFMError(f"{path}: not a PFM file: magic is {magic!r}, expected 'Pf' or 'PF'")
        channels = 3 if magic == "PF" else 1

        dims = _header_line(f, path, "dimensions")
        parts = dims.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise PFMError(
                f"{path}: bad PFM dimensions line {dims!r}, expected '<width> <height>' "
                "(two positive integers)"
            )
        width, height = int(parts[0]), int(parts[1])
        if width <= 0 or height <= 0:
            raise PFMError(f"{path}: bad PFM dimensions {width}x{height}, expected positive sizes")

        scale_line = _header_line(f, path, "scale")
        try:
            scale = float(scale_line)
        except ValueError:
            raise PFMError(
                f"{path}: PFM scale line {scale_line!r} is not a number (expected e.g. '-1.0')"
            ) from None
        if scale == 0.0 or not np.isfinite(scale):
            raise PFMError(f"{path}: PFM scale is {scale_line!r}; it must be a non-zero number")

        dtype = np.dtype("<f4" if scale < 0 else ">f4")
        expected = width * height * channels * dtype.itemsize
        data = f.read(expected + 1)

    if len(data) < expected:
        raise PFMError(
            f"{path}: truncated PFM data: {len(data)} bytes, expected {expected} for "
            f"{width}x{height}x{channels} float32"
        )
    if len(data) > expected:
        raise PFMError(
            f"{path}: PFM data is longer than the header's {width}x{height}x{channels} float32 "
            f"({expected} bytes); the dimensions line is probably wrong"
        )

    shape = (height, width, 3) if channels == 3 else (height, width)
    # Rows are stored bottom-up; copy to get a writable, native-endian, top-down array.
    array = np.frombuffer(data, dtype=dtype).reshape(shape)[::-1].astype(np.float32)
    if check_finite and not np.isfinite(array).all():
        n_nan = int(np.isnan(array).sum())
        n_inf = int(np.isinf(array).sum())
        raise PFMError(f"{path}: PFM data holds non-finite values ({n_nan} NaN, {n_inf} inf)")
    return array, abs(scale)


def write_pfm(
    path: PathLike,
    array: np.ndarray,
    scale: float = 1.0,
    byteorder: Literal["little", "big"] = "little",
) -> None:
    """Write a PFM file (``Pf`` for ``(H, W)``, ``PF`` for ``(H, W, 3)``).

    Args:
        path: file to write; its parent folder must exist.
        array: real-valued array of shape ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, top row
            first; stored as float32.
        scale: positive scale factor for the header.
        byteorder: ``"little"`` (negative scale in the header, as SceneFlow's files) or
            ``"big"``.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(
            f"write_pfm expects an array of shape (H, W), (H, W, 1) or (H, W, 3), got {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"write_pfm expects a non-empty array, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"write_pfm expects a real-valued array, got dtype {array.dtype}")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"write_pfm expects a positive finite scale, got {scale}")
    if byteorder not in ("little", "big"):
        raise ValueError(f"byteorder must be 'little' or 'big', got {byteorder!r}")

    magic = "PF" if array.ndim == 3 else "Pf"
    height, width = array.shape[:2]
    signed_scale = -float(scale) if byteorder == "little" else float(scale)
    dtype = np.dtype("<f4" if byteorder == "little" else ">f4")
    data = np.ascontiguousarray(array[::-1], dtype=dtype)
    with open(path, "wb") as f:
        f.write(f"{magic}\n{width} {height}\n{signed_scale}\n".encode("ascii"))
        f.write(data.tobytes())
