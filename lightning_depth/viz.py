"""Colorisation of depth and disparity maps for figures, W&B panels and predict outputs.

One colour convention for every picture of a map: **near is warm**. A depth map is coloured
with the colormap reversed (small depth -> the colormap's end, red for ``jet``), a disparity
map with the colormap as is (large disparity -> red). :func:`colorize_map` applies it,
:func:`add_colorbar` appends a bar with the values and the unit under a picture.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "MAP_KINDS",
    "MAP_UNITS",
    "add_colorbar",
    "colorbar",
    "colorize",
    "colorize_map",
    "map_colormap",
    "to_uint8_image",
    "value_range",
]

#: map kinds the convention knows, with the label their colour bar shows.
MAP_UNITS = {"depth": "depth (m)", "disparity": "disparity (px)"}
MAP_KINDS = tuple(MAP_UNITS)
#: the colour bar strip is at least this wide (narrower pictures are padded, white).
MIN_COLORBAR_WIDTH = 240


def colorize(
    value: torch.Tensor | np.ndarray,
    mask: Optional[torch.Tensor | np.ndarray] = None,
    cmap: str = "jet",
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
) -> np.ndarray:
    """Map a single-channel map to an RGB picture; invalid pixels are black.

    Like the original keras-io visualisation (jet colormap), but invalid pixels are painted
    black instead of being coloured like valid ones. Depth and disparity maps go through
    :func:`colorize_map`, which applies the near-is-warm convention.

    Args:
        value: map of shape ``(H, W)`` or ``(1, H, W)``.
        mask: optional validity mask broadcastable to ``(H, W)``; ``False`` pixels become black.
        cmap: matplotlib colormap name.
        vmin: value mapped to the colormap's start (default: minimum over valid pixels).
        vmax: value mapped to the colormap's end (default: maximum over valid pixels).

    Returns:
        ``uint8`` array of shape ``(H, W, 3)``.
    """
    v, valid = _map_and_valid(value, mask)
    lo, hi = value_range(v, valid, vmin, vmax)
    scaled = np.clip((v - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    scaled[~valid] = 0.0
    rgb = _to_rgb(colormaps[cmap](scaled))
    rgb[~valid] = 0
    return rgb


def map_colormap(kind: str, cmap: str = "jet") -> str:
    """The colormap name that colours a map of ``kind`` near-is-warm: ``cmap`` reversed for
    ``"depth"`` (small = the colormap's end), ``cmap`` itself for ``"disparity"``.

    ``cmap`` is a colormap running cold to warm (``jet``, ``turbo``, ``inferno``, ...)."""
    if kind not in MAP_UNITS:
        raise ValueError(f"map kind must be one of {MAP_KINDS}, got {kind!r}")
    if cmap not in colormaps:
        raise ValueError(f"cmap must be a matplotlib colormap name, got {cmap!r}")
    if kind == "disparity":
        return cmap
    return cmap[:-2] if cmap.endswith("_r") else f"{cmap}_r"


def value_range(
    value: torch.Tensor | np.ndarray,
    mask: Optional[torch.Tensor | np.ndarray] = None,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
) -> tuple[float, float]:
    """The ``(lo, hi)`` a picture of ``value`` spans: ``vmin``/``vmax`` where given, else
    the minimum/maximum over valid (finite, ``mask``) pixels; ``(0, 1)`` with none valid."""
    v, valid = _map_and_valid(value, mask)
    if not valid.any():
        return (0.0 if vmin is None else float(vmin), 1.0 if vmax is None else float(vmax))
    lo = float(v[valid].min()) if vmin is None else float(vmin)
    hi = float(v[valid].max()) if vmax is None else float(vmax)
    return lo, hi


def colorize_map(
    value: torch.Tensor | np.ndarray,
    kind: str,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    mask: Optional[torch.Tensor | np.ndarray] = None,
    cmap: str = "jet",
) -> np.ndarray:
    """A depth or disparity map as an RGB picture, near = warm; invalid pixels black.

    Args:
        value: ``(H, W)`` or ``(1, H, W)`` depth (``kind="depth"``, any monotone encoding
            such as log-depth) or disparity (``kind="disparity"``).
        kind: ``"depth"`` or ``"disparity"`` (see :func:`map_colormap`).
        vmin: value at the colour bar's left end (default: the valid minimum).
        vmax: value at its right end (default: the valid maximum).
        mask: optional validity mask; non-finite pixels are invalid too.
        cmap: a cold-to-warm matplotlib colormap.

    Returns:
        ``uint8 (H, W, 3)``.
    """
    return colorize(value, mask, cmap=map_colormap(kind, cmap), vmin=vmin, vmax=vmax)


def colorbar(
    width: int, kind: str, vmin: float, vmax: float, cmap: str = "jet", label: str = ""
) -> np.ndarray:
    """A horizontal colour bar strip for pictures of :func:`colorize_map`.

    The bar runs from ``vmin`` (left) to ``vmax`` (right) in the colours :func:`colorize_map`
    gives those values; under it ``vmin`` and ``vmax`` are printed at the ends and the unit
    (:data:`MAP_UNITS`, or ``label``) in the middle. White background.

    Args:
        width: strip width in pixels (at least :data:`MIN_COLORBAR_WIDTH` is used).
        kind: ``"depth"`` or ``"disparity"``.
        vmin: value of the bar's left end.
        vmax: value of its right end.
        cmap: the cold-to-warm colormap of the picture.
        label: unit text; default ``MAP_UNITS[kind]``.

    Returns:
        ``uint8 (h, max(width, MIN_COLORBAR_WIDTH), 3)``; ``h`` grows with the width.
    """
    width = max(int(width), MIN_COLORBAR_WIDTH)
    name = map_colormap(kind, cmap)
    # Sizes follow the width so the text stays readable on large pictures.
    font_size = int(np.clip(round(width / 40), 10, 32))
    pad = max(font_size // 2, 4)
    bar_height = font_size
    height = pad + bar_height + 3 + int(font_size * 1.4) + pad
    strip = Image.new("RGB", (width, height), (255, 255, 255))
    ramp = np.linspace(0.0, 1.0, width - 2 * pad)
    bar = _to_rgb(colormaps[name](ramp))
    pixels = np.asarray(strip).copy()
    pixels[pad : pad + bar_height, pad : width - pad] = bar[None]
    strip = Image.fromarray(pixels)
    # Drawn by hand with Pillow rather than a matplotlib figure: the strip is pixel-exact
    # (the bar's ends are the colormap's ends) and as wide as the picture it goes under.
    draw = ImageDraw.Draw(strip)
    font = _font(font_size)
    y = pad + bar_height + 3
    black = (0, 0, 0)
    draw.text((pad, y), _number(vmin), fill=black, font=font, anchor="la")
    draw.text((width - pad, y), _number(vmax), fill=black, font=font, anchor="ra")
    draw.text((width / 2, y), label or MAP_UNITS[kind], fill=black, font=font, anchor="ma")
    return np.asarray(strip)


def add_colorbar(
    picture: np.ndarray,
    kind: str,
    vmin: float,
    vmax: float,
    cmap: str = "jet",
    label: str = "",
) -> np.ndarray:
    """``picture`` (``uint8 (H, W, 3)``, from :func:`colorize_map`) with its :func:`colorbar`
    appended below; the picture keeps its pixels at rows ``[0, H)``, columns ``[0, W)`` (a
    picture narrower than the bar is padded white on the right).

    Returns:
        ``uint8 (H + h, max(W, MIN_COLORBAR_WIDTH), 3)``.
    """
    if picture.ndim != 3 or picture.shape[-1] != 3 or picture.dtype != np.uint8:
        raise ValueError(
            f"add_colorbar expects a uint8 (H, W, 3) picture, got {picture.dtype} {picture.shape}"
        )
    h, w, _ = picture.shape
    strip = colorbar(w, kind, vmin, vmax, cmap=cmap, label=label)
    out = np.full((h + strip.shape[0], strip.shape[1], 3), 255, np.uint8)
    out[:h, :w] = picture
    out[h:] = strip
    return out


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


def _map_and_valid(
    value: torch.Tensor | np.ndarray, mask: Optional[torch.Tensor | np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    v = _as_numpy(value).astype(np.float32)
    if v.ndim == 3 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 2:
        raise ValueError(f"expected a map of shape (H, W) or (1, H, W), got {v.shape}")
    valid = np.isfinite(v)
    if mask is not None:
        valid &= _as_numpy(mask).astype(bool).reshape(v.shape)
    return v, valid


def _to_rgb(rgba: np.ndarray) -> np.ndarray:
    return (rgba[..., :3] * 255.0).round().astype(np.uint8)


def _number(value: float) -> str:
    return f"{value:.3g}"


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # matplotlib ships DejaVu Sans, so the text looks the same on every machine.
    from matplotlib import font_manager

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.dtype != torch.bool else x.cpu().numpy()
    return np.asarray(x)
