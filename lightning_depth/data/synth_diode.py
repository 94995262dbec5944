"""Generated DIODE-like samples: rendered scenes with sensor-like depth dropouts, numbered as
DIODE numbers its scenes and scans. :func:`~lightning_depth.data.diode.synthesize_diode`
writes them in DIODE's layout."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from lightning_depth.data.synth import SCENE_KINDS, render_scene
from lightning_depth.data.transforms import check_size

__all__ = ["STYLES", "diode_samples"]

#: the generated mono styles: procedural patterns, photographs on most surfaces, or
#: photographs and FlyingThings-style clutter (objects near the camera, many behind, bars)
STYLES = ("procedural", "photo", "things")


def diode_samples(
    n: int,
    size: Sequence[int] = (192, 256),
    seed: int = 0,
    scene_types: Sequence[str] = SCENE_KINDS,
    scenes_per_type: int = 2,
    scans_per_scene: int = 2,
    style: str = "procedural",
) -> Iterator[dict]:
    """``n`` rendered samples, one at a time (arguments are checked at once).

    Samples go round-robin over ``scene_types`` x scenes x scans; scene and scan numbers are
    unique across types. Sample ``i`` is rendered from ``default_rng([seed, i])``, so a larger
    ``n`` adds samples without changing the first ones.

    Args:
        n: number of samples (>= 1).
        size: image size ``(H, W)``.
        seed: base seed.
        scene_types: subset of ``("indoors", "outdoor")``.
        scenes_per_type: scene folders per type.
        scans_per_scene: scan folders per scene.
        style: ``"procedural"`` (patterns) or ``"photo"``: the photographs of
            :mod:`~lightning_depth.data.synth_textures` on about 70% of the surfaces, the
            monocular counterpart of the stereo ``"things"`` style (needs scikit-image);
            ``"things"``: ``"photo"`` plus clutter (``render_scene``'s ``clutter``): large
            objects near the camera in most scenes, many small ones resting or floating
            behind them, thin bars.

    Yields:
        dicts with ``scene_type`` str, ``scene``, ``scan``, ``view`` int (the sample's number
        within its scan), ``image`` uint8 (H, W, 3), ``depth`` float32 (H, W) metres and
        ``mask`` bool (H, W), valid depth (hits minus a few sensor-like dropouts).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    height, width = check_size(size, "size")
    if not scene_types or any(t not in SCENE_KINDS for t in scene_types):
        raise ValueError(
            f"scene_types must be a non-empty subset of {SCENE_KINDS}, got {scene_types}"
        )
    if scenes_per_type < 1 or scans_per_scene < 1:
        raise ValueError("scenes_per_type and scans_per_scene must be >= 1")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    return _samples(
        n,
        height,
        width,
        seed,
        tuple(scene_types),
        scenes_per_type,
        scans_per_scene,
        style in ("photo", "things"),
        style == "things",
    )


def _samples(
    n: int,
    height: int,
    width: int,
    seed: int,
    scene_types: tuple[str, ...],
    scenes_per_type: int,
    scans_per_scene: int,
    photos: bool,
    clutter: bool,
) -> Iterator[dict]:
    # slots[t] lists the (scene, scan) folders of type t; numbers are unique across types.
    slots: list[list[tuple[int, int]]] = []
    for t in range(len(scene_types)):
        first_scene = t * scenes_per_type
        slots.append(
            [
                (first_scene + s, (first_scene + s) * scans_per_scene + c)
                for s in range(scenes_per_type)
                for c in range(scans_per_scene)
            ]
        )
    per_type = scenes_per_type * scans_per_scene
    for i in range(n):
        t, j = i % len(scene_types), i // len(scene_types)
        scene, scan = slots[t][j % per_type]
        rendered = render_scene(
            np.random.default_rng([seed, i]),
            width,
            height,
            kind=scene_types[t],
            photos=photos,
            clutter=clutter,
        )
        yield {
            "scene_type": scene_types[t],
            "scene": scene,
            "scan": scan,
            "view": j // per_type,
            "image": rendered["image"],
            "depth": rendered["depth"],
            "mask": rendered["mask"],
        }
