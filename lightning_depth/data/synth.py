"""Synthetic 3D scenes ray-cast from a pinhole camera.

Tests and demos never download data: they train on scenes rendered here (sequenced by
:mod:`~lightning_depth.data.synth_diode` and :mod:`~lightning_depth.data.synth_monkaa`) and
written in the real on-disk layouts. A scene is a textured room (indoors, 0.5-11 m) or a
street with buildings and sky (outdoor, up to ~60 m) with a few boxes and spheres. Textures
are functions of the 3D hit point, so a second camera (stereo) sees the same surface colours,
and the image carries depth cues a small network can learn quickly: world-sized textures
shrink with distance, Lambertian shading, and darkening (indoors) or haze (outdoors) with
depth.

Conventions: camera frame x right, y down, z forward; ray directions are ``(x, y, 1)`` in the
camera frame, so the ray parameter of a hit is its z-depth.

Example:
    >>> import numpy as np
    >>> scene = render_scene(np.random.default_rng(0), 64, 48, baseline=0.1)
    >>> scene["image"].shape, scene["disparity"].dtype
    ((48, 64, 3), dtype('float32'))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from lightning_depth.data.synth_textures import (
    colour_transform,
    photo_is_grey,
    photo_pyramids,
    sample_texture,
)

SCENE_KINDS = ("indoors", "outdoor")

_EPS = 1e-4


# -- geometry ------------------------------------------------------------------------------
# Hand-written: no installed library ray-casts analytic primitives in vectorised numpy, and a
# mesh renderer (pyrender, open3d) would be a heavy GPU/GL dependency for a test fixture.


class _Rect:
    """An axis-aligned rectangle ``p[axis] == value`` bounded in the two other axes."""

    def __init__(self, axis: int, value: float, lo: Sequence[float], hi: Sequence[float]):
        self.axis = axis
        self.value = np.float32(value)
        self.lo = np.asarray(lo, dtype=np.float32)
        self.hi = np.asarray(hi, dtype=np.float32)
        self.others = [a for a in range(3) if a != axis]

    def intersect(self, o: np.ndarray, d: np.ndarray, dd: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.value - o[self.axis]) / d[:, self.axis]
        ok = t > _EPS
        for a in self.others:
            coord = o[a] + t * d[:, a]
            ok &= (coord >= self.lo[a]) & (coord <= self.hi[a])
        return np.where(ok, t, np.inf)

    def normal(self, p: np.ndarray) -> np.ndarray:
        n = np.zeros_like(p)
        n[:, self.axis] = 1.0
        return n


class _Sphere:
    def __init__(self, center: Sequence[float], radius: float):
        self.center = np.asarray(center, dtype=np.float32)
        self.radius = np.float32(radius)

    def intersect(self, o: np.ndarray, d: np.ndarray, dd: np.ndarray) -> np.ndarray:
        oc = o - self.center
        b = d @ oc
        c = np.float32(oc @ oc - self.radius**2)
        disc = b * b - dd * c
        ok = disc >= 0
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / dd
        ok &= t > _EPS
        return np.where(ok, t, np.inf)

    def normal(self, p: np.ndarray) -> np.ndarray:
        return (p - self.center) / self.radius


class _Box:
    """A box rotated by ``yaw`` about the vertical (y) axis."""

    def __init__(self, center: Sequence[float], half: Sequence[float], yaw: float):
        self.center = np.asarray(center, dtype=np.float32)
        self.half = np.asarray(half, dtype=np.float32)
        c, s = math.cos(yaw), math.sin(yaw)
        # Columns are the box axes in world coordinates: world = rot @ local.
        self.rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float32)

    def intersect(self, o: np.ndarray, d: np.ndarray, dd: np.ndarray) -> np.ndarray:
        ol = self.rot.T @ (o - self.center)
        dl = d @ self.rot
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-self.half - ol) / dl
            t2 = (self.half - ol) / dl
        tnear = np.minimum(t1, t2).max(axis=1)
        tfar = np.maximum(t1, t2).min(axis=1)
        ok = (tnear <= tfar) & (tnear > _EPS)
        return np.where(ok, tnear, np.inf)

    def normal(self, p: np.ndarray) -> np.ndarray:
        local = (p - self.center) @ self.rot / self.half
        axis = np.abs(local).argmax(axis=1)
        n = np.zeros_like(p)
        rows = np.arange(len(p))
        n[rows, axis] = np.sign(local[rows, axis])
        return n @ self.rot.T


# -- appearance ----------------------------------------------------------------------------


@dataclass
class _Photo:
    """A photograph mapped onto a surface in world units: planar along the axis nearest the
    surface normal (walls and floors get their own plane; objects a cube map)."""

    levels: tuple  # mip levels (h, w, 3) float32
    texels_per_metre: float
    offset: np.ndarray  # (3,) texels
    colour: np.ndarray  # (3, 3)
    bias: np.ndarray  # (3,)

    def texture(self, p: np.ndarray, n: np.ndarray, footprint: np.ndarray) -> np.ndarray:
        """Colour (N, 3) at world points ``p`` (N, 3) with normals ``n`` (N, 3), each pixel
        covering ``footprint`` (N,) metres of the surface."""
        axis = np.abs(n).argmax(axis=1)
        q = p * np.float32(self.texels_per_metre) + self.offset
        u = np.where(axis == 0, q[:, 2], q[:, 0])
        v = np.where(axis == 1, q[:, 2], q[:, 1])
        lod = np.log2(np.maximum(footprint * self.texels_per_metre, 1e-6))
        colour = sample_texture(self.levels, u, v, lod) @ self.colour.T + self.bias
        return np.clip(colour, 0, 1).astype(np.float32)


@dataclass
class _Material:
    kind: str
    color_a: np.ndarray
    color_b: np.ndarray
    scale: float
    offset: np.ndarray
    waves: np.ndarray  # (3, 3) wave vectors of the smooth "waves" pattern and the grain
    phases: np.ndarray  # (3,)
    photo: Optional[_Photo] = None  # replaces the pattern when set (``photos=True``)

    def texture(
        self, p: np.ndarray, n: Optional[np.ndarray] = None, footprint: Optional[np.ndarray] = None
    ) -> np.ndarray:
        """Colour (N, 3) in [0, 1] at world points ``p`` (N, 3); a photo material also needs
        the normals ``n`` (N, 3) and the pixels' ``footprint`` (N,) in metres."""
        if self.photo is not None:
            return self.photo.texture(p, n, footprint)
        q = (p + self.offset) / self.scale
        if self.kind == "checker":
            w = (np.floor(q).sum(axis=1) % 2).astype(np.float32)
        elif self.kind == "stripes":
            w = 0.5 + 0.5 * np.tanh(3.0 * np.sin(2 * np.pi * (q @ self.waves[0])))
        elif self.kind == "bricks":
            row = np.floor(q[:, 1] * 2.0)
            along = q[:, 0] + q[:, 2] + 0.5 * (row % 2)
            col = np.floor(along)
            mortar = (q[:, 1] * 2.0 - row < 0.12) | (along - col < 0.06)
            # A per-brick shade from a cheap hash of the brick's integer coordinates.
            shade = np.modf(np.abs(np.sin(row * 12.9898 + col * 78.233)) * 437.5453)[0]
            w = np.where(mortar, 1.0, 0.35 * shade)
        else:  # "waves": smooth blobs
            w = 0.5 + np.sin(2 * np.pi * (q @ self.waves.T) + self.phases).mean(axis=1) * 0.5
        w = w.astype(np.float32)[:, None]
        color = self.color_a * (1 - w) + self.color_b * w
        # A finer grain so every surface has texture to match for stereo.
        grain = np.sin(6 * np.pi * (q @ self.waves[1]) + self.phases[0]) * np.sin(
            6 * np.pi * (q @ self.waves[2]) + self.phases[1]
        )
        return color * (0.9 + 0.1 * grain.astype(np.float32))[:, None]


def _material(
    rng: np.random.Generator, scale: tuple[float, float], kinds: Sequence[str]
) -> _Material:
    color_a = rng.uniform(0.2, 0.95, 3)
    if rng.random() < 0.5:
        color_b = color_a * rng.uniform(0.2, 0.6)
    else:
        color_b = rng.uniform(0.05, 0.9, 3)
    waves = rng.normal(size=(3, 3))
    waves /= np.linalg.norm(waves, axis=1, keepdims=True)
    s = float(rng.uniform(*scale))
    return _Material(
        kind=str(rng.choice(list(kinds))),
        color_a=color_a.astype(np.float32),
        color_b=color_b.astype(np.float32),
        scale=s,
        offset=rng.uniform(0, s, 3).astype(np.float32),
        waves=waves.astype(np.float32),
        phases=rng.uniform(0, 2 * np.pi, 3).astype(np.float32),
    )


@dataclass
class _Scene:
    kind: str
    prims: list
    materials: list
    rot: np.ndarray  # camera-to-world rotation (3, 3)
    hfov: float
    light: np.ndarray  # point light position (indoors) or unit direction to the sun (outdoor)
    ambient: float
    fog: float
    sky_horizon: np.ndarray
    sky_zenith: np.ndarray


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    # Positive pitch looks down (y points down).
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    return (r_yaw @ r_pitch).astype(np.float32)


def _objects(
    rng: np.random.Generator,
    n: int,
    ground: float,
    x_range: tuple[float, float],
    z_range: tuple[float, float],
    size: tuple[float, float],
) -> list:
    prims = []
    for _ in range(n):
        x, z = rng.uniform(*x_range), rng.uniform(*z_range)
        if rng.random() < 0.5:
            r = rng.uniform(*size) / 2
            prims.append(_Sphere((x, ground - r, z), r))
        else:
            half = rng.uniform(*size, 3) / 2
            prims.append(_Box((x, ground - half[1], z), half, rng.uniform(0, np.pi)))
    return prims


def _build_scene(rng: np.random.Generator, kind: Optional[str]) -> _Scene:
    drawn = SCENE_KINDS[int(rng.integers(2))]
    kind = kind or drawn
    if kind not in SCENE_KINDS:
        raise ValueError(f"kind must be one of {SCENE_KINDS} or None, got {kind!r}")
    hfov = math.radians(rng.uniform(55, 75))
    yaw, pitch = rng.uniform(-0.25, 0.25), rng.uniform(-0.05, 0.2)
    if kind == "outdoor":
        pitch *= 0.5  # look nearer the horizon, so most outdoor views show sky
    rot = _rotation(yaw, pitch)
    if kind == "indoors":
        h = rng.uniform(1.0, 1.7)  # camera height above the floor (floor at y = h)
        ceil = h - rng.uniform(2.4, 3.2)
        left, right, back = -rng.uniform(1.5, 4), rng.uniform(1.5, 4), rng.uniform(4, 10)
        lo, hi = (left, ceil, -1.0), (right, h, back)
        prims = [
            _Rect(1, h, lo, hi),  # floor
            _Rect(1, ceil, lo, hi),  # ceiling
            _Rect(0, left, lo, hi),
            _Rect(0, right, lo, hi),
            _Rect(2, back, lo, hi),
        ]
        scales = [(0.2, 0.8), (0.3, 1.0)] + [(0.2, 0.8)] * 3
        kinds = [("checker", "bricks", "waves")] * 2 + [("stripes", "bricks", "waves")] * 3
        n_obj = int(rng.integers(2, 7))
        prims += _objects(rng, n_obj, h, (left + 0.5, right - 0.5), (1.2, back - 0.5), (0.3, 1.4))
        scales += [(0.05, 0.3)] * n_obj
        light = np.array(
            [rng.uniform(left, right), ceil + 0.3, rng.uniform(0.5, back)], dtype=np.float32
        )
        ambient, fog = rng.uniform(0.15, 0.35), rng.uniform(8, 20)
    else:
        h = rng.uniform(1.4, 2.5)
        far = rng.uniform(30, 60)
        wide = 150.0
        prims = [
            _Rect(1, h, (-wide, 0, -1), (wide, 0, far)),  # ground
            _Rect(2, far, (-wide, h - rng.uniform(4, 18), 0), (wide, h, 0)),  # buildings behind
        ]
        scales = [(0.5, 2.0), (1.0, 3.0)]
        kinds = [("checker", "waves", "stripes"), ("bricks", "stripes", "checker")]
        for side in (-1, 1):
            if rng.random() < 0.7:
                x = side * rng.uniform(5, 15)
                prims.append(
                    _Rect(0, x, (0, h - rng.uniform(4, 20), rng.uniform(0, 10)), (0, h, far))
                )
                scales.append((0.5, 2.0))
                kinds.append(("bricks", "stripes", "checker"))
        n_obj = int(rng.integers(3, 9))
        prims += _objects(rng, n_obj, h, (-10, 10), (3, 0.8 * far), (0.5, 4.0))
        scales += [(0.1, 0.8)] * n_obj
        elevation, azimuth = rng.uniform(0.35, 1.2), rng.uniform(0, 2 * np.pi)
        light = np.array(
            [
                math.cos(elevation) * math.sin(azimuth),
                -math.sin(elevation),
                math.cos(elevation) * math.cos(azimuth),
            ],
            dtype=np.float32,
        )
        ambient, fog = rng.uniform(0.25, 0.45), rng.uniform(40, 120)
    object_kinds = ("checker", "stripes", "waves", "bricks")
    kinds += [object_kinds] * (len(prims) - len(kinds))
    materials = [_material(rng, s, k) for s, k in zip(scales, kinds)]
    return _Scene(
        kind=kind,
        prims=prims,
        materials=materials,
        rot=rot,
        hfov=hfov,
        light=light,
        ambient=float(ambient),
        fog=float(fog),
        sky_horizon=rng.uniform(0.7, 0.95, 3).astype(np.float32),
        sky_zenith=np.array([0.25, 0.45, 0.85], dtype=np.float32) * rng.uniform(0.8, 1.1),
    )


def _add_clutter(rng: np.random.Generator, scene: _Scene) -> None:
    """Add FlyingThings-style clutter to a built scene (the ``clutter`` of
    :func:`render_scene`): objects large in the view and near the camera (70% of scenes), many
    small ones anywhere in the room's or street's volume, resting or floating (shelves,
    clutter behind the foreground), and thin bars. The floor and the scene's extent come
    from its first rectangle (the floor or ground)."""
    floor = scene.prims[0]
    ground = float(floor.value)
    indoors = scene.kind == "indoors"
    x_lo, x_hi = (float(floor.lo[0]), float(floor.hi[0])) if indoors else (-15.0, 15.0)
    z_far = float(floor.hi[2]) if indoors else float(scene.prims[1].value)
    top = float(scene.prims[1].value) if indoors else ground - 6.0  # ceiling / 6 m up
    tan_half = math.tan(scene.hfov / 2)
    added: list = []

    def place(center: np.ndarray, half: np.ndarray, resting: bool) -> None:
        if resting:
            center[1] = ground - half[1]
        if rng.random() < 0.4:
            added.append(_Sphere(center, float(half.mean())))
        else:
            added.append(_Box(center, half, rng.uniform(0, np.pi)))

    if rng.random() < 0.7:  # foreground: 1-3 objects near the camera, in the view
        near, size = ((0.8, 3.0), (0.25, 0.8)) if indoors else ((1.5, 8.0), (0.4, 1.5))
        for _ in range(int(rng.integers(1, 4))):
            z = rng.uniform(*near)
            camera = np.array(
                [rng.uniform(-0.6, 0.6) * tan_half * z, rng.uniform(-0.3, 0.5) * z, z]
            )
            place(scene.rot @ camera, rng.uniform(*size, 3) / 2, rng.random() < 0.6)
    small = (0.05, 0.35) if indoors else (0.2, 1.0)
    for _ in range(int(rng.integers(4, 11))):  # clutter anywhere in the volume
        center = np.array(
            [rng.uniform(x_lo, x_hi), rng.uniform(top, ground), rng.uniform(1.0, z_far)]
        )
        place(center, rng.uniform(*small, 3), rng.random() < 0.3)
    for _ in range(int(rng.integers(0, 4))):  # thin bars, upright or lying
        half = rng.uniform(0.01, 0.04, 3) * (1 if indoors else 3)
        half[int(rng.choice([0, 1, 2]))] = rng.uniform(0.3, 1.2) * (1 if indoors else 3)
        center = np.array(
            [rng.uniform(x_lo, x_hi), rng.uniform(top, ground), rng.uniform(1.0, z_far)]
        )
        added.append(_Box(center, half, rng.uniform(0, np.pi)))
    object_kinds = ("checker", "stripes", "waves", "bricks")
    scene.prims += added
    scene.materials += [_material(rng, (0.05, 0.3), object_kinds) for _ in added]


def _add_photos(rng: np.random.Generator, scene: _Scene) -> None:
    """Give about 70% of the scene's materials a tinted photograph, world-sized: a photo
    spans 1-4 m on the room or street (the first rectangles), 0.3-1.5 m on objects."""
    pyramids, grey = photo_pyramids(), photo_is_grey()
    for prim, material in zip(scene.prims, scene.materials):
        index = int(rng.integers(len(pyramids)))
        span = rng.uniform(1.0, 4.0) if isinstance(prim, _Rect) else rng.uniform(0.3, 1.5)
        side = max(pyramids[index][0].shape[:2])
        colour, bias = colour_transform(rng, grey[index])
        offset = rng.uniform(0, 4 * side, 3).astype(np.float32)
        if rng.random() < 0.7:
            material.photo = _Photo(pyramids[index], side / span, offset, colour, bias)


def _render_view(
    scene: _Scene, origin: np.ndarray, dirs: np.ndarray, focal: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Colour (N, 3) in [0, 1] and z-depth (N,) (0 where no hit) for world rays ``dirs``
    (camera rays ``(x, y, 1)`` rotated; ``focal`` in px sizes the pixels for photo textures)."""
    dd = (dirs * dirs).sum(axis=1)
    depth = np.full(len(dirs), np.inf, dtype=np.float32)
    index = np.full(len(dirs), -1, dtype=np.int64)
    for k, prim in enumerate(scene.prims):
        t = prim.intersect(origin, dirs, dd)
        closer = t < depth
        depth[closer] = t[closer]
        index[closer] = k

    # Sky: a gradient from the horizon colour up to the zenith colour.
    up = np.clip(-dirs[:, 1] / np.sqrt(dd), 0, 1)[:, None]
    color = scene.sky_horizon * (1 - up) + scene.sky_zenith * up
    for k, (prim, material) in enumerate(zip(scene.prims, scene.materials)):
        sel = np.flatnonzero(index == k)
        if len(sel) == 0:
            continue
        d, z = dirs[sel], depth[sel]
        p = origin + z[:, None] * d
        n = prim.normal(p)
        # Surfaces are two-sided: face the normal towards the camera.
        n *= np.where((n * d).sum(axis=1) > 0, -1.0, 1.0).astype(np.float32)[:, None]
        if material.photo is not None:
            # the surface width one pixel covers (wider when seen obliquely)
            length = np.linalg.norm(d, axis=1)
            cos = np.abs((n * d).sum(axis=1)) / length
            footprint = z * length / np.float32(focal) / np.sqrt(np.maximum(cos, 0.05))
            albedo = material.texture(p, n, footprint)
        else:
            albedo = material.texture(p)
        if scene.kind == "indoors":
            to_light = scene.light - p
            dist = np.linalg.norm(to_light, axis=1)
            lambert = np.clip((n * to_light).sum(axis=1) / dist, 0, 1) / (1 + (dist / 5.0) ** 2)
            shade = scene.ambient + (1 - scene.ambient) * 1.6 * lambert
            c = albedo * shade[:, None]
            c *= np.exp(-z / scene.fog)[:, None]
        else:
            lambert = np.clip(n @ -scene.light, 0, 1)
            shade = scene.ambient + (1 - scene.ambient) * lambert
            haze = (1 - np.exp(-z / scene.fog))[:, None]
            c = albedo * shade[:, None] * (1 - haze) + scene.sky_horizon * haze
        color[sel] = c
    depth[index < 0] = 0
    return color, depth


def _to_uint8(color: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.round(np.clip(color, 0, 1) * 255).astype(np.uint8).reshape(height, width, 3)


def _dropouts(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """True where a few random elliptic holes are (sensor dropouts), (H, W) bool."""
    holes = np.zeros((height, width), dtype=bool)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(int(rng.integers(1, 5))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.02, 0.08, 2) * min(height, width) + 1
        holes |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return holes


def render_scene(
    rng: np.random.Generator,
    width: int,
    height: int,
    baseline: float = 0.0,
    focal: Optional[float] = None,
    kind: Optional[str] = None,
    photos: bool = False,
    clutter: bool = False,
) -> dict[str, np.ndarray]:
    """Ray-cast a random scene from a pinhole camera (and a second, rectified one).

    The scene (and its draws from ``rng``) does not depend on the image size, so one seed
    renders the same scene at any resolution. The principal point is the image centre.

    Args:
        rng: numpy generator; the same state gives the same output.
        width: image width W in pixels.
        height: image height H in pixels.
        baseline: if > 0, also render a right camera shifted by ``+baseline`` metres along
            the camera x axis, with the same intrinsics and orientation (a rectified pair).
        focal: focal length in pixels; default from a random horizontal field of view of
            55-75 degrees.
        kind: ``"indoors"`` (0.5-11 m), ``"outdoor"`` (up to ~60 m, with sky) or None (random).
        photos: map photographs (:mod:`~lightning_depth.data.synth_textures`; needs
            scikit-image) onto about 70% of the surfaces instead of the procedural patterns,
            with a random tint, world-sized (so they shrink with distance). The scene's
            geometry is the same as without; its dropout holes differ.
        clutter: add FlyingThings-style objects to the scene (see :func:`_add_clutter`):
            large ones near the camera in most scenes, many small ones resting or floating
            behind, thin bars. Changes everything drawn after the scene's layout.

    Returns:
        dict with ``image`` uint8 (H, W, 3); ``depth`` float32 (H, W) z-depth in metres, 0
        where no surface is hit (sky); ``mask`` bool (H, W), valid depth: hits minus a few
        random holes like a real sensor's dropouts; ``focal`` float (px); ``kind`` str. With
        ``baseline > 0`` also ``right`` uint8 (H, W, 3), ``disparity`` float32 (H, W) =
        ``focal * baseline / depth`` of the left view and ``right_disparity`` float32 (H, W)
        of the right view (both dense: 0 only where no hit, no dropouts).
    """
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be >= 1, got {width}x{height}")
    if baseline < 0:
        raise ValueError(f"baseline must be >= 0, got {baseline}")
    scene = _build_scene(rng, kind)
    if clutter:
        _add_clutter(rng, scene)
    if photos:
        _add_photos(rng, scene)
    if focal is None:
        focal = 0.5 * width / math.tan(scene.hfov / 2)
    if focal <= 0:
        raise ValueError(f"focal must be > 0, got {focal}")
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    cam = np.stack(
        [(u - (width - 1) / 2) / focal, (v - (height - 1) / 2) / focal, np.ones_like(u)], axis=-1
    ).reshape(-1, 3)
    dirs = cam @ scene.rot.T
    origin = np.zeros(3, dtype=np.float32)
    color, depth = _render_view(scene, origin, dirs, focal)
    depth = depth.reshape(height, width)
    out: dict = {
        "image": _to_uint8(color, height, width),
        "depth": depth,
        "mask": (depth > 0) & ~_dropouts(rng, height, width),
        "focal": float(focal),
        "kind": scene.kind,
    }
    if baseline > 0:
        right_origin = scene.rot @ np.array([baseline, 0, 0], dtype=np.float32)
        right_color, right_depth = _render_view(scene, right_origin, dirs, focal)
        right_depth = right_depth.reshape(height, width)
        fb = np.float32(focal * baseline)
        with np.errstate(divide="ignore"):
            out["disparity"] = np.where(depth > 0, fb / depth, 0).astype(np.float32)
            out["right_disparity"] = np.where(right_depth > 0, fb / right_depth, 0).astype(
                np.float32
            )
        out["right"] = _to_uint8(right_color, height, width)
    return out
