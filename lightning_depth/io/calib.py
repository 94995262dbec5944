"""Stereo calibration files: Middlebury 2014 ``calib.txt`` and KITTI 2012/2015 calibration,
read into a :class:`~lightning_depth.geometry.Camera`.

Middlebury (``<scene>/calib.txt``)::

    cam0=[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]
    cam1=[3979.911 0 1369.115; 0 3979.911 1019.507; 0 0 1]
    doffs=124.343
    baseline=193.001        # millimetres
    width=2964
    ...

KITTI: ``P2: ...``/``P3: ...`` (KITTI 2012 ``calib/*.txt``) or ``P_rect_02: ...``/
``P_rect_03: ...`` (KITTI 2015 ``calib_cam_to_cam/*.txt``): 3x4 rectified projection matrices
of the left and right colour cameras, ``P = K [I | t]``; the baseline is
``(P_left[0, 3] - P_right[0, 3]) / fx`` metres.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Union

import numpy as np

from lightning_depth.geometry import Camera
from lightning_depth.io.errors import DataError

__all__ = ["read_calib", "read_kitti_calib", "read_middlebury_calib", "write_middlebury_calib"]

PathLike = Union[str, os.PathLike]

#: KITTI keys of the (left, right) colour cameras' projection matrices, newest layout first.
KITTI_KEYS = (("P_rect_02", "P_rect_03"), ("P2", "P3"))


def _entries(path: PathLike) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"calibration file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"calibration file {path}: cannot read it ({error})") from error
    entries = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=" if "=" in line.split(":")[0] else ":")
        if sep and key.strip():
            entries[key.strip()] = value.strip()
    return entries


def _matrix(path: PathLike, key: str, value: str, shape: tuple[int, int]) -> np.ndarray:
    numbers = re.split(r"[\s;\[\]]+", value.strip())
    try:
        values = np.array([float(v) for v in numbers if v], dtype=np.float64)
        return values.reshape(shape)
    except ValueError as error:
        raise DataError(
            f"calibration file {path}: {key} must hold {shape[0]}x{shape[1]} numbers, got {value!r}"
        ) from error


def _number(path: PathLike, key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError as error:
        raise DataError(
            f"calibration file {path}: {key} must be a number, got {value!r}"
        ) from error


def _camera(path: PathLike, **values) -> Camera:
    try:
        return Camera(**values)
    except ValueError as error:
        raise DataError(f"calibration file {path}: {error}") from error


def read_middlebury_calib(path: PathLike) -> Camera:
    """A Middlebury 2014 ``calib.txt`` (baseline in millimetres -> metres); ``width`` and
    ``height``, where given, become :attr:`Camera.size` (so maps of resized images get the
    camera scaled to them, see :meth:`Camera.for_size`)."""
    entries = _entries(path)
    missing = [k for k in ("cam0", "cam1", "baseline") if k not in entries]
    if missing:
        raise DataError(
            f"calibration file {path}: not a Middlebury calib.txt, missing {', '.join(missing)} "
            "(expected cam0=[f 0 cx; 0 f cy; 0 0 1], cam1=..., doffs=..., baseline=<mm>)"
        )
    k0 = _matrix(path, "cam0", entries["cam0"], (3, 3))
    k1 = _matrix(path, "cam1", entries["cam1"], (3, 3))
    doffs = _number(path, "doffs", entries["doffs"]) if "doffs" in entries else k1[0, 2] - k0[0, 2]
    size = None
    if "width" in entries and "height" in entries:
        size = (
            int(_number(path, "height", entries["height"])),
            int(_number(path, "width", entries["width"])),
        )
    baseline = _number(path, "baseline", entries["baseline"])
    if not baseline > 0:
        raise DataError(f"calibration file {path}: baseline must be > 0 mm, got {baseline}")
    return _camera(
        path,
        fx=k0[0, 0],
        fy=k0[1, 1],
        cx=k0[0, 2],
        cy=k0[1, 2],
        baseline=baseline / 1000.0,
        doffs=doffs,
        size=size,
    )


def write_middlebury_calib(
    path: PathLike, camera: Camera, width: int, height: int, ndisp: int = 256
) -> Path:
    """Write ``camera`` as a Middlebury 2014 ``calib.txt`` (for generated benchmark folders)."""
    if camera.baseline is None:
        raise ValueError("write_middlebury_calib: the camera needs a baseline")
    c = camera
    path = Path(path)
    path.write_text(
        f"cam0=[{c.fx:.6f} 0 {c.cx:.6f}; 0 {c.fy:.6f} {c.cy:.6f}; 0 0 1]\n"
        f"cam1=[{c.fx:.6f} 0 {c.cx + c.doffs:.6f}; 0 {c.fy:.6f} {c.cy:.6f}; 0 0 1]\n"
        f"doffs={c.doffs:.6f}\nbaseline={c.baseline * 1000.0:.6f}\n"
        f"width={width}\nheight={height}\nndisp={ndisp}\nisint=0\nvmin=0\nvmax={ndisp}\n"
        "dyavg=0\ndymax=0\n",
        encoding="utf-8",
    )
    return path


def read_kitti_calib(path: PathLike) -> Camera:
    """A KITTI 2012 (``P2``/``P3``) or 2015 (``P_rect_02``/``P_rect_03``) calibration file.

    KITTI 2015's ``S_rect_02`` (rectified image ``width height``) becomes :attr:`Camera.size`;
    KITTI 2012 files record no size (their values are for the benchmark's images)."""
    entries = _entries(path)
    for left_key, right_key in KITTI_KEYS:
        if left_key in entries and right_key in entries:
            p2 = _matrix(path, left_key, entries[left_key], (3, 4))
            p3 = _matrix(path, right_key, entries[right_key], (3, 4))
            fx = p2[0, 0]
            if not fx > 0 or not p2[0, 3] > p3[0, 3]:
                raise DataError(
                    f"calibration file {path}: {left_key}/{right_key} are not a left/right pair "
                    f"(need fx > 0 and {left_key}[0, 3] > {right_key}[0, 3], got fx={fx:g}, "
                    f"{p2[0, 3]:g} and {p3[0, 3]:g})"
                )
            size = None
            if "S_rect_02" in entries:
                w, h = _matrix(path, "S_rect_02", entries["S_rect_02"], (1, 2))[0]
                size = (int(round(h)), int(round(w)))
            return _camera(
                path,
                fx=fx,
                fy=p2[1, 1],
                cx=p2[0, 2],
                cy=p2[1, 2],
                baseline=float(p2[0, 3] - p3[0, 3]) / fx,
                doffs=float(p3[0, 2] - p2[0, 2]),
                size=size,
            )
    raise DataError(
        f"calibration file {path}: not a KITTI calibration, found none of the key pairs "
        f"{', '.join('/'.join(k) for k in KITTI_KEYS)}"
    )


def read_calib(path: PathLike) -> Camera:
    """Middlebury ``calib.txt`` or a KITTI calibration file, told apart by their keys."""
    entries = _entries(path)
    if "cam0" in entries:
        return read_middlebury_calib(path)
    if any(a in entries for a, _ in KITTI_KEYS):
        return read_kitti_calib(path)
    raise DataError(
        f"calibration file {path}: neither Middlebury (cam0=, cam1=, baseline=) nor KITTI "
        "(P2:/P3: or P_rect_02:/P_rect_03:)"
    )
