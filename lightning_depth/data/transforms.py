"""Array and tensor operations shared by every dataset's transform: sizes (``[H, W]``), resizing
that matches OpenCV bit for bit, crops, padding, the horizontal flip, and array-to-tensor.

Sizes are ``(H, W)`` everywhere in Python and configs, ``HxW`` on the command line and in
messages (:func:`check_size`, :func:`parse_size`, :func:`format_size`).

The reference preprocessing (the Keras DIODE example) resizes with ``cv2.resize`` and its
default ``INTER_LINEAR``. We reproduce it without making OpenCV a dependency, so a model
trained here sees exactly the inputs the reference produced.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

import numpy as np
import torch

__all__ = [
    "centre_crop_window",
    "check_size",
    "format_size",
    "hflip",
    "pad_bottom_right",
    "parse_size",
    "random_crop_window",
    "random_hflip",
    "resize_like_cv2",
    "round_to_multiple",
    "to_chw_tensor",
]


# -- sizes ---------------------------------------------------------------------------------


def format_size(size: Sequence[int]) -> str:
    """``(H, W)`` -> ``"HxW"``."""
    return f"{int(size[0])}x{int(size[1])}"


def check_size(
    size: Sequence[int], name: str = "size", multiple: Optional[int] = None
) -> tuple[int, int]:
    """``size`` as an ``(H, W)`` tuple of positive ints (of multiples of ``multiple``).

    Raises:
        ValueError: not two positive integers (or not multiples of ``multiple``); the
            message names the argument and the ``HxW`` convention.
    """
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be [H, W] (HxW), got {size!r}") from None
    if h < 1 or w < 1 or (multiple and (h % multiple or w % multiple)):
        also = f" of multiples of {multiple}" if multiple else ""
        raise ValueError(f"{name} must be a positive [H, W]{also} (HxW), got {h}x{w}")
    return h, w


def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` (command-line sizes, e.g. ``192x256``) -> ``(H, W)``; an argparse type."""
    try:
        return check_size(text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like HxW (height x width, e.g. 192x256), got {text!r}"
        ) from None


def round_to_multiple(x: int, multiple: int, up: bool = False) -> int:
    """``x`` rounded down (or up) to a multiple of ``multiple``."""
    return -(-x // multiple) * multiple if up else x // multiple * multiple


# -- resizing ------------------------------------------------------------------------------

# OpenCV's fixed-point resize for 8-bit images: coefficients are scaled by 2 ** 11.
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def _check_resize(array: np.ndarray, size_hw: tuple[int, int]) -> tuple[int, int]:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a numpy array (H, W) or (H, W, C), got {type(array).__name__}")
    if array.ndim not in (2, 3) or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"expected an array of shape (H, W) or (H, W, C), got {array.shape}")
    if len(size_hw) != 2 or min(size_hw) < 1:
        raise ValueError(f"size_hw must be (H, W) with H, W >= 1, got {size_hw}")
    return int(size_hw[0]), int(size_hw[1])


def _nearest_index(src: int, dst: int) -> np.ndarray:
    # cv2 INTER_NEAREST: floor(dst_index * src / dst) with the scale computed as OpenCV does
    # (1 / (dst / src) in double), clamped to the last pixel; no half-pixel offset.
    scale = 1.0 / (dst / src)
    return np.minimum(np.floor(np.arange(dst) * scale).astype(np.int64), src - 1)


def _linear_taps(
    src: int, dst: int, clamp_weight: bool, exact_fraction: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """First source index (dst,) and float32 weight of the second tap, as in OpenCV's resize.

    OpenCV's 8-bit path rounds the source coordinate to float32 before taking its fraction;
    its float path (IPP) takes the fraction in double and rounds that (``exact_fraction``).
    """
    scale = 1.0 / (dst / src)
    f = (np.arange(dst) + 0.5) * scale - 0.5
    if not exact_fraction:
        f = f.astype(np.float32)
    i = np.floor(f).astype(np.int64)
    f = (f - i).astype(np.float32)
    if clamp_weight:
        # Horizontally OpenCV clamps index and weight at both borders ...
        f = np.where((i < 0) | (i >= src - 1), np.float32(0), f)
        i = np.clip(i, 0, src - 1)
    # ... vertically it keeps the weight and clamps the two row indices (done by the caller).
    return i, f


def _resize_linear_uint8(array: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    # Written by hand: no installed library except OpenCV reproduces its fixed-point rounding.
    h, w = array.shape[:2]
    if array.ndim == 3 and array.shape[2] == 2 and (h, w) == (2 * out_h, 2 * out_w):
        # OpenCV turns exact 2x downscales into INTER_AREA; for 3/4-channel and grey images
        # that equals the fixed-point path below, but 2-channel ones take a float area path
        # that rounds half to even.
        quads = array.astype(np.int32).reshape(out_h, 2, out_w, 2, 2).sum(axis=(1, 3))
        return np.rint(quads / 4).astype(np.uint8)
    x0, fx = _linear_taps(w, out_w, clamp_weight=True)
    x1 = np.minimum(x0 + 1, w - 1)
    ax1 = np.rint(fx * np.float32(_COEF_SCALE)).astype(np.int64)
    ax0 = np.rint((np.float32(1) - fx) * np.float32(_COEF_SCALE)).astype(np.int64)
    y0, fy = _linear_taps(h, out_h, clamp_weight=False)
    y1 = np.clip(y0 + 1, 0, h - 1)
    y0 = np.clip(y0, 0, h - 1)
    by1 = np.rint(fy * np.float32(_COEF_SCALE)).astype(np.int64)
    by0 = np.rint((np.float32(1) - fy) * np.float32(_COEF_SCALE)).astype(np.int64)

    src = array.astype(np.int64)
    extra = (1,) * (array.ndim - 2)  # broadcast weights over channels
    # Horizontal pass: exact integer sums (B x 2 ** 11).
    rows = src[:, x0] * ax0.reshape(1, -1, *extra) + src[:, x1] * ax1.reshape(1, -1, *extra)
    # Vertical pass as OpenCV's 8-bit VResizeLinear computes it (SIMD and scalar tail alike):
    # each row sum is shifted right by 4, multiplied by its 16-bit weight keeping the high 16
    # bits, and the sum rounded with (v + 2) >> 2. This is not (v + 2**21) >> 22: it drops low
    # bits before rounding and differs from it by one grey level on some pixels.
    b0 = by0.reshape(-1, 1, *extra)
    b1 = by1.reshape(-1, 1, *extra)
    top = (b0 * (rows[y0] >> 4)) >> 16
    bottom = (b1 * (rows[y1] >> 4)) >> 16
    return np.clip((top + bottom + 2) >> 2, 0, 255).astype(np.uint8)


def _resize_linear_float(array: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    # Written by hand rather than with torch's bilinear (align_corners=False), which has the
    # same semantics but computes source coordinates in float32: over a few hundred pixels
    # that drifts by ~1e-5 of the value range from OpenCV, which takes them in double.
    h, w = array.shape[:2]
    dtype = array.dtype
    extra = (1,) * (array.ndim - 2)
    # OpenCV wheels hand float resizes to IPP, which takes coordinate fractions in double,
    # except for 2-channel images and single-row/column sources, which take OpenCV's own
    # float32 path.
    exact = (array.ndim == 2 or array.shape[2] != 2) and h > 1 and w > 1
    x0, fx = _linear_taps(w, out_w, clamp_weight=True, exact_fraction=exact)
    x1 = np.minimum(x0 + 1, w - 1)
    y0, fy = _linear_taps(h, out_h, clamp_weight=False, exact_fraction=exact)
    y1 = np.clip(y0 + 1, 0, h - 1)
    y0 = np.clip(y0, 0, h - 1)
    ax1 = fx.astype(dtype).reshape(1, -1, *extra)
    by1 = fy.astype(dtype).reshape(-1, 1, *extra)
    one = dtype.type(1)
    rows = array[:, x0] * (one - ax1) + array[:, x1] * ax1
    return rows[y0] * (one - by1) + rows[y1] * by1


def resize_like_cv2(
    array: np.ndarray, size_hw: tuple[int, int], interpolation: str = "linear"
) -> np.ndarray:
    """Resize as ``cv2.resize(array, (W, H), interpolation=cv2.INTER_LINEAR | INTER_NEAREST)``.

    ``"linear"``: uint8 input follows OpenCV's fixed-point path (weights rounded to multiples
    of 1/2048, horizontal then vertical pass) and matches it exactly; float32/float64 input is
    bilinear with half-pixel centres, border clamp and no antialias, computed in the input's
    dtype (within ~1e-6 of OpenCV's float32 result for values in [0, 1]; torch's
    ``F.interpolate(mode="bilinear", align_corners=False)`` agrees to ~1e-5).
    ``"nearest"``: OpenCV's INTER_NEAREST (``src = floor(dst * in / out)``) for any dtype,
    bool included.

    Args:
        array: (H, W) or (H, W, C) numpy array.
        size_hw: output size ``(H, W)`` (note: cv2 takes ``(W, H)``).
        interpolation: ``"linear"`` or ``"nearest"``.

    Returns:
        The resized array (H_out, W_out[, C]) with the input's dtype.
    """
    out_h, out_w = _check_resize(array, size_hw)
    h, w = array.shape[:2]
    if interpolation == "nearest":
        return array[_nearest_index(h, out_h)][:, _nearest_index(w, out_w)]
    if interpolation != "linear":
        raise ValueError(f"interpolation must be 'linear' or 'nearest', got {interpolation!r}")
    if array.dtype == np.uint8:
        return _resize_linear_uint8(array, out_h, out_w)
    if array.dtype in (np.float32, np.float64):
        return _resize_linear_float(array, out_h, out_w)
    raise TypeError(
        f"linear resize takes uint8, float32 or float64 arrays, got {array.dtype}; "
        "use interpolation='nearest' for masks and labels"
    )


# -- crops, padding and flips ---------------------------------------------------------------


def random_crop_window(
    height: int, width: int, size: Sequence[int], generator: Optional[torch.Generator] = None
) -> tuple[int, int]:
    """Top-left corner ``(top, left)`` of a uniformly random ``size`` window in an
    ``height x width`` image, drawn from ``generator`` (``None``: torch's global RNG).

    Raises:
        ValueError: the window does not fit.
    """
    h, w = size
    if h > height or w > width:
        raise ValueError(
            f"a {format_size(size)} window does not fit a {height}x{width} (HxW) image"
        )
    top = int(torch.randint(0, height - h + 1, (), generator=generator).item())
    left = int(torch.randint(0, width - w + 1, (), generator=generator).item())
    return top, left


def centre_crop_window(height: int, width: int, size: Sequence[int]) -> tuple[int, int]:
    """Top-left corner ``(top, left)`` of the centred ``size`` window (rounded up-left)."""
    return (height - int(size[0])) // 2, (width - int(size[1])) // 2


def pad_bottom_right(tensor: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Zero-pad ``(..., H, W)`` at the bottom and right to ``size`` (at least ``(H, W)``)."""
    h, w = tensor.shape[-2:]
    return torch.nn.functional.pad(tensor, (0, int(size[1]) - w, 0, int(size[0]) - h))


def hflip(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Flip tensors (..., H, W) left-right, all together (image, target and mask alike)."""
    return tuple(torch.flip(t, dims=(-1,)) for t in tensors)


def random_hflip(
    *tensors: torch.Tensor, generator: Optional[torch.Generator] = None, p: float = 0.5
) -> tuple[torch.Tensor, ...]:
    """:func:`hflip` all ``tensors`` together with probability ``p``, drawn from
    ``generator`` (``None``: torch's global RNG); otherwise return them unchanged."""
    if bool(torch.rand((), generator=generator) < p):
        return hflip(*tensors)
    return tensors


def to_chw_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) numpy array -> (1, H, W) or (C, H, W) tensor (same dtype)."""
    if array.ndim == 2:
        return torch.from_numpy(np.ascontiguousarray(array))[None]
    if array.ndim == 3:
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    raise ValueError(f"expected an array of shape (H, W) or (H, W, C), got {array.shape}")
