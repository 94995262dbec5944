"""The value encodings shared by training, predict, export and pictures, each defined once.

- Images: ``uint8`` RGB -> float32 in [0, 1] by :func:`to_unit` (``x * float32(1/255)``, as
  ``tf.image.convert_image_dtype``, which the monocular reference uses; it differs from
  ``x / 255`` in the last bit for some values). Stereo networks then take ImageNet-normalised
  images (:func:`normalize` / :func:`denormalize`, mean :data:`IMAGENET_MEAN`, std
  :data:`IMAGENET_STD`), as the original AnyNet.
- Depth: the monocular targets are log-depth of metres clipped to
  ``[MIN_DEPTH, MAX_DEPTH] = [0.1, 300]`` m, so they lie in ``[0.1, LOG_DEPTH_RANGE]`` with
  ``LOG_DEPTH_RANGE = log(300) ~ 5.7038`` (the data range of SSIM on log-depth).
  :func:`decode_log_depth` turns a prediction back into metres.

Every module that scales, normalises or decodes imports these; a second copy is how a swapped
mean/std once passed every fast test.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import kornia
import numpy as np
import torch

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOG_DEPTH_RANGE",
    "MAX_DEPTH",
    "MIN_DEPTH",
    "decode_log_depth",
    "denormalize",
    "normalize",
    "to_unit",
]

#: ImageNet channel statistics (RGB) of the stereo networks' input normalisation.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Depth clipping bounds of the monocular targets, in metres.
MIN_DEPTH: float = 0.1
MAX_DEPTH: float = 300.0
#: The largest log-depth target, ``log(MAX_DEPTH)``: SSIM's data range on log-depth.
LOG_DEPTH_RANGE: float = math.log(MAX_DEPTH)

_UNIT = np.float32(1 / 255)


def to_unit(image: Union[np.ndarray, torch.Tensor]) -> Union[np.ndarray, torch.Tensor]:
    """``uint8`` image (any shape) -> float32 in [0, 1], as ``x * float32(1/255)``.

    Args:
        image: numpy array or tensor of dtype ``uint8`` (e.g. ``(H, W, 3)``).

    Returns:
        the same kind of array, float32, same shape.

    Raises:
        TypeError: the image is not ``uint8`` (a float image is already scaled, or in another
            range: scaling it again would be silently wrong).
    """
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8:
            raise TypeError(f"to_unit expects a uint8 image, got a {image.dtype} tensor")
        return image.to(torch.float32) * torch.tensor(float(_UNIT), dtype=torch.float32)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"to_unit expects a uint8 image, got a {image.dtype} array")
    return image.astype(np.float32) * _UNIT


def _stats(x: torch.Tensor, values: Sequence[float]) -> torch.Tensor:
    return torch.tensor(values, device=x.device, dtype=x.dtype)


def _check_channels(images: torch.Tensor, name: str) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} expects a tensor, got {type(images).__name__}")
    if images.ndim < 3 or images.shape[-3] != 3:
        raise ValueError(f"{name} expects RGB images (..., 3, H, W), got {tuple(images.shape)}")


def normalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalise RGB images in [0, 1]: ``(x - mean) / std`` per channel.

    Args:
        images: ``(3, H, W)`` or ``(B, 3, H, W)`` float.

    Returns:
        the normalised images, same shape and dtype.
    """
    _check_channels(images, "normalize")
    if images.ndim == 3:
        return normalize(images[None])[0]
    return kornia.enhance.normalize(
        images, _stats(images, IMAGENET_MEAN), _stats(images, IMAGENET_STD)
    )


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: ``x * std + mean`` per channel, back to [0, 1].

    Args:
        images: ``(3, H, W)`` or ``(B, 3, H, W)`` float, ImageNet-normalised.

    Returns:
        the images in [0, 1] (not clipped), same shape and dtype.
    """
    _check_channels(images, "denormalize")
    if images.ndim == 3:
        return denormalize(images[None])[0]
    return kornia.enhance.denormalize(
        images, _stats(images, IMAGENET_MEAN), _stats(images, IMAGENET_STD)
    )


def decode_log_depth(log_depth: torch.Tensor) -> torch.Tensor:
    """Metric depth (metres) of a log-depth map: ``exp(log_depth)``."""
    return torch.exp(log_depth)
