"""Reading and writing KITTI stereo disparity maps (16-bit PNG, value / 256 px, 0 = invalid)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from lightning_depth.io.errors import DataError

PathLike = Union[str, os.PathLike]

# The largest disparity a 16-bit KITTI PNG can hold.
MAX_KITTI_DISPARITY = 65535 / 256.0


class KittiDisparityError(DataError):
    """A KITTI disparity PNG is missing, unreadable or not 16-bit single-channel."""


def read_kitti_disparity(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI disparity PNG.

    Args:
        path: 16-bit single-channel PNG; a pixel holds ``round(disparity * 256)``, 0 where the
            ground truth is unknown.

    Returns:
        ``(disparity, valid)``: float32 ``(H, W)`` disparity in pixels (0 where invalid) and
        bool ``(H, W)`` validity mask.

    Raises:
        KittiDisparityError: (a ``ValueError``) naming the file if it is not a readable 16-bit
            single-channel image.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            raw = np.asarray(image)
    except FileNotFoundError:
        raise KittiDisparityError(f"{path}: KITTI disparity file does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise KittiDisparityError(f"{path}: cannot read KITTI disparity PNG ({err})") from None
    # Pillow opens 16-bit grayscale PNGs as "I;16" (or "I" in older versions).
    if mode not in ("I;16", "I;16B", "I") or raw.ndim != 2:
        raise KittiDisparityError(
            f"{path}: KITTI disparity must be a 16-bit single-channel PNG, got mode {mode!r} "
            f"with shape {raw.shape}"
        )
    if mode == "I" and (raw.min() < 0 or raw.max() > 65535):
        raise KittiDisparityError(f"{path}: KITTI disparity values outside the 16-bit range")
    values = raw.astype(np.float32)
    return values / 256.0, raw > 0


def write_kitti_disparity(
    path: PathLike, disparity: np.ndarray, valid: Optional[np.ndarray] = None
) -> None:
    """Write a disparity map as a KITTI 16-bit PNG, to 1/256 px.

    As KITTI's devkit, a valid pixel is stored as at least 1 so that tiny positive disparities
    stay valid; invalid pixels are stored as 0.

    Args:
        path: ``.png`` file to write.
        disparity: float ``(H, W)`` disparity in pixels, in ``[0, 65535 / 256]`` where valid.
        valid: optional bool ``(H, W)`` mask; default: ``disparity > 0``.
    """
    disparity = np.asarray(disparity)
    if disparity.ndim != 2 or disparity.size == 0:
        raise ValueError(f"write_kitti_disparity expects an (H, W) array, got {disparity.shape}")
    if not (
        np.issubdtype(disparity.dtype, np.floating) or np.issubdtype(disparity.dtype, np.integer)
    ):
        raise TypeError(f"write_kitti_disparity expects a real array, got {disparity.dtype}")
    disparity = disparity.astype(np.float64)
    if valid is None:
        valid = np.nan_to_num(disparity, nan=0.0) > 0
    else:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != disparity.shape:
            raise ValueError(
                f"valid must have the disparity's shape {disparity.shape}, got {valid.shape}"
            )
    d = disparity[valid]
    if not np.isfinite(d).all():
        raise ValueError("write_kitti_disparity: valid pixels hold NaN or inf")
    if d.size and (d.min() < 0 or d.max() > MAX_KITTI_DISPARITY):
        raise ValueError(
            f"write_kitti_disparity: valid disparities must lie in [0, {MAX_KITTI_DISPARITY:.3f}], "
            f"got [{d.min():.3f}, {d.max():.3f}]"
        )
    out = np.zeros(disparity.shape, dtype=np.uint16)
    out[valid] = np.maximum(np.round(d * 256.0), 1).astype(np.uint16)
    Image.fromarray(out).save(path, format="PNG")
