"""Networks: plain ``nn.Module``s that know nothing of Lightning."""

from lightning_depth.models.anynet import AnyNet
from lightning_depth.models.autoencoder import (
    DepthAutoencoder,
    KerasBatchNorm2d,
    count_parameters,
    optimize_for_cpu,
)
from lightning_depth.models.padding import InputPadder

__all__ = [
    "AnyNet",
    "DepthAutoencoder",
    "InputPadder",
    "KerasBatchNorm2d",
    "count_parameters",
    "optimize_for_cpu",
]
