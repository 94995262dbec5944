"""Depth smoothness terms: the keras-io example's (faithful) and kornia's edge-aware one.

Masks: a difference between two neighbouring pixels counts only when both are valid, and each
mean is taken over the counted differences (so a mask never lets an invalid target value or
an unsupervised prediction into the loss).
"""

from __future__ import annotations

from typing import Optional

import kornia
import torch
import torch.nn.functional as F
from torch import nn

# one mask check for every loss term: (B, 1 or C, H, W), returned as bool
from lightning_depth.losses.ssim import check_mask

__all__ = [
    "DepthSmoothnessLoss",
    "depth_smoothness_edge_aware",
    "depth_smoothness_faithful",
    "image_gradients",
]


def _check_4d(x: torch.Tensor, arg: str, name: str, channels: Optional[int] = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(x).__name__}")
    expected = f"(B, {channels}, H, W)" if channels else "(B, C, H, W)"
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        raise ValueError(f"{name}: {arg} must have shape {expected}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: {arg} must be a floating point tensor, got {x.dtype}")


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences as ``tf.image.image_gradients`` (channels first).

    ``dy[..., i, j] = x[..., i + 1, j] - x[..., i, j]`` and
    ``dx[..., i, j] = x[..., i, j + 1] - x[..., i, j]``, zero in the last row (dy) and the last
    column (dx), so both keep the input's shape.

    Args:
        x: ``(B, C, H, W)``.

    Returns:
        ``(dy, dx)``, each ``(B, C, H, W)``.

    Example:
        >>> x = torch.arange(6.0).reshape(1, 1, 2, 3)
        >>> image_gradients(x)[1]
        tensor([[[[1., 1., 0.],
                  [1., 1., 0.]]]])
    """
    _check_4d(x, "x", "image_gradients")
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    return dy, dx


def _pair_validity(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validity of the padded forward differences: both pixels valid, padding invalid."""
    vy = F.pad(mask[..., 1:, :] & mask[..., :-1, :], (0, 0, 0, 1))
    vx = F.pad(mask[..., :, 1:] & mask[..., :, :-1], (0, 1, 0, 0))
    return vy, vx


def _mean_over(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    valid = valid.expand_as(values).to(values.dtype)
    # clamp: an empty mask gives 0 with zero gradient instead of 0/0.
    return (values * valid).sum() / valid.sum().clamp(min=1.0)


def depth_smoothness_faithful(
    pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """The keras-io example's "edge" term.

    ``mean(|dx_pred * exp(mean|dx_target|)|) + mean(|dy_pred * exp(mean|dy_target|)|)``
    with :func:`image_gradients` and every mean over the whole batch. Quirk kept on purpose:
    the weights are two *scalars* for the batch (larger when the targets are rougher), not
    per-pixel edge weights, so this is a plain gradient penalty on the prediction.

    Args:
        pred: ``(B, C, H, W)`` prediction.
        target: ``(B, C, H, W)`` target.
        mask: optional ``(B, 1 or C, H, W)`` validity; then every mean is over differences
            between two valid pixels (the zero padding of the last row/column is left out,
            so an all-valid mask divides by ``H (W - 1)`` where the unmasked term divides by
            ``H W``).

    Returns:
        scalar.
    """
    _check_4d(pred, "pred", "depth_smoothness_faithful")
    _check_4d(target, "target", "depth_smoothness_faithful")
    if pred.shape != target.shape:
        raise ValueError(
            f"depth_smoothness_faithful: pred and target must have the same shape (B, C, H, W), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    dy_true, dx_true = image_gradients(target)
    dy_pred, dx_pred = image_gradients(pred)
    if mask is None:
        weights_x = torch.exp(dx_true.abs().mean())
        weights_y = torch.exp(dy_true.abs().mean())
        return (dx_pred * weights_x).abs().mean() + (dy_pred * weights_y).abs().mean()
    vy, vx = _pair_validity(check_mask(mask, pred, "depth_smoothness_faithful"))
    weights_x = torch.exp(_mean_over(dx_true.abs(), vx))
    weights_y = torch.exp(_mean_over(dy_true.abs(), vy))
    return _mean_over((dx_pred * weights_x).abs(), vx) + _mean_over((dy_pred * weights_y).abs(), vy)


def depth_smoothness_edge_aware(
    pred: torch.Tensor, image: torch.Tensor, mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Image-guided (edge-aware) smoothness, ``kornia.losses.inverse_depth_smoothness_loss``.

    ``mean(|dx_pred| exp(-mean_c |dx_image|)) + mean(|dy_pred| exp(-mean_c |dy_image|))``:
    gradients of the prediction are penalised except across image edges. Applied to the
    prediction as it is (log-depth here).

    Args:
        pred: ``(B, 1, H, W)`` prediction.
        image: ``(B, C, H, W)`` input image in [0, 1] (its scale sets the edge weights).
        mask: optional ``(B, 1, H, W)`` validity; then each mean is over differences between
            two valid pixels. Done by hand because kornia's function takes no mask; with an
            all-valid mask it equals kornia's value.

    Returns:
        scalar.
    """
    _check_4d(pred, "pred", "depth_smoothness_edge_aware", channels=1)
    _check_4d(image, "image", "depth_smoothness_edge_aware")
    if image.shape[0] != pred.shape[0] or image.shape[-2:] != pred.shape[-2:]:
        raise ValueError(
            f"depth_smoothness_edge_aware: image must have shape ({pred.shape[0]}, C, "
            f"{pred.shape[2]}, {pred.shape[3]}) like pred, got {tuple(image.shape)}"
        )
    # Under autocast the prediction may be half precision while the image is float32.
    image = image.to(pred.dtype)
    if mask is None:
        return kornia.losses.inverse_depth_smoothness_loss(pred, image)
    mask = check_mask(mask, pred, "depth_smoothness_edge_aware")
    pred_dx = pred[..., :, :-1] - pred[..., :, 1:]
    pred_dy = pred[..., :-1, :] - pred[..., 1:, :]
    weights_x = torch.exp(-(image[..., :, :-1] - image[..., :, 1:]).abs().mean(dim=1, keepdim=True))
    weights_y = torch.exp(-(image[..., :-1, :] - image[..., 1:, :]).abs().mean(dim=1, keepdim=True))
    vx = mask[..., :, :-1] & mask[..., :, 1:]
    vy = mask[..., :-1, :] & mask[..., 1:, :]
    return _mean_over((pred_dx * weights_x).abs(), vx) + _mean_over((pred_dy * weights_y).abs(), vy)


class DepthSmoothnessLoss(nn.Module):
    """Module form of the smoothness terms.

    Args:
        mode: ``"faithful"`` (:func:`depth_smoothness_faithful`, guided by the target) or
            ``"edge_aware"`` (:func:`depth_smoothness_edge_aware`, guided by the image).
    """

    def __init__(self, mode: str = "faithful") -> None:
        super().__init__()
        if mode not in ("faithful", "edge_aware"):
            raise ValueError(f"mode must be 'faithful' or 'edge_aware', got {mode!r}")
        self.mode = mode

    def forward(
        self,
        pred: torch.Tensor,
        target: Optional[torch.Tensor] = None,
        mask: Optional[torch.Tensor] = None,
        image: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Args: pred ``(B, 1, H, W)``; target (faithful) ``(B, 1, H, W)``; mask optional
        ``(B, 1, H, W)``; image (edge_aware) ``(B, C, H, W)``. Returns a scalar."""
        if self.mode == "faithful":
            if target is None:
                raise ValueError("DepthSmoothnessLoss(mode='faithful') needs target (B, 1, H, W)")
            return depth_smoothness_faithful(pred, target, mask)
        if image is None:
            raise ValueError("DepthSmoothnessLoss(mode='edge_aware') needs image (B, C, H, W)")
        return depth_smoothness_edge_aware(pred, image, mask)
