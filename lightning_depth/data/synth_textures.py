"""Textures for the generated scenes: photographs that ship inside installed packages (offline)
and procedural patterns, mip-mapped and sampled trilinearly.

Photographs: scikit-image's bundled natural images (:data:`PHOTOS`, from its package data
folder, never downloaded) and matplotlib's one (:data:`MATPLOTLIB_PHOTOS`); not the Middlebury
Motorcycle pair scikit-image also ships, which is our real test data. Procedural: multi-scale
value noise, (warped) stripes, rotated checkers and camouflage patches, always with a fine
grain on top. Textures are float32 ``(h, w, 3)`` in [0, 1], tiled by mirrored repeat.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

__all__ = [
    "MATPLOTLIB_PHOTOS",
    "PHOTOS",
    "colour_transform",
    "load_photos",
    "palette",
    "photo_is_grey",
    "photo_pyramids",
    "procedural_texture",
    "pyramid",
    "sample_texture",
]

#: scikit-image's bundled photographs (in its package data folder, so offline) used as
#: textures. Not the Middlebury Motorcycle pair it also ships: that is our real test data.
PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "ihc.png",
    "moon.png",
    "page.png",
    "rocket.jpg",
    "text.png",
)
#: matplotlib (a dependency) ships one photograph too
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)

_PHOTO_SIDE = 512  # photos are downscaled to at most this side (bounded memory per worker)
_PROCEDURAL_SIDE = 256


def _to_rgb_float(image: Image.Image) -> np.ndarray:
    if max(image.size) > _PHOTO_SIDE:
        scale = _PHOTO_SIDE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


@lru_cache(maxsize=1)
def load_photos() -> tuple[np.ndarray, ...]:
    """The texture photographs as float32 ``(h, w, 3)`` in [0, 1] (grey ones with equal
    channels), read once per process from the packages' data folders (no download).

    Raises:
        ModuleNotFoundError: scikit-image is not installed (naming the way out).
        FileNotFoundError: a photograph is missing from its package (naming the folder).
    """
    try:
        import skimage
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "photo textures need scikit-image, which ships the photographs "
            "(pip install scikit-image); or generate with photos=False (procedural textures "
            "only)"
        ) from e
    import matplotlib

    folders = [Path(skimage.__file__).parent / "data"] * len(PHOTOS)
    folders += [Path(matplotlib.get_data_path()) / "sample_data"] * len(MATPLOTLIB_PHOTOS)
    photos = []
    for folder, name in zip(folders, PHOTOS + MATPLOTLIB_PHOTOS):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"texture photograph {name} is not in {folder}")
        with Image.open(path) as image:
            photos.append(_to_rgb_float(image))
    return tuple(photos)


def pyramid(image: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mip levels of an ``(h, w, 3)`` float32 image: 2x2 box averages down to ~4 px."""
    levels = [np.ascontiguousarray(image, dtype=np.float32)]
    while min(levels[-1].shape[:2]) >= 8:
        a = levels[-1]
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a = a[:h, :w]
        levels.append(0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]))
    return tuple(levels)


@lru_cache(maxsize=1)
def photo_pyramids() -> tuple[tuple[np.ndarray, ...], ...]:
    """:func:`pyramid` of each photograph of :func:`load_photos` (computed once a process)."""
    return tuple(pyramid(photo) for photo in load_photos())


@lru_cache(maxsize=1)
def photo_is_grey() -> tuple[bool, ...]:
    """Whether each photograph of :func:`load_photos` is grey (equal channels)."""
    return tuple(bool((np.ptp(photo, axis=2) == 0).all()) for photo in load_photos())


def _mirror(i: np.ndarray, n: int) -> np.ndarray:
    # mirrored repeat: tiles meet without seams
    m = np.mod(i, 2 * n)
    return np.where(m >= n, 2 * n - 1 - m, m)


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Colours (N, 3) of ``image`` (h, w, 3) at texel coordinates (centres at i + 0.5)."""
    h, w = image.shape[:2]
    x, y = x - 0.5, y - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    xa, xb = _mirror(x0, w), _mirror(x0 + 1, w)
    ya, yb = _mirror(y0, h) * w, _mirror(y0 + 1, h) * w
    flat = image.reshape(-1, 3)
    top = flat[ya + xa] * (1 - fx) + flat[ya + xb] * fx
    bottom = flat[yb + xa] * (1 - fx) + flat[yb + xb] * fx
    return top * (1 - fy) + bottom * fy


def sample_texture(
    levels: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray, lod: np.ndarray
) -> np.ndarray:
    """Trilinear (mip-mapped) colours (N, 3) float32 of a :func:`pyramid` at level-0 texel
    coordinates ``x``, ``y`` (N,); ``lod`` (N,) is the log2 of the texels one pixel covers
    (the level of detail), clipped to the levels there are."""
    top = len(levels) - 1
    lod = np.clip(lod, 0, top)
    base = np.minimum(np.floor(lod).astype(np.int64), max(top - 1, 0))
    frac = (lod - base)[:, None].astype(np.float32)
    out = np.empty((len(x), 3), dtype=np.float32)
    for level in np.unique(base):
        sel = np.flatnonzero(base == level)
        s = 0.5**level
        fine = _bilinear(levels[level], x[sel] * s, y[sel] * s)
        if top == 0:
            out[sel] = fine
            continue
        coarse = _bilinear(levels[level + 1], x[sel] * s * 0.5, y[sel] * s * 0.5)
        out[sel] = fine * (1 - frac[sel]) + coarse * frac[sel]
    return out


def _resized_noise(rng: np.random.Generator, cells: int, side: int) -> np.ndarray:
    grid = rng.random((cells, cells), dtype=np.float32)
    return np.asarray(
        Image.fromarray(grid, mode="F").resize((side, side), Image.Resampling.BICUBIC)
    )


def _value_noise(rng: np.random.Generator, side: int) -> np.ndarray:
    """Multi-scale value noise (side, side) in about [0, 1]: octaves of upsampled random
    grids, each half the amplitude of the one before."""
    octaves = int(rng.integers(3, 6))
    first = int(rng.integers(2, 6))
    total = np.zeros((side, side), dtype=np.float32)
    amplitude, norm = 1.0, 0.0
    for k in range(octaves):
        cells = min(first * 2**k, side // 2)
        total += amplitude * _resized_noise(rng, cells, side)
        norm += amplitude
        amplitude *= float(rng.uniform(0.4, 0.7))
    total /= norm
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def palette(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0.05, 0.95, (n, 3)).astype(np.float32)


def procedural_texture(rng: np.random.Generator, side: int = _PROCEDURAL_SIDE) -> np.ndarray:
    """One procedural texture (side, side, 3) in [0, 1]: value noise, stripes, checker or
    camouflage patches, always with a fine noise on top (never a flat colour)."""
    kind = int(rng.integers(4))
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    if kind == 0:  # coloured value noise
        n = _value_noise(rng, side)[..., None]
        a, b, c = palette(rng, 3)
        out = np.where(n < 0.5, a + (b - a) * 2 * n, b + (c - b) * (2 * n - 1))
    elif kind == 1:  # (warped) stripes
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.03, 0.25)
        warp = rng.uniform(0, 0.15) * _value_noise(rng, side)
        phase = (xx * math.cos(angle) + yy * math.sin(angle) + warp) / period
        w = 0.5 + 0.5 * np.tanh(rng.uniform(1, 8) * np.sin(2 * np.pi * phase))
        a, b = palette(rng, 2)
        out = a + (b - a) * w[..., None]
    elif kind == 2:  # checker, rotated
        angle = rng.uniform(0, np.pi / 2)
        cell = rng.uniform(0.04, 0.2)
        u = (xx * math.cos(angle) + yy * math.sin(angle)) / cell
        v = (-xx * math.sin(angle) + yy * math.cos(angle)) / cell
        w = (np.floor(u) + np.floor(v)) % 2
        a, b = palette(rng, 2)
        out = a + (b - a) * w[..., None]
    else:  # camouflage: value noise cut into 3-4 colour patches
        n = _value_noise(rng, side)
        colours = palette(rng, int(rng.integers(3, 5)))
        cuts = np.sort(rng.uniform(0.2, 0.8, len(colours) - 1))
        out = colours[np.searchsorted(cuts, n)]
    grain = _value_noise(rng, side) - 0.5
    out = out * (1 + rng.uniform(0.1, 0.4) * grain[..., None])
    return np.clip(out, 0, 1).astype(np.float32)


def colour_transform(rng: np.random.Generator, grey: bool) -> tuple[np.ndarray, np.ndarray]:
    """A random tint: grey textures map black/white to two random colours; colour ones get
    their channels permuted (sometimes), scaled and desaturated or saturated a little."""
    if grey:
        dark, light = palette(rng, 2)
        if rng.random() < 0.5:
            dark = dark * 0.3
        # out = dark + (light - dark) * grey value; the grey value is any channel
        m = np.zeros((3, 3), dtype=np.float32)
        m[:, 0] = light - dark
        return m, dark
    m = np.eye(3, dtype=np.float32)
    if rng.random() < 0.5:
        m = m[rng.permutation(3)]
    sat = float(rng.uniform(0.6, 1.3))
    m = sat * m + (1 - sat) / 3.0
    m *= rng.uniform(0.75, 1.2, 3).astype(np.float32)[:, None]
    return m.astype(np.float32), rng.uniform(-0.05, 0.05, 3).astype(np.float32)
