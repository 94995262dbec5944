"""FlyingThings-style stereo scenes: many random textured objects in front of a textured
background, ray-cast from two rectified cameras, with exact disparity.

What transfers from generated stereo data to real images (the studies behind SceneFlow's
FlyingThings3D and its successors) is diversity rather than realism: never a textureless
background, real-photo textures on simple geometry, disparities covering the target camera's
range, thin structures and many occlusions. A scene here is:

- a background quad far away (photo-textured, slightly tilted) covering both cameras' views,
  with large "clutter" objects just in front of it;
- 10-40 objects in all (boxes, ellipsoids, capped cylinders, thin bars, planar quads) at
  random 3D rotations, their disparities drawn uniformly between the background's and the
  scene's nearest (itself drawn per scene up to ``max_disparity``), sizes drawn in pixels so
  near and far objects alike fill a part of the image;
- textures in each object's own frame (so both views see the same surface colours): the
  photographs that ship inside scikit-image (and matplotlib) with a random tint, scale and
  rotation, or procedural ones (multi-scale value noise, stripes, checkers, camouflage
  patches), sampled with trilinear mip-mapping so minified textures do not alias differently
  in the two views;
- Lambertian shading under a random directional light plus Blinn-Phong specular highlights
  (view-dependent: they differ between the views, as on real shiny surfaces);
- per-scene cameras: horizontal field of view 40-85 degrees and a baseline of 0.1-0.6 scene
  units; the principal point is the image centre.

Left disparity is exact: ``focal * baseline / z`` of the ray-cast z-depth; occlusions are
those of the geometry. Scenes are independent (a scene's frames are small sideways camera
moves), each drawn from ``default_rng([seed, scene])``, so a dataset is the same whatever
the number of worker processes (:func:`things_frames`).

Conventions as :mod:`~lightning_depth.data.synth`: camera x right, y down, z forward, ray
directions ``((u - cx) / f, (v - cy) / f, 1)``, so a ray parameter is a z-depth.

Example:
    >>> import numpy as np
    >>> view = render_things(np.random.default_rng(0), (32, 64), photos=False)
    >>> view["left"].shape, view["disparity"].dtype
    ((32, 64, 3), dtype('float32'))
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from lightning_depth.data.synth import _to_uint8
from lightning_depth.data.synth_textures import (
    colour_transform,
    photo_is_grey,
    photo_pyramids,
    procedural_texture,
    pyramid,
    sample_texture,
)
from lightning_depth.data.transforms import check_size

__all__ = [
    "default_max_disparity",
    "map_scenes",
    "render_things",
    "scene_name",
    "things_frames",
    "things_job",
]

_EPS = 1e-4
_SHAPES = ("box", "ellipsoid", "cylinder", "bar", "quad")
_SHAPE_P = (0.3, 0.22, 0.2, 0.18, 0.1)


def default_max_disparity(width: int) -> float:
    """``min(0.4 * W, 191)`` px: AnyNet's first stage covers 12 disparities at 1/16
    resolution (under 192 px), and objects that shift by more than ~40% of the width mostly
    leave the right view."""
    return min(0.4 * width, 191.0)


# -- shapes --------------------------------------------------------------------------------
# Hand-written ray casting, as in synth.py: no installed library ray-casts analytic
# primitives in vectorised numpy. Each shape lives in its own frame (world = rot @ local +
# centre); a ray parameter is the same in both frames, so it stays a z-depth.


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ],
        dtype=np.float32,
    )


class _Shape:
    """A primitive of half extents ``half`` in its own frame; ``radius`` bounds it."""

    def __init__(self, center: np.ndarray, rot: np.ndarray, half: np.ndarray) -> None:
        self.center = np.asarray(center, dtype=np.float32)
        self.rot = np.asarray(rot, dtype=np.float32)
        self.half = np.asarray(half, dtype=np.float32)
        self.radius = float(np.linalg.norm(self.half))

    def hit(self, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Ray parameters of the first hits of rays ``origin + t * (dx, dy, 1)`` (arrays of
        one shape; inf: no hit)."""
        o = self.rot.T @ (origin - self.center)
        r = self.rot
        # local directions: rot.T @ (dx, dy, 1), one component array at a time (a numpy
        # (N, 3) layout spends most of its time in small-axis reductions)
        d = [r[0, j] * dx + r[1, j] * dy + r[2, j] for j in range(3)]
        return self.local_hit(o, d)

    def local_hit(self, o: np.ndarray, d: list) -> np.ndarray:
        raise NotImplementedError

    def local_normal(self, q: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def uv(self, q: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Texture coordinates (N, 2) in scene units of local points ``q`` (N, 3) with local
        normals ``n``."""
        raise NotImplementedError


class _BoxShape(_Shape):
    def local_hit(self, o: np.ndarray, d: list) -> np.ndarray:
        near, far = None, None
        with np.errstate(divide="ignore", invalid="ignore"):
            for j in range(3):
                inv = 1 / d[j]
                t1 = (-self.half[j] - o[j]) * inv
                t2 = (self.half[j] - o[j]) * inv
                lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
                near = lo if near is None else np.maximum(near, lo)
                far = hi if far is None else np.minimum(far, hi)
        return np.where((near <= far) & (near > _EPS), near, np.inf)

    def local_normal(self, q: np.ndarray) -> np.ndarray:
        axis = np.abs(q / self.half).argmax(axis=1)
        n = np.zeros_like(q)
        rows = np.arange(len(q))
        n[rows, axis] = np.sign(q[rows, axis])
        return n

    def uv(self, q: np.ndarray, n: np.ndarray) -> np.ndarray:
        # planar per face, each face (axis and side) shifted so no two faces look alike
        axis = np.abs(n).argmax(axis=1)
        face = axis * 2 + (n[np.arange(len(q)), axis] > 0)
        first = np.where(axis == 0, q[:, 1], q[:, 0])
        second = np.where(axis == 2, q[:, 1], q[:, 2])
        return np.stack([first, second], axis=1) + 3.7 * face[:, None] * self.radius


class _EllipsoidShape(_Shape):
    def local_hit(self, o: np.ndarray, d: list) -> np.ndarray:
        o = o / self.half
        d = [d[j] / self.half[j] for j in range(3)]
        a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        b = d[0] * o[0] + d[1] * o[1] + d[2] * o[2]
        c = float(o @ o) - 1.0
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a
        return np.where((disc >= 0) & (t > _EPS), t, np.inf)

    def local_normal(self, q: np.ndarray) -> np.ndarray:
        n = q / self.half**2
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    def uv(self, q: np.ndarray, n: np.ndarray) -> np.ndarray:
        r = float(self.half.mean())
        s = q / self.half
        lon = np.arctan2(s[:, 0], s[:, 2])
        lat = np.arcsin(np.clip(s[:, 1], -1, 1))
        return np.stack([lon * r, lat * r], axis=1)


class _CylinderShape(_Shape):
    """A capped cylinder along local z: radius ``half[0]``, half height ``half[2]``."""

    def local_hit(self, o: np.ndarray, d: list) -> np.ndarray:
        r, h = self.half[0], self.half[2]
        a = d[0] * d[0] + d[1] * d[1]
        b = o[0] * d[0] + o[1] * d[1]
        c = o[0] ** 2 + o[1] ** 2 - r * r
        disc = b * b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            side = (-b - np.sqrt(disc)) / a
            side_ok = (disc >= 0) & (side > _EPS) & (np.abs(o[2] + side * d[2]) <= h)
            best = np.where(side_ok, side, np.inf)
            for cap in (-h, h):
                t = (cap - o[2]) / d[2]
                x, y = o[0] + t * d[0], o[1] + t * d[1]
                ok = (t > _EPS) & (x * x + y * y <= r * r)
                best = np.where(ok & (t < best), t, best)
        return best

    def local_normal(self, q: np.ndarray) -> np.ndarray:
        r, h = self.half[0], self.half[2]
        rho = np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2)
        cap = np.abs(q[:, 2]) / h - 1 > rho / r - 1
        n = np.zeros_like(q)
        n[:, 0] = np.where(cap, 0, q[:, 0] / np.maximum(rho, 1e-12))
        n[:, 1] = np.where(cap, 0, q[:, 1] / np.maximum(rho, 1e-12))
        n[:, 2] = np.where(cap, np.sign(q[:, 2]), 0)
        return n

    def uv(self, q: np.ndarray, n: np.ndarray) -> np.ndarray:
        r = float(self.half[0])
        cap = n[:, 2] != 0
        around = np.arctan2(q[:, 1], q[:, 0]) * r
        u = np.where(cap, q[:, 0] + 5 * r * np.sign(q[:, 2]), around)
        v = np.where(cap, q[:, 1], q[:, 2])
        return np.stack([u, v], axis=1)


class _QuadShape(_Shape):
    """A two-sided rectangle in the local plane z = 0."""

    def local_hit(self, o: np.ndarray, d: list) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -o[2] / d[2]
        x, y = o[0] + t * d[0], o[1] + t * d[1]
        ok = (t > _EPS) & (np.abs(x) <= self.half[0]) & (np.abs(y) <= self.half[1])
        return np.where(ok, t, np.inf)

    def local_normal(self, q: np.ndarray) -> np.ndarray:
        n = np.zeros_like(q)
        n[:, 2] = 1.0
        return n

    def uv(self, q: np.ndarray, n: np.ndarray) -> np.ndarray:
        return q[:, :2]


# -- scenes --------------------------------------------------------------------------------


@dataclass
class _Object:
    shape: _Shape
    texture: int  # index into the scene's textures
    texels_per_unit: float
    uv_rot: np.ndarray  # (2, 2)
    uv_offset: np.ndarray  # (2,) texels
    colour: np.ndarray  # (3, 3) colour matrix applied to the texture
    bias: np.ndarray  # (3,)
    specular: float
    shininess: float


@dataclass
class _ThingsScene:
    height: int
    width: int
    focal: float
    baseline: float
    objects: list
    textures: list  # pyramids: tuples of (h, w, 3) float32 levels
    light: np.ndarray  # unit vector towards the light
    light_colour: np.ndarray
    ambient: float


def _shape(
    rng: np.random.Generator, kind: str, center: np.ndarray, extent: float, unit: float
) -> _Shape:
    """A shape of kind ``kind`` about ``extent`` scene units across; ``unit``: scene units per
    pixel at its depth (thin bars are 1.5-8 px thick)."""
    rot = _random_rotation(rng)
    if kind == "box":
        half = extent / 2 * rng.uniform(0.25, 1.0, 3)
        return _BoxShape(center, rot, half)
    if kind == "ellipsoid":
        half = extent / 2 * (rng.uniform(0.4, 1.0, 3) if rng.random() < 0.5 else np.ones(3))
        return _EllipsoidShape(center, rot, half)
    if kind == "cylinder":
        r, h = extent / 2 * rng.uniform(0.2, 0.8), extent / 2 * rng.uniform(0.3, 1.0)
        return _CylinderShape(center, rot, np.array([r, r, h]))
    if kind == "bar":
        length = extent * rng.uniform(1.0, 2.5) / 2
        thick = unit * rng.uniform(1.5, 8.0) / 2
        if rng.random() < 0.5:
            return _CylinderShape(center, rot, np.array([thick, thick, length]))
        return _BoxShape(center, rot, np.array([thick, thick * rng.uniform(1, 3), length]))
    half = extent / 2 * rng.uniform(0.4, 1.0, 2)
    return _QuadShape(center, rot, np.array([half[0], half[1], 0.0]))


def _place(
    rng: np.random.Generator,
    scene_fb: float,
    focal: float,
    height: int,
    width: int,
    disparity: float,
    extent_px: float,
    kind: str,
    z_min: float,
) -> _Shape:
    """A shape of kind ``kind`` whose centre has disparity ``disparity`` (moved back so that
    no point of it is nearer than ``z_min``) and is ``extent_px`` pixels across."""
    u = rng.uniform(-0.15, 1.15) * width
    v = rng.uniform(-0.1, 1.1) * height
    z = scene_fb / disparity
    # the bounding radius is about k * z (bars longer); keep every point at z >= z_min
    k = min(extent_px / focal * (1.6 if kind == "bar" else 0.9), 0.8)
    z = max(z, z_min / (1 - k))
    center = np.array(
        [(u - (width - 1) / 2) * z / focal, (v - (height - 1) / 2) * z / focal, z],
        dtype=np.float32,
    )
    shape = _shape(rng, kind, center, extent_px * z / focal, z / focal)
    if z - shape.radius < z_min:  # a rare long bar: push it back until it fits
        shift = z_min - (z - shape.radius)
        shape.center = shape.center * np.float32((z + shift) / z)
    return shape


def _build(
    rng: np.random.Generator,
    height: int,
    width: int,
    max_disparity: float,
    objects: tuple[int, int],
    photos: bool,
    specular: bool,
) -> _ThingsScene:
    hfov = math.radians(rng.uniform(40.0, 85.0))
    focal = 0.5 * width / math.tan(hfov / 2)
    baseline = float(rng.uniform(0.1, 0.6))
    fb = focal * baseline
    z_min = fb / max_disparity  # no surface nearer: every disparity <= max_disparity

    textures = [pyramid(procedural_texture(rng)) for _ in range(int(rng.integers(3, 7)))]
    grey = [False] * len(textures)
    if photos:
        pyramids = photo_pyramids()
        textures += list(pyramids)
        grey += list(photo_is_grey())
    n_procedural = len(textures) - (len(photo_pyramids()) if photos else 0)

    def material(texture: int, unit: float) -> dict:
        # ``unit``: scene units per pixel at the object's depth. Texture detail is drawn per
        # pixel (0.3-4 texels a pixel, log-uniform), so near and far objects alike carry
        # texture to match, with now and then a smoother (magnified) surface.
        side = max(textures[texture][0].shape[:2])
        texels = math.exp(rng.uniform(math.log(0.3), math.log(4.0))) / unit
        angle = rng.uniform(0, 2 * np.pi)
        colour, bias = colour_transform(rng, grey[texture])
        # drawn whatever ``specular`` says, so the scene is the same with and without
        shiny = rng.random() < 0.5
        strength = float(rng.uniform(0.2, 0.8))
        return dict(
            texture=texture,
            texels_per_unit=float(texels),
            uv_rot=np.array(
                [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]],
                dtype=np.float32,
            ),
            uv_offset=rng.uniform(0, 4 * side, 2).astype(np.float32),
            colour=colour,
            bias=bias,
            specular=strength if shiny and specular else 0.0,
            shininess=float(np.exp(rng.uniform(np.log(8), np.log(200)))),
        )

    def texture_choice() -> int:
        if photos and rng.random() < 0.6:
            return int(rng.integers(n_procedural, len(textures)))
        return int(rng.integers(n_procedural))

    # disparities of the background and of the nearest object; objects uniform in between
    d_bg = max_disparity * rng.uniform(0.005, 0.2)
    d_near = max_disparity * rng.uniform(0.2, 1.0)
    d_near = max(d_near, 3 * d_bg)
    n = int(rng.integers(objects[0], objects[1] + 1))
    n_clutter = int(round(n * rng.uniform(0.2, 0.4)))

    # background: a tilted quad at disparity d_bg, large enough for both views
    z_bg = fb / d_bg
    tilt = _random_rotation_small(rng, math.radians(20))
    reach = z_bg * (0.5 * max(width, height) / focal) * 3 + baseline
    background = _QuadShape(np.array([baseline / 2, 0, z_bg]), tilt, np.array([reach, reach, 0]))
    texture = texture_choice() if rng.random() < 0.3 else _photo_or_any(rng, photos, textures)
    scene_objects = [_Object(background, **material(texture, z_bg / focal))]
    for i in range(n):
        clutter = i < n_clutter
        kind = str(rng.choice(_SHAPES, p=_SHAPE_P))
        if clutter:
            d = d_bg * rng.uniform(1.1, 2.0)
            extent_px = width * rng.uniform(0.1, 0.4)
        else:
            d = rng.uniform(min(2 * d_bg, d_near), d_near)
            extent_px = width * math.exp(rng.uniform(math.log(0.04), math.log(0.45)))
        shape = _place(rng, fb, focal, height, width, d, extent_px, kind, z_min)
        unit = float(shape.center[2]) / focal
        scene_objects.append(_Object(shape, **material(texture_choice(), unit)))

    elevation, azimuth = rng.uniform(-0.3, 1.2), rng.uniform(-1.2, 1.2)
    light = np.array(
        [
            math.cos(elevation) * math.sin(azimuth),
            -math.sin(elevation),
            -math.cos(elevation) * math.cos(azimuth),
        ],
        dtype=np.float32,
    )
    return _ThingsScene(
        height=height,
        width=width,
        focal=focal,
        baseline=baseline,
        objects=scene_objects,
        textures=textures,
        light=light,
        light_colour=rng.uniform(0.85, 1.15, 3).astype(np.float32),
        ambient=float(rng.uniform(0.2, 0.5)),
    )


def _photo_or_any(rng: np.random.Generator, photos: bool, textures: list) -> int:
    """A background texture: a photograph when there are any, else a procedural one."""
    n_photos = len(photo_pyramids()) if photos else 0
    if n_photos:
        return int(len(textures) - n_photos + rng.integers(n_photos))
    return int(rng.integers(len(textures)))


def _random_rotation_small(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """A rotation by at most ``max_angle`` about a random axis (Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(-max_angle, max_angle)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return (np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k).astype(np.float32)


# -- rendering -----------------------------------------------------------------------------


def _screen_box(
    shape: _Shape, origin: np.ndarray, focal: float, height: int, width: int
) -> Optional[tuple[int, int, int, int]]:
    """Rows and columns ``(v0, v1, u0, u1)`` the shape's bounding sphere may cover (None:
    none); the whole image when the sphere reaches the camera plane."""
    c = shape.center - origin
    r = shape.radius * 1.001 + 1e-6
    if c[2] - r <= _EPS:
        return 0, height, 0, width
    cx, cy = (width - 1) / 2, (height - 1) / 2
    zs = (c[2] - r, c[2] + r)
    us = [focal * (c[0] + s) / z + cx for s in (-r, r) for z in zs]
    vs = [focal * (c[1] + s) / z + cy for s in (-r, r) for z in zs]
    u0, u1 = max(int(math.floor(min(us))), 0), min(int(math.ceil(max(us))) + 1, width)
    v0, v1 = max(int(math.floor(min(vs))), 0), min(int(math.ceil(max(vs))) + 1, height)
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


def _shade(
    scene: _ThingsScene, obj: _Object, origin: np.ndarray, d: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """Colours (N, 3) of rays ``d`` (N, 3) that hit ``obj`` at z-depths ``z`` (N,)."""
    shape = obj.shape
    p = origin + z[:, None] * d
    q = (p - shape.center) @ shape.rot
    n_local = shape.local_normal(q)
    n = n_local @ shape.rot.T
    length = np.linalg.norm(d, axis=1)
    view = -d / length[:, None]
    cos = (n * view).sum(axis=1)
    # two-sided: face the normal towards the camera
    n = n * np.where(cos < 0, -1.0, 1.0).astype(np.float32)[:, None]
    cos = np.abs(cos)

    uv = shape.uv(q, n_local) @ obj.uv_rot.T * obj.texels_per_unit + obj.uv_offset
    # texels per pixel: the pixel's footprint on the surface (wider when seen obliquely)
    footprint = z * length / scene.focal / np.sqrt(np.maximum(cos, 0.05))
    lod = np.log2(np.maximum(footprint * obj.texels_per_unit, 1e-6))
    albedo = sample_texture(scene.textures[obj.texture], uv[:, 0], uv[:, 1], lod)
    albedo = np.clip(albedo @ obj.colour.T + obj.bias, 0, 1)

    lambert = np.clip(n @ scene.light, 0, 1)
    colour = albedo * (scene.ambient + (1 - scene.ambient) * lambert)[:, None]
    if obj.specular > 0:
        half = view + scene.light
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        spec = obj.specular * np.clip((n * half).sum(axis=1), 0, 1) ** obj.shininess
        colour = colour + spec[:, None]
    return colour * scene.light_colour


def _render_view(
    scene: _ThingsScene, origin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour (H, W, 3) float32, z-depth (H, W) float32 and object index (H, W) int32 (0:
    the background) of the camera at ``origin``."""
    h, w, f = scene.height, scene.width, scene.focal
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (u - (w - 1) / 2) / f, (v - (h - 1) / 2) / f
    origin = np.asarray(origin, dtype=np.float32)
    depth = np.full((h, w), np.inf, dtype=np.float32)
    index = np.full((h, w), -1, dtype=np.int32)
    for k, obj in enumerate(scene.objects):
        box = _screen_box(obj.shape, origin, f, h, w)
        if box is None:
            continue
        v0, v1, u0, u1 = box
        t = obj.shape.hit(origin, dx[v0:v1, u0:u1], dy[v0:v1, u0:u1])
        sub_depth, sub_index = depth[v0:v1, u0:u1], index[v0:v1, u0:u1]
        closer = t < sub_depth
        sub_depth[closer] = t[closer]
        sub_index[closer] = k
    if (index < 0).any():  # the background covers both views by construction
        raise RuntimeError("a ray hit nothing: the background quad does not cover the view")
    colour = np.empty((h * w, 3), dtype=np.float32)
    flat_index, flat_depth = index.ravel(), depth.ravel()
    flat_dirs = np.stack([dx.ravel(), dy.ravel(), np.ones(h * w, np.float32)], axis=1)
    order = np.argsort(flat_index, kind="stable")
    bounds = np.searchsorted(flat_index[order], np.arange(len(scene.objects) + 1))
    for k, obj in enumerate(scene.objects):
        sel = order[bounds[k] : bounds[k + 1]]
        if len(sel):
            colour[sel] = _shade(scene, obj, origin, flat_dirs[sel], flat_depth[sel])
    return colour.reshape(h, w, 3), depth, index


def render_things(
    rng: np.random.Generator,
    size: Sequence[int],
    max_disparity: Optional[float] = None,
    objects: Sequence[int] = (10, 40),
    photos: bool = True,
    specular: bool = True,
    frames: int = 1,
    move: float = 0.02,
) -> dict:
    """Ray-cast one random FlyingThings-style scene from a rectified stereo pair.

    Args:
        rng: numpy generator; the same state gives the same output.
        size: image size ``(H, W)``.
        max_disparity: largest disparity in px (no surface is nearer); default
            :func:`default_max_disparity`. The scene's nearest object centre is drawn at
            20-100% of it, the background at 0.4-4%.
        objects: ``(min, max)`` number of objects (the background not counted).
        photos: use the bundled photographs as textures (needs scikit-image), besides the
            procedural ones.
        specular: specular highlights on about half of the objects (else Lambertian only).
        frames: views of the scene; frame ``k`` moves both cameras by ``k`` random sideways
            steps of ``move`` baselines (so disparities stay within range).
        move: sideways camera step per frame, in baselines.

    Returns:
        dict with ``frames``: a list of dicts ``left``, ``right`` uint8 (H, W, 3),
        ``depth`` float32 (H, W) z-depth of the left view (scene units),
        ``disparity`` = ``focal * baseline / depth`` and ``right_disparity`` (of the right
        view) float32 (H, W) px, dense and positive, ``objects`` int16 (H, W): which object
        each left pixel sees (0: the background, then in drawing order); plus ``focal`` (px)
        and ``baseline`` (scene units).
    """
    height, width = check_size(size, "size")
    if max_disparity is None:
        max_disparity = default_max_disparity(width)
    lo, hi = (int(n) for n in objects)
    if not 0 <= lo <= hi:
        raise ValueError(f"objects must be (min, max) with 0 <= min <= max, got {objects}")
    if max_disparity <= 0:
        raise ValueError(f"max_disparity must be > 0, got {max_disparity}")
    if frames < 1 or move < 0:
        raise ValueError(f"frames must be >= 1 and move >= 0, got {frames} and {move}")
    scene = _build(rng, height, width, float(max_disparity), (lo, hi), photos, specular)
    step = np.array([*rng.uniform(-1, 1, 2), 0.0], dtype=np.float32)
    step *= np.float32(move * scene.baseline / max(np.linalg.norm(step), 1e-6))
    fb = np.float32(scene.focal * scene.baseline)
    out = []
    for k in range(frames):
        origin = step * k
        left, depth, index = _render_view(scene, origin)
        right, right_depth, _ = _render_view(
            scene, origin + np.array([scene.baseline, 0, 0], dtype=np.float32)
        )
        out.append(
            {
                "left": _to_uint8(left.reshape(-1, 3), height, width),
                "right": _to_uint8(right.reshape(-1, 3), height, width),
                "depth": depth,
                "disparity": (fb / depth).astype(np.float32),
                "right_disparity": (fb / right_depth).astype(np.float32),
                "objects": index.astype(np.int16),
            }
        )
    return {"frames": out, "focal": float(scene.focal), "baseline": float(scene.baseline)}


# -- datasets ------------------------------------------------------------------------------


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork where there is one: workers start at once with the parent's imports and loaded
    # photographs (spawn would import the package, ~5 s, in each); they run numpy only.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def default_workers(jobs: int) -> int:
    """Processes for ``jobs`` scenes: the CPUs this process may use, at most ``jobs``."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, jobs))


def map_scenes(
    function: Callable[[int], object], count: int, workers: Optional[int] = None
) -> Iterator:
    """``function(s)`` for ``s`` in ``range(count)``, in order, computed by ``workers``
    processes (default :func:`default_workers`; 1: in this process). ``function`` must be
    picklable (a module-level function or a ``functools.partial`` of one) and depend only on
    its arguments, so the results do not depend on ``workers``. At most ``2 * workers``
    results wait to be consumed (memory stays bounded however many scenes)."""
    workers = default_workers(count) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1 or None (automatic), got {workers}")
    if workers == 1 or count <= 1:
        yield from (function(s) for s in range(count))
        return
    with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
        jobs = iter(range(count))
        pending = deque(pool.submit(function, s) for s in islice(jobs, 2 * workers))
        while pending:
            result = pending.popleft().result()
            for s in islice(jobs, 1):
                pending.append(pool.submit(function, s))
            yield result


def scene_name(scene: int, scenes: int) -> str:
    """``things_SSSS_x2`` (at least 4 digits, as many as the largest scene number needs)."""
    return f"things_{scene:0{max(4, len(str(scenes - 1)))}d}_x2"


def _scene_frames(
    s: int,
    seed: int,
    scenes: int,
    frames: int,
    size: tuple[int, int],
    max_disparity: Optional[float],
    photos: bool,
) -> list[dict]:
    rendered = render_things(
        np.random.default_rng([seed, s]), size, max_disparity, photos=photos, frames=frames
    )
    name = scene_name(s, scenes)
    keys = ("left", "right", "disparity", "right_disparity")
    return [
        {"scene": name, "frame": k, **{key: f[key] for key in keys}}
        for k, f in enumerate(rendered["frames"])
    ]


def things_job(
    scenes: int = 64,
    frames: int = 1,
    size: Sequence[int] = (320, 640),
    seed: int = 0,
    max_disparity: Optional[float] = None,
    photos: bool = True,
) -> Callable[[int], list[dict]]:
    """The checked, picklable function ``scene -> its frames`` of :func:`things_frames`
    (for :func:`map_scenes`); arguments as there."""
    size = check_size(size, "size")
    if scenes < 1 or frames < 1:
        raise ValueError(f"scenes and frames must be >= 1, got {scenes} and {frames}")
    if max_disparity is not None and max_disparity <= 0:
        raise ValueError(f"max_disparity must be > 0, got {max_disparity}")
    if photos:
        # fail now if scikit-image is missing; forked workers inherit what is loaded here
        photo_pyramids()
        photo_is_grey()
    return partial(
        _scene_frames,
        seed=seed,
        scenes=scenes,
        frames=frames,
        size=size,
        max_disparity=max_disparity,
        photos=photos,
    )


def things_frames(
    scenes: int = 64,
    frames: int = 1,
    size: Sequence[int] = (320, 640),
    seed: int = 0,
    max_disparity: Optional[float] = None,
    photos: bool = True,
    workers: Optional[int] = None,
) -> Iterator[dict]:
    """Rendered FlyingThings-style stereo frames in scene order, computed in parallel
    (arguments are checked at once).

    Args:
        scenes: number of independent scenes (:func:`render_things`).
        frames: frames per scene (small sideways camera moves).
        size: image size ``(H, W)``.
        seed: base seed; scene ``s`` depends only on ``(seed, s)``.
        max_disparity: largest disparity (px); default :func:`default_max_disparity`.
        photos: photo textures besides procedural ones.
        workers: processes (default: the CPUs available); the frames do not depend on it.

    Yields:
        dicts with ``scene`` (:func:`scene_name`), ``frame`` int, ``left`` and ``right``
        uint8 (H, W, 3), ``disparity`` and ``right_disparity`` float32 (H, W) px (positive).
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 or None (automatic), got {workers}")
    job = things_job(scenes, frames, size, seed, max_disparity, photos)
    return (frame for result in map_scenes(job, scenes, workers) for frame in result)
