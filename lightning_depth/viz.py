"""Colorisation of depth and disparity maps for figures, W&B panels and predict outputs."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from matplotlib import colormaps


def colorize(
    value: torch.Tensor | np.ndarray,
    mask: Optional[torch.Tensor | np.ndarray] = None,
    cmap: str = "jet",
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
) -> np.ndarray:
    """Map a single-channel map to an RGB picture; invalid pixels are black.

    Like the original keras-io visualisation (jet colormap), but invalid pixels are painted
    black instead of being coloured like valid ones.

    Args:
        value: map of shape ``(H, W)`` or ``(1, H, W)``.
        mask: optional validity mask broadcastable to ``(H, W)``; ``False`` pixels become black.
        cmap: matplotlib colormap name.
        vmin: value mapped to the colormap's start (default: minimum over valid pixels).
        vmax: value mapped to the colormap's end (default: maximum over valid pixels).

    Returns:
        ``uint8`` array of shape ``(H, W, 3)``.
    """
    v = _as_numpy(value).astype(np.float32)
    if v.ndim == 3 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 2:
        raise ValueError(f"colorize expects a map of shape (H, W) or (1, H, W), got {v.shape}")
    valid = np.isfinite(v)
    if mask is not None:
        m = _as_numpy(mask).astype(bool)
        valid &= m.reshape(v.shape)
    if valid.any():
        lo = float(v[valid].min()) if vmin is None else vmin
        hi = float(v[valid].max()) if vmax is None else vmax
    else:
        lo, hi = 0.0, 1.0
    scaled = np.clip((v - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    scaled[~valid] = 0.0
    rgb = (colormaps[cmap](scaled)[..., :3] * 255.0).round().astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def to_uint8_image(image: torch.Tensor | np.ndarray, mean=None, std=None) -> np.ndarray:
    """Convert a ``(3, H, W)`` float image in [0, 1] (or normalised by ``mean``/``std``) to
    ``uint8 (H, W, 3)``."""
    x = _as_numpy(image).astype(np.float32)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"to_uint8_image expects (3, H, W), got {x.shape}")
    if mean is not None and std is not None:
        x = (
            x * np.asarray(std, np.float32)[:, None, None]
            + np.asarray(mean, np.float32)[:, None, None]
        )
    return (np.clip(x, 0.0, 1.0).transpose(1, 2, 0) * 255.0).round().astype(np.uint8)


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.dtype != torch.bool else x.cpu().numpy()
    return np.asarray(x)
