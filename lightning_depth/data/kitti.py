"""KITTI 2012 and 2015 stereo (real driving scenes): the layout and DataModule.

Layouts (the benchmarks' ``training/`` folders; the ``*_10.png`` frames are the ones with
ground truth)::

    KITTI 2012                              KITTI 2015
    <root>/colored_0/NNNNNN_10.png          <root>/image_2/NNNNNN_10.png       left, RGB
    <root>/colored_1/NNNNNN_10.png          <root>/image_3/NNNNNN_10.png       right
    <root>/disp_occ/NNNNNN_10.png           <root>/disp_occ_0/NNNNNN_10.png    all pixels
    <root>/disp_noc/NNNNNN_10.png           <root>/disp_noc_0/NNNNNN_10.png    non-occluded
    <root>/calib/NNNNNN.txt                 <root>/calib_cam_to_cam/NNNNNN.txt

Disparities are 16-bit PNGs holding ``round(256 * d)``, 0 where unknown
(:func:`~lightning_depth.io.kitti.read_kitti_disparity`); calibrations are read with
:func:`~lightning_depth.io.calib.read_kitti_calib` (``P2``/``P3`` or ``P_rect_02``/``P_rect_03``).
A root may hold either layout. Batches hold the all-pixel disparity and the non-occlusion mask
(``disp_noc > 0``), so ``lightning_depth test`` reports KITTI's D1-all over all pixels and over
the non-occluded ones (``test/d1_all``, ``test/d1_noc``; see
:mod:`lightning_depth.metrics.benchmark`).
"""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Sequence, Union

import numpy as np

from lightning_depth.data.check import probe_rgb
from lightning_depth.data.layout import Layout, Sample
from lightning_depth.data.middlebury import StereoBenchmarkDataModule
from lightning_depth.data.transforms import format_size
from lightning_depth.io.calib import read_kitti_calib
from lightning_depth.io.errors import DataError
from lightning_depth.io.images import read_rgb
from lightning_depth.io.kitti import read_kitti_disparity
from lightning_depth.metrics.benchmark import NONOCCLUDED_KEY

__all__ = ["KITTI_METRICS", "KITTI_VERSIONS", "KittiDataModule", "KittiError", "KittiLayout"]

PathLike = Union[str, os.PathLike]

#: folder names per version: left, right, all-pixel and non-occluded disparity, calibration
KITTI_VERSIONS = {
    "2012": ("colored_0", "colored_1", "disp_occ", "disp_noc", "calib"),
    "2015": ("image_2", "image_3", "disp_occ_0", "disp_noc_0", "calib_cam_to_cam"),
}
#: what ``lightning_depth test`` reports on KITTI
KITTI_METRICS = ("d1_all", "d1_noc")
FRAME = "_10"


class KittiError(DataError):
    """KITTI data on disk is missing, inconsistent or unreadable."""


def _layout_text(versions: Sequence[str]) -> str:
    return " or ".join(
        f"KITTI {v}: <root>/{{{left},{right}}}/NNNNNN{FRAME}.png, <root>/{{{occ},{noc}}}/"
        f"NNNNNN{FRAME}.png, <root>/{calib}/NNNNNN.txt"
        for v in versions
        for left, right, occ, noc, calib in [KITTI_VERSIONS[v]]
    )


class KittiLayout(Layout):
    """KITTI 2012/2015's layouts (see the module docstring); a sample is ``(left, right,
    disp_occ, disp_noc, calib)``.

    Args:
        version: ``"2012"``, ``"2015"`` or ``"any"`` (either, told apart by the folders).
    """

    name = "KITTI"
    files = (
        "left image",
        "right image",
        "disparity (all pixels)",
        "disparity (non-occluded)",
        "calibration",
    )
    empty = f"KITTI left images (*{FRAME}.png)"

    def __init__(self, version: str = "any") -> None:
        if version not in (*KITTI_VERSIONS, "any"):
            raise ValueError(
                f"KITTI version must be one of {(*KITTI_VERSIONS, 'any')}, got {version!r}"
            )
        self.version = version
        self.versions = tuple(KITTI_VERSIONS) if version == "any" else (version,)
        self.description = _layout_text(self.versions)

    def patterns(self) -> list[str]:
        return [f"{KITTI_VERSIONS[v][0]}/*{FRAME}.png" for v in self.versions]

    def companions(self, left: PurePath) -> tuple[PurePath, ...]:
        folders = next(f for f in KITTI_VERSIONS.values() if f[0] == left.parent.name)
        root = left.parent.parent
        _, right, occ, noc, calib = folders
        frame = left.name
        return (
            root / right / frame,
            root / occ / frame,
            root / noc / frame,
            root / calib / f"{left.stem[: -len(FRAME)]}.txt",
        )

    def _disparities(
        self, occ_path: PathLike, noc_path: PathLike, size: Sequence[int], left_path: PathLike
    ) -> tuple[np.ndarray, np.ndarray]:
        occ, occ_valid = read_kitti_disparity(occ_path)
        noc, noc_valid = read_kitti_disparity(noc_path)
        for path, disparity in ((occ_path, occ), (noc_path, noc)):
            if disparity.shape != tuple(size):
                raise KittiError(
                    f"disparity {path} is {format_size(disparity.shape)} but left image "
                    f"{left_path} is {format_size(size)} (HxW)"
                )
        extra = noc_valid & ~occ_valid
        if extra.any():
            raise KittiError(
                f"non-occluded disparity {noc_path} has {int(extra.sum())} pixels with ground "
                f"truth where the all-pixel disparity {occ_path} has none (the non-occluded "
                "pixels are a subset of all pixels: are the folders swapped?)"
            )
        return occ, noc_valid

    def read(self, paths: Sequence[PathLike]) -> dict[str, np.ndarray]:
        """``left``, ``right`` uint8 (H, W, 3), ``disparity`` float32 (H, W) (all pixels, 0
        where unknown) and ``nonoccluded`` uint8 (H, W) (1 where the non-occluded ground
        truth has a value), checked.

        Raises:
            DataError: unreadable files, sizes that disagree, or a calibration that is not
                KITTI's (naming the files).
        """
        left_path, right_path, occ_path, noc_path, calib_path = paths
        left, right = read_rgb(left_path), read_rgb(right_path)
        size = left.shape[:2]
        if right.shape[:2] != size:
            raise KittiError(
                f"left image {left_path} is {format_size(size)} but right image {right_path} "
                f"is {format_size(right.shape[:2])} (HxW)"
            )
        disparity, nonoccluded = self._disparities(occ_path, noc_path, size, left_path)
        read_kitti_calib(calib_path)
        return {
            "left": left,
            "right": right,
            "disparity": disparity,
            NONOCCLUDED_KEY: nonoccluded.astype(np.uint8),
        }

    def check(self, paths: Sequence[PathLike]) -> None:
        """What :meth:`read` checks, the images' headers and checksums verified instead of
        decoding them."""
        left_path, right_path, occ_path, noc_path, calib_path = paths
        size = probe_rgb(left_path)
        right = probe_rgb(right_path)
        if right != size:
            raise KittiError(
                f"left image {left_path} is {format_size(size)} but right image {right_path} "
                f"is {format_size(right)} (HxW)"
            )
        self._disparities(occ_path, noc_path, size, left_path)
        read_kitti_calib(calib_path)

    def name_of(self, sample: Sample) -> str:
        """``NNNNNN_10``."""
        return sample[0].stem


class KittiDataModule(StereoBenchmarkDataModule):
    """KITTI 2012 or 2015 stereo (see the module docstring and
    :class:`~lightning_depth.data.middlebury.StereoBenchmarkDataModule`): by default every
    frame is evaluated (the benchmark's training set as a zero-shot test).

    ``lightning_depth test`` reports KITTI's D1-all (``|d - gt| > 3`` px and ``> 5 %``,
    pooled over all pixels of all frames) over all pixels with ground truth
    (``test/d1_all``) and over the non-occluded ones (``test/d1_noc``).

    Args:
        root: KITTI's ``training/`` folder (2012 or 2015); only read.
        version: ``"2012"``, ``"2015"`` or ``"any"`` (whichever layout the root holds).
        **kwargs: as :class:`~lightning_depth.data.middlebury.StereoBenchmarkDataModule`.
    """

    declared_metrics = KITTI_METRICS

    def __init__(self, root: str, version: str = "any", **kwargs) -> None:
        self.version = version
        super().__init__(root, **kwargs)

    def make_layout(self) -> KittiLayout:
        return KittiLayout(self.version)
