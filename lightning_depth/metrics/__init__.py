"""Epoch metrics (torchmetrics), exact under DDP."""

from lightning_depth.metrics.depth import DepthMetrics, depth_metrics_per_sample

__all__ = ["DepthMetrics", "depth_metrics_per_sample"]
