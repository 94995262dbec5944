"""Camera geometry for prediction outputs: pinhole intrinsics, disparity to depth, and
back-projection of a depth map to a point cloud."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
from kornia.geometry.depth import depth_to_3d_v2

__all__ = ["Camera", "backproject", "default_intrinsics", "disparity_to_depth"]


@dataclass(frozen=True)
class Camera:
    """The left camera of a rectified stereo rig (or a single camera): pinhole intrinsics in
    pixels, and for a pair the baseline and the principal points' column offset.

    Depth from a left disparity ``d`` is ``fx * baseline / (d + doffs)`` (Middlebury's
    ``Z = baseline * f / (d + doffs)``; ``doffs = cx_right - cx_left``, 0 for most rigs and
    KITTI). Read one with :func:`lightning_depth.io.calib.read_calib`.

    Attributes:
        fx: focal length along the columns, pixels.
        fy: focal length along the rows, pixels.
        cx: principal point column of the left camera, pixels.
        cy: principal point row, pixels.
        baseline: distance between the two cameras in metres (``None``: a single camera).
        doffs: column offset of the right camera's principal point, pixels.
        size: ``(H, W)`` of the images these values are for (Middlebury's ``height``/
            ``width``, KITTI 2015's ``S_rect_02``); ``None``: not recorded.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    baseline: Optional[float] = None
    doffs: float = 0.0
    size: Optional[tuple[int, int]] = None

    def __post_init__(self) -> None:
        # plain floats (numpy scalars from calibration files print and serialise badly)
        for name in ("fx", "fy", "cx", "cy", "doffs"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.baseline is not None:
            object.__setattr__(self, "baseline", float(self.baseline))
        if self.size is not None:
            h, w = (int(v) for v in self.size)
            if h < 1 or w < 1:
                raise ValueError(f"Camera: size must be (H, W) >= 1, got {self.size}")
            object.__setattr__(self, "size", (h, w))
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"Camera: focal lengths must be > 0 pixels, got {self.fx}, {self.fy}")
        if self.baseline is not None and not self.baseline > 0:
            raise ValueError(f"Camera: baseline must be > 0 metres, got {self.baseline}")

    def scaled(self, sx: float, sy: Optional[float] = None) -> Camera:
        """The camera of the images resized by ``sx`` along the columns and ``sy`` (default
        ``sx``) along the rows; Middlebury's half/quarter calibrations scale the same way."""
        sy = sx if sy is None else sy
        size = None
        if self.size is not None:
            size = (round(self.size[0] * sy), round(self.size[1] * sx))
        return replace(
            self,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=self.cx * sx,
            cy=self.cy * sy,
            doffs=self.doffs * sx,
            size=size,
        )

    def for_size(self, height: int, width: int, aspect_tolerance: float = 0.01) -> Camera:
        """The camera of ``height x width`` images of this rig.

        With :attr:`size` recorded, images of another size are taken to be the calibrated
        images *resized* (as Middlebury's half and quarter resolutions, or a map predicted
        from resized inputs): the camera is :meth:`scaled` by ``width / W`` and
        ``height / H``. A crop cannot be told from a resize by sizes alone, so a change of
        aspect ratio beyond ``aspect_tolerance`` is refused rather than guessed. Without a
        recorded size the values are taken to be in the images' own pixels, and a principal
        point outside the image is refused (the calibration is then for other images).

        Raises:
            ValueError: the aspect ratio changed, or (no size recorded) the principal point
                lies outside ``height x width``.
        """
        if self.size is None:
            if not (0.0 <= self.cx < width and 0.0 <= self.cy < height):
                raise ValueError(
                    f"the camera's principal point (cx={self.cx:g}, cy={self.cy:g}) lies outside "
                    f"the {height}x{width} (HxW) image: the calibration is for images of "
                    "another size; give that size (calib_size) so it can be scaled"
                )
            return self
        h0, w0 = self.size
        if (h0, w0) == (height, width):
            return self
        sx, sy = width / w0, height / h0
        if abs(sx / sy - 1.0) > aspect_tolerance:
            raise ValueError(
                f"the calibration is for {h0}x{w0} (HxW) images but the map is "
                f"{height}x{width}: not a resize (the aspect ratio changed; a crop moves the "
                "principal point); calibrate the images you predict on"
            )
        return self.scaled(sx, sy)

    def intrinsics(
        self, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """``(3, 3)`` matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""
        return torch.tensor(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
            device=device,
            dtype=dtype,
        )

    def depth(
        self, disparity: torch.Tensor, min_disparity: float = 0.1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Metric depth of a ``(B, 1, H, W)`` left disparity map: ``(depth, valid)`` as
        :func:`disparity_to_depth`, with ``doffs`` added to the disparity."""
        if self.baseline is None:
            raise ValueError("Camera.depth: this camera has no baseline (not a stereo rig)")
        return disparity_to_depth(
            disparity, self.fx, self.baseline, min_disparity=min_disparity, doffs=self.doffs
        )


def default_intrinsics(
    height: int,
    width: int,
    focal: Optional[float] = None,
    cx: Optional[float] = None,
    cy: Optional[float] = None,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Pinhole camera matrix ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]``.

    Without calibration a plausible camera is assumed: ``f = 0.8 * width`` pixels (a ~64 degree
    horizontal field of view, typical of small robot cameras) and the principal point at the
    image centre ``((W - 1) / 2, (H - 1) / 2)``.

    Args:
        height: image height ``H`` in pixels.
        width: image width ``W`` in pixels.
        focal: focal length in pixels; default ``0.8 * width``.
        cx: principal point column; default ``(W - 1) / 2``.
        cy: principal point row; default ``(H - 1) / 2``.

    Returns:
        ``(3, 3)`` camera matrix.
    """
    if height < 1 or width < 1:
        raise ValueError(f"default_intrinsics: need height, width >= 1, got {height}x{width}")
    f = 0.8 * width if focal is None else float(focal)
    if f <= 0:
        raise ValueError(f"default_intrinsics: focal must be > 0 pixels, got {f}")
    cx = (width - 1) / 2.0 if cx is None else float(cx)
    cy = (height - 1) / 2.0 if cy is None else float(cy)
    return torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], device=device, dtype=dtype)


def disparity_to_depth(
    disparity: torch.Tensor,
    focal: float,
    baseline: float,
    min_disparity: float = 0.1,
    doffs: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth of a rectified stereo pair: ``depth = focal * baseline / (disparity + doffs)``.

    Args:
        disparity: ``(B, 1, H, W)`` left disparities in pixels.
        focal: focal length in pixels (of the images the disparity was computed on).
        baseline: distance between the cameras; depth comes out in its unit.
        min_disparity: disparities at or below this (pixels) are invalid (depth 0): they are
            at or beyond the range the pair resolves.
        doffs: column offset of the right principal point (``cx_right - cx_left``), pixels.

    Returns:
        ``(depth, valid)``: ``(B, 1, H, W)`` depth (0 where invalid) and bool validity.
    """
    if not isinstance(disparity, torch.Tensor):
        raise TypeError(
            f"disparity_to_depth: disparity must be a torch.Tensor, got {type(disparity).__name__}"
        )
    if disparity.ndim != 4 or disparity.shape[1] != 1:
        raise ValueError(
            f"disparity_to_depth: disparity must have shape (B, 1, H, W), got "
            f"{tuple(disparity.shape)}"
        )
    if focal <= 0 or baseline <= 0:
        raise ValueError(
            f"disparity_to_depth: focal and baseline must be > 0, got {focal} and {baseline}"
        )
    valid = torch.isfinite(disparity) & (disparity > min_disparity)
    valid = valid & (disparity + doffs > 0)
    safe = torch.where(valid, disparity + doffs, torch.ones_like(disparity))
    depth = torch.where(valid, focal * baseline / safe, torch.zeros_like(disparity))
    return depth, valid


def backproject(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Camera-frame 3D point of every pixel: ``((u - cx) z / fx, (v - cy) z / fy, z)``.

    ``u`` is the column and ``v`` the row; x points right, y down, z forward (OpenCV
    convention). Thin wrapper of :func:`kornia.geometry.depth.depth_to_3d_v2` with shape checks.

    Args:
        depth: ``(B, 1, H, W)`` depth ``z``.
        intrinsics: ``(3, 3)`` or ``(B, 3, 3)`` camera matrices.

    Returns:
        ``(B, H, W, 3)`` points, in the unit of ``depth``.

    Example:
        >>> K = default_intrinsics(2, 4)
        >>> backproject(torch.ones(1, 1, 2, 4), K).shape
        torch.Size([1, 2, 4, 3])
    """
    if not isinstance(depth, torch.Tensor) or not isinstance(intrinsics, torch.Tensor):
        raise TypeError("backproject: depth and intrinsics must be torch.Tensors")
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(
            f"backproject: depth must have shape (B, 1, H, W), got {tuple(depth.shape)}"
        )
    b = depth.shape[0]
    if intrinsics.shape == (3, 3):
        intrinsics = intrinsics.expand(b, 3, 3)
    if intrinsics.shape != (b, 3, 3):
        raise ValueError(
            f"backproject: intrinsics must have shape (3, 3) or (B, 3, 3) = ({b}, 3, 3), got "
            f"{tuple(intrinsics.shape)}"
        )
    return depth_to_3d_v2(depth[:, 0], intrinsics.to(depth))
