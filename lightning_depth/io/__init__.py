"""Readers and writers for the on-disk formats: PNG/npy, PFM, KITTI 16-bit disparity PNG."""

from lightning_depth.io.errors import DataError
from lightning_depth.io.images import read_npy, read_rgb
from lightning_depth.io.kitti import read_kitti_disparity, write_kitti_disparity
from lightning_depth.io.pfm import read_pfm, write_pfm

__all__ = [
    "DataError",
    "read_kitti_disparity",
    "read_npy",
    "read_pfm",
    "read_rgb",
    "write_kitti_disparity",
    "write_pfm",
]
