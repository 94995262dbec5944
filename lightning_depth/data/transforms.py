"""Resizing that matches OpenCV bit for bit, flips, and array-to-tensor helpers.

The reference preprocessing (the Keras DIODE example) resizes with ``cv2.resize`` and its
default ``INTER_LINEAR``. We reproduce it without making OpenCV a dependency, so a model
trained here sees exactly the inputs the reference produced.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["hflip", "resize_like_cv2", "to_chw_tensor"]

# OpenCV's fixed-point resize for 8-bit images: coefficients are scaled by 2 ** 11.
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def _check_size(array: np.ndarray, size_hw: tuple[int, int]) -> tuple[int, int]:
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
    out_h, out_w = _check_size(array, size_hw)
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


def hflip(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Flip tensors (..., H, W) left-right, all together (image, target and mask alike)."""
    return tuple(torch.flip(t, dims=(-1,)) for t in tensors)


def to_chw_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) numpy array -> (1, H, W) or (C, H, W) tensor (same dtype)."""
    if array.ndim == 2:
        return torch.from_numpy(np.ascontiguousarray(array))[None]
    if array.ndim == 3:
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    raise ValueError(f"expected an array of shape (H, W) or (H, W, C), got {array.shape}")
