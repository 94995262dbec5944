"""Losses as checked pure functions with thin ``nn.Module`` wrappers."""

from lightning_depth.losses.mono import MonoDepthLoss, mono_depth_loss
from lightning_depth.losses.smoothness import (
    DepthSmoothnessLoss,
    depth_smoothness_edge_aware,
    depth_smoothness_faithful,
    image_gradients,
)
from lightning_depth.losses.ssim import SSIMLossTF, ssim_tf
from lightning_depth.losses.stereo import MultiStageSmoothL1, multi_stage_smooth_l1

__all__ = [
    "DepthSmoothnessLoss",
    "MonoDepthLoss",
    "MultiStageSmoothL1",
    "SSIMLossTF",
    "depth_smoothness_edge_aware",
    "depth_smoothness_faithful",
    "image_gradients",
    "mono_depth_loss",
    "multi_stage_smooth_l1",
    "ssim_tf",
]
