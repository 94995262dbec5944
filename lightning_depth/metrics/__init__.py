"""Epoch metrics (torchmetrics), exact under DDP."""

from lightning_depth.metrics.benchmark import (
    BENCHMARK_METRICS,
    NONOCCLUDED_KEY,
    benchmark_metric,
)
from lightning_depth.metrics.depth import DepthMetrics, depth_metrics_per_sample
from lightning_depth.metrics.stereo import (
    BadPixelRate,
    EndPointError,
    ThreePixelError,
    bad_pixel_rate_per_sample,
    end_point_error_per_sample,
    three_pixel_error_per_sample,
)

__all__ = [
    "BENCHMARK_METRICS",
    "NONOCCLUDED_KEY",
    "BadPixelRate",
    "DepthMetrics",
    "EndPointError",
    "ThreePixelError",
    "bad_pixel_rate_per_sample",
    "benchmark_metric",
    "depth_metrics_per_sample",
    "end_point_error_per_sample",
    "three_pixel_error_per_sample",
]
