"""Networks: plain ``nn.Module``s that know nothing of Lightning."""

from lightning_depth.models.anynet import AnyNet
from lightning_depth.models.autoencoder import DepthAutoencoder
from lightning_depth.models.padding import InputPadder

__all__ = ["AnyNet", "DepthAutoencoder", "InputPadder"]
