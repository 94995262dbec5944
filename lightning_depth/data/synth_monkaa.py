"""Generated Monkaa-like stereo sequences with exact disparity, in two styles: ``"rooms"``
(:func:`monkaa_frames`: textured rooms of :mod:`~lightning_depth.data.synth`, a short zoom per
scene) and ``"things"`` (:func:`~lightning_depth.data.synth_things.things_frames`:
FlyingThings-style clutter of photo-textured objects, the data that transfers to real pairs).
:func:`~lightning_depth.data.monkaa.synthesize_monkaa` writes them in Monkaa's layout."""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from lightning_depth.data.synth import render_scene
from lightning_depth.data.synth_things import map_scenes, things_job
from lightning_depth.data.transforms import check_size

__all__ = ["STYLES", "monkaa_frames", "rooms_job", "scene_job"]

#: the generated stereo styles
STYLES = ("rooms", "things")


def monkaa_frames(
    scenes: int = 2,
    frames: int = 8,
    size: Sequence[int] = (192, 320),
    seed: int = 0,
    baseline: Optional[float] = None,
    max_disparity: Optional[float] = None,
    zoom_per_frame: float = 0.015,
    workers: Optional[int] = 1,
) -> Iterator[dict]:
    """Rendered stereo frames, one at a time (arguments are checked at once).

    Each scene is a textured room from :func:`~lightning_depth.data.synth.render_scene` seen by
    two rectified cameras ``baseline`` apart. The frames of a scene show the same room while the
    camera zooms in a little from frame to frame (the renderer takes no camera pose, and a zoom is
    what a short dolly forward looks like), so consecutive frames are near-duplicates as in the
    real data, which is what ``split_by="scene"`` guards against.

    Args:
        scenes: number of scenes.
        frames: frames per scene.
        size: image size ``(H, W)``.
        seed: base seed; scene ``s`` depends only on ``(seed, s)``.
        baseline: stereo baseline in scene metres. Default: chosen per scene so that its nearest
            surface has a disparity drawn from ``[0.5, 0.9] * max_disparity``. An explicit value
            is lowered where it would exceed ``max_disparity``.
        max_disparity: largest disparity allowed, in px; default ``min(W / 4, 191)`` (AnyNet's
            first stage covers 12 disparities at 1/16 resolution, i.e. under 192 px).
        zoom_per_frame: relative focal-length increase from one frame to the next.
        workers: processes rendering scenes in parallel (``None``: the CPUs available); the
            frames do not depend on it.

    Yields:
        dicts with ``scene`` (``scene_SSS_x2``), ``frame`` int, ``left`` and ``right`` uint8
        (H, W, 3), ``disparity`` and ``right_disparity`` float32 (H, W) in px (positive).
    """
    job = rooms_job(scenes, frames, size, seed, baseline, max_disparity, zoom_per_frame)
    return (frame for scene in map_scenes(job, scenes, workers) for frame in scene)


def rooms_job(
    scenes: int = 2,
    frames: int = 8,
    size: Sequence[int] = (192, 320),
    seed: int = 0,
    baseline: Optional[float] = None,
    max_disparity: Optional[float] = None,
    zoom_per_frame: float = 0.015,
) -> Callable[[int], list[dict]]:
    """The checked, picklable function ``scene -> its frames`` of :func:`monkaa_frames`
    (for :func:`~lightning_depth.data.synth_things.map_scenes`); arguments as there."""
    height, width = check_size(size, "size")
    if scenes < 1 or frames < 1:
        raise ValueError(f"scenes and frames must be >= 1, got {scenes} and {frames}")
    if max_disparity is None:
        max_disparity = min(width / 4.0, 191.0)
    if max_disparity <= 0:
        raise ValueError(f"max_disparity must be > 0, got {max_disparity}")
    if baseline is not None and baseline <= 0:
        raise ValueError(f"baseline must be > 0, got {baseline}")
    if zoom_per_frame < 0:
        raise ValueError(f"zoom_per_frame must be >= 0, got {zoom_per_frame}")
    return partial(
        _scene_frames,
        frames=frames,
        height=height,
        width=width,
        seed=seed,
        baseline=baseline,
        max_disparity=max_disparity,
        zoom_per_frame=zoom_per_frame,
    )


def _scene_frames(
    s: int,
    frames: int,
    height: int,
    width: int,
    seed: int,
    baseline: Optional[float],
    max_disparity: float,
    zoom_per_frame: float,
) -> list[dict]:
    """The frames of scene ``s`` (a pure function of its arguments)."""
    out = []
    # The renderer draws the room first from its generator, so a fresh generator with the
    # scene's seed gives the same room in every frame.
    scene_seed = [seed, s]
    own = np.random.default_rng([seed, s, 1])
    focal0 = 0.5 * width / math.tan(math.radians(own.uniform(55.0, 75.0)) / 2)
    focals = [focal0 * (1 + zoom_per_frame) ** k for k in range(frames)]
    # Zooming in only narrows the view, so the widest frame sees the nearest surface.
    probe = render_scene(
        np.random.default_rng(scene_seed), width, height, focal=focal0, kind="indoors"
    )
    hits = probe["depth"][probe["depth"] > 0]
    z_min = float(hits.min()) if hits.size else 1.0
    cap = max_disparity * z_min / focals[-1]
    target = own.uniform(0.5, 0.9) * max_disparity * z_min / focals[-1]
    b = target if baseline is None else min(baseline, cap)
    for k, focal in enumerate(focals):
        view = render_scene(
            np.random.default_rng(scene_seed),
            width,
            height,
            baseline=b,
            focal=focal,
            kind="indoors",
        )
        out.append(
            {
                "scene": f"scene_{s:03d}_x2",
                "frame": k,
                "left": view["image"],
                "right": view["right"],
                "disparity": view["disparity"],
                "right_disparity": view["right_disparity"],
            }
        )
    return out


def scene_job(
    style: str,
    scenes: int,
    frames: int,
    size: Sequence[int],
    seed: int = 0,
    max_disparity: Optional[float] = None,
    **options: Any,
) -> Callable[[int], list[dict]]:
    """The checked, picklable function ``scene -> its frames`` of a generated stereo set of
    ``style`` (:data:`STYLES`): ``"rooms"``: :func:`monkaa_frames` (``options``:
    ``baseline``, ``zoom_per_frame``); ``"things"``:
    :func:`~lightning_depth.data.synth_things.things_frames` (``options``: ``photos``).

    Raises:
        ValueError: an unknown style, or an option the style does not take.
    """
    takes = {"rooms": ("baseline", "zoom_per_frame"), "things": ("photos",)}
    if style not in takes:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    other = sorted(set(options) - set(takes[style]))
    if other:
        raise ValueError(
            f"{', '.join(other)} do not apply to style {style!r} (it takes "
            f"{', '.join(takes[style])})"
        )
    make = rooms_job if style == "rooms" else things_job
    return make(scenes, frames, size, seed, max_disparity=max_disparity, **options)
