"""Epoch metrics (torchmetrics), exact under DDP."""

from lightning_depth.metrics.depth import DepthMetrics, depth_metrics_per_sample
from lightning_depth.metrics.stereo import (
    EndPointError,
    ThreePixelError,
    end_point_error_per_sample,
    three_pixel_error_per_sample,
)

__all__ = [
    "DepthMetrics",
    "EndPointError",
    "ThreePixelError",
    "depth_metrics_per_sample",
    "end_point_error_per_sample",
    "three_pixel_error_per_sample",
]
