"""Reading images and ``.npy`` arrays with errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from lightning_depth.io.errors import DataError

__all__ = ["DataError", "check_depth", "read_npy", "read_rgb"]

PathLike = Union[str, Path]

# Pillow modes that hold 8-bit colour or grey levels; converting them to RGB is what
# cv2.imread(..., IMREAD_COLOR) does (grey replicated, alpha dropped, palette expanded).
_RGB_CONVERTIBLE = ("RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "1")


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        reason = "is a folder, not a file" if path.exists() else "does not exist"
        raise DataError(f"{what} file {path} {reason}")


def read_rgb(path: PathLike) -> np.ndarray:
    """Read an 8-bit image file as RGB.

    Grey, palette and RGBA images are converted as ``cv2.imread`` would (grey replicated,
    alpha dropped); 16-bit and float images are rejected rather than silently rescaled.

    Args:
        path: image file (PNG, JPEG, ... anything pillow reads).

    Returns:
        uint8 array (H, W, 3).

    Raises:
        DataError: the file is missing, corrupt or truncated, or not an 8-bit image.
    """
    path = Path(path)
    _require_file(path, "image")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file only fails here
            mode = img.mode
            if mode not in _RGB_CONVERTIBLE:
                raise DataError(
                    f"image {path} has pillow mode {mode!r}; expected an 8-bit RGB, RGBA, "
                    "grey or palette image"
                )
            rgb = np.asarray(img.convert("RGB"))
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow reports undecodable data as OSError (truncated, bad CRC), UnidentifiedImageError
        # (an OSError: not an image) or SyntaxError (malformed headers).
        raise DataError(f"image {path} is corrupt or truncated: cannot decode it ({e})") from e
    return rgb


def read_npy(
    path: PathLike,
    *,
    ndim: Union[int, Sequence[int], None] = None,
    shape: Optional[Sequence[Optional[int]]] = None,
    what: str = "array",
) -> np.ndarray:
    """Read a numeric ``.npy`` file, checking its rank and shape.

    Args:
        path: ``.npy`` file.
        ndim: accepted number(s) of dimensions, e.g. ``(2, 3)``.
        shape: expected shape; ``None`` entries match any size, e.g. ``(None, None, 1)``.
        what: what the file holds ("depth", "mask"), used in messages.

    Returns:
        The array as stored (dtype unchanged).

    Raises:
        DataError: missing or unreadable file, a non-numeric array, wrong rank or shape.
    """
    path = Path(path)
    _require_file(path, what)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{what} file {path} is not a readable .npy array ({e})") from e
    if not isinstance(array, np.ndarray) or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise DataError(f"{what} file {path} holds dtype {array.dtype}; expected a numeric array")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            raise DataError(
                f"{what} file {path} has shape {array.shape}; expected {_ndim_text(allowed)}"
            )
    if shape is not None:
        shape = tuple(shape)
        if len(shape) != array.ndim or any(
            want is not None and want != got for want, got in zip(shape, array.shape)
        ):
            expected = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise DataError(f"{what} file {path} has shape {array.shape}; expected {expected}")
    return array


def _ndim_text(allowed: tuple[int, ...]) -> str:
    return " or ".join(f"{n} dimensions" for n in allowed)


def check_depth(depth: np.ndarray, path: PathLike, what: str = "depth") -> None:
    """Check that a depth (or disparity) map is finite and non-negative.

    Args:
        depth: the array, any shape.
        path: the file it came from, for the message.
        what: what it holds ("depth", "disparity"), for the message.

    Raises:
        DataError: it holds NaN, inf or negative values (the message counts them).
    """
    bad = ~np.isfinite(depth)
    if bad.any():
        raise DataError(
            f"{what} file {path} holds {int(np.isnan(depth).sum())} NaN and "
            f"{int(np.isinf(depth).sum())} inf values; expected finite values"
        )
    negative = depth < 0
    if negative.any():
        raise DataError(
            f"{what} file {path} holds {int(negative.sum())} negative values "
            f"(min {float(depth.min()):g}); expected values >= 0"
        )
