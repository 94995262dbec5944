"""PLY point clouds: coloured vertices, binary little-endian or ASCII.

Written by hand because the job is small (a header and one numpy structured array) and the
PLY packages (plyfile, open3d) are not dependencies of this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from lightning_depth.io.errors import DataError

__all__ = ["PLYError", "read_ply", "write_ply"]

PathLike = Union[str, Path]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


class PLYError(DataError):
    """A PLY file that cannot be read: the message names the file and the problem."""


def write_ply(
    path: PathLike,
    points: np.ndarray,
    colors: Optional[np.ndarray] = None,
    binary: bool = True,
) -> None:
    """Write a point cloud as PLY (``x y z`` float32, optional ``red green blue`` uchar).

    Args:
        path: file to write; its parent folder must exist.
        points: ``(N, 3)`` real array.
        colors: optional ``(N, 3)`` uint8 array (RGB).
        binary: binary little-endian (default, ~4x smaller) or ASCII.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"write_ply expects points of shape (N, 3), got {points.shape}")
    if not np.issubdtype(points.dtype, np.number):
        raise TypeError(f"write_ply expects real-valued points, got dtype {points.dtype}")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != points.shape:
            raise ValueError(
                f"write_ply expects colors of shape (N, 3) = {points.shape}, got {colors.shape}"
            )
        if colors.dtype != np.uint8:
            raise TypeError(f"write_ply expects uint8 colors, got dtype {colors.dtype}")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertices = np.empty(len(points), dtype=fields)
    for i, axis in enumerate("xyz"):
        vertices[axis] = points[:, i]
    if colors is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            vertices[channel] = colors[:, i]
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0"]
    header.append(f"element vertex {len(points)}")
    header += [f"property float {axis}" for axis in "xyz"]
    if colors is not None:
        header += [f"property uchar {c}" for c in ("red", "green", "blue")]
    header.append("end_header")
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        if binary:
            f.write(vertices.tobytes())
        else:
            fmt = ["%.7g"] * 3 + (["%d"] * 3 if colors is not None else [])
            np.savetxt(f, _rows(vertices), fmt=fmt)


def _rows(vertices: np.ndarray) -> np.ndarray:
    return np.stack([vertices[name].astype(np.float64) for name in vertices.dtype.names], 1)


def read_ply(path: PathLike) -> dict[str, np.ndarray]:
    """Read the ``vertex`` element of a PLY file (binary little/big endian or ASCII).

    Only scalar vertex properties are supported (no lists, i.e. no faces before the vertices).

    Args:
        path: ``.ply`` file.

    Returns:
        dict with ``points`` ``(N, 3)`` float32 and, if the file has them, ``colors``
        ``(N, 3)`` uint8; every vertex property is also under its own name.

    Raises:
        PLYError: the file is missing, not PLY, has an unsupported layout or is truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise PLYError(f"PLY file {path} {'is not a file' if path.exists() else 'does not exist'}")
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise PLYError(f"{path}: not a PLY file (first line is not 'ply')")
        fmt, count, props, in_vertex = None, None, [], False
        while True:
            line = f.readline()
            if not line:
                raise PLYError(f"{path}: PLY header has no 'end_header' line")
            words = line.decode("ascii", errors="replace").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                in_vertex = words[1] == "vertex"
                if in_vertex:
                    count = int(words[2])
                elif count is None:
                    raise PLYError(f"{path}: elements before 'vertex' are not supported")
            elif words[0] == "property" and in_vertex:
                if words[1] == "list" or words[1] not in _PLY_TYPES:
                    raise PLYError(f"{path}: unsupported vertex property {' '.join(words[1:])!r}")
                props.append((words[2], _PLY_TYPES[words[1]]))
        if fmt not in ("ascii", "binary_little_endian", "binary_big_endian") or count is None:
            raise PLYError(f"{path}: need a 'format' and an 'element vertex' line in the header")
        order = ">" if fmt == "binary_big_endian" else "<"
        dtype = np.dtype([(name, order + code) for name, code in props])
        if fmt == "ascii":
            rows = np.loadtxt(f, max_rows=count, ndmin=2) if count else np.zeros((0, len(props)))
            if rows.shape != (count, len(props)):
                raise PLYError(
                    f"{path}: expected {count} vertices of {len(props)} values, got {rows.shape}"
                )
            data = np.empty(count, dtype=dtype)
            for i, (name, _) in enumerate(props):
                data[name] = rows[:, i]
        else:
            raw = f.read(count * dtype.itemsize)
            if len(raw) < count * dtype.itemsize:
                raise PLYError(
                    f"{path}: truncated: {count} vertices need {count * dtype.itemsize} bytes, "
                    f"got {len(raw)}"
                )
            data = np.frombuffer(raw, dtype=dtype)
    names = dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise PLYError(f"{path}: vertex element has no x, y, z properties (has {names})")
    out = {name: np.asarray(data[name]) for name in names}
    out["points"] = np.stack([data[a] for a in "xyz"], 1).astype(np.float32)
    if {"red", "green", "blue"} <= set(names):
        out["colors"] = np.stack([data[c] for c in ("red", "green", "blue")], 1).astype(np.uint8)
    return out
