"""AnyNet's cost volumes: L1 feature distances over disparities.

- :func:`full_cost_volume` (stage 1): every disparity ``0 .. D-1`` at the coarsest scale.
- :func:`residual_cost_volume` (stages 2 and 3): disparities ``disp - s`` for the residuals
  ``s = -(m-1) .. m-1`` around the previous stage's (upsampled) estimate, the right features
  being warped by bilinear sampling (:func:`warp_right_to_left`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["full_cost_volume", "residual_cost_volume", "warp_right_to_left"]


def _check_features(feat_l: torch.Tensor, feat_r: torch.Tensor, name: str) -> None:
    for arg, t in (("feat_l", feat_l), ("feat_r", feat_r)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(f"{name}: {arg} must have shape (B, C, H, W), got {tuple(t.shape)}")
    if feat_l.shape != feat_r.shape:
        raise ValueError(
            f"{name}: feat_l and feat_r must have the same shape (B, C, H, W), got "
            f"{tuple(feat_l.shape)} and {tuple(feat_r.shape)}"
        )


def full_cost_volume(feat_l: torch.Tensor, feat_r: torch.Tensor, max_disp: int) -> torch.Tensor:
    """L1 cost volume over the disparities ``0 .. max_disp - 1``.

    ``cost[b, d, y, x] = sum_c |feat_l[b, c, y, x] - feat_r[b, c, y, x - d]|``, where right
    features left of the image count as 0 (so the first ``d`` columns hold ``sum_c |feat_l|``,
    as in the original ``_build_volume_2d``).

    Args:
        feat_l: ``(B, C, H, W)`` left features.
        feat_r: ``(B, C, H, W)`` right features.
        max_disp: number of disparities ``D`` (>= 1).

    Returns:
        ``(B, D, H, W)`` costs.
    """
    _check_features(feat_l, feat_r, "full_cost_volume")
    if int(max_disp) != max_disp or max_disp < 1:
        raise ValueError(f"full_cost_volume: max_disp must be a positive integer, got {max_disp}")
    w = feat_l.shape[-1]
    # Right features shifted right by d with zeros coming in: the slices of one padded copy.
    # (Pure ops, no in-place slice writes: the same graph in eager and in ONNX export.)
    padded = F.pad(feat_r, (max_disp - 1, 0))
    start = max_disp - 1
    return torch.stack(
        [(feat_l - padded[..., start - d : start - d + w]).abs().sum(1) for d in range(max_disp)],
        dim=1,
    )


def _sampling_grid(disp: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` grid at ``(x - (disp - s), y)`` for each shift, stacked along rows.

    Args:
        disp: ``(B, 1, H, W)`` disparities.
        shifts: ``(K,)`` residual shifts.

    Returns:
        ``(B, K * H, W, 2)`` grid for ``align_corners=True``.
    """
    b, _, h, w = disp.shape
    k = shifts.numel()
    xx = torch.arange(w, device=disp.device, dtype=disp.dtype).view(1, 1, 1, w)
    yy = torch.arange(h, device=disp.device, dtype=disp.dtype).view(1, 1, h, 1)
    # Same operation order as the original (x - (disp - s), then 2 x / (W - 1) - 1) so the
    # sampling positions round the same way.
    gx = xx - (disp - shifts.view(1, k, 1, 1))
    gx = 2.0 * gx / max(w - 1, 1) - 1.0
    gy = (2.0 * yy / max(h - 1, 1) - 1.0).expand(b, k, h, w)
    return torch.stack((gx, gy), dim=-1).view(b, k * h, w, 2)


def warp_right_to_left(feat_r: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """Warp right features to the left view: ``out[..., y, x] = feat_r[..., y, x - disp]``.

    Bilinear sampling with zeros outside the image. Coordinates are normalised as
    ``2 x / (W - 1) - 1`` and sampled with ``align_corners=True``: the original ``warp``
    used that normalisation with the PyTorch (< 1.3) ``grid_sample``, whose only behaviour
    was ``align_corners=True``, so integer disparities sample pixel centres exactly.

    Args:
        feat_r: ``(B, C, H, W)`` right features.
        disp: ``(B, 1, H, W)`` left disparities in pixels of this resolution.

    Returns:
        ``(B, C, H, W)`` warped features.
    """
    if feat_r.ndim != 4 or disp.ndim != 4 or disp.shape[1] != 1:
        raise ValueError(
            "warp_right_to_left: feat_r must be (B, C, H, W) and disp (B, 1, H, W), got "
            f"{tuple(feat_r.shape)} and {tuple(disp.shape)}"
        )
    if disp.shape[0] != feat_r.shape[0] or disp.shape[-2:] != feat_r.shape[-2:]:
        raise ValueError(
            f"warp_right_to_left: disp must be (B, 1, H, W) = ({feat_r.shape[0]}, 1, "
            f"{feat_r.shape[2]}, {feat_r.shape[3]}) like feat_r, got {tuple(disp.shape)}"
        )
    grid = _sampling_grid(disp, disp.new_zeros(1))
    return F.grid_sample(feat_r, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def residual_cost_volume(
    feat_l: torch.Tensor, feat_r: torch.Tensor, disp: torch.Tensor, max_residual: int
) -> torch.Tensor:
    """L1 cost volume around a disparity estimate (the original ``_build_volume_2d3``).

    With ``m = max_residual`` and the shifts ``s_k = k - (m - 1)`` for ``k = 0 .. 2m-2``::

        cost[b, k, y, x] = sum_c |feat_l[b, c, y, x] - warp(feat_r, disp - s_k)[b, c, y, x]|

    i.e. channel ``k`` holds the cost of disparity ``disp - s_k``. (AnyNet's regression then
    weighs channel ``k`` with ``+s_k``; the network learns that sign convention and the released
    weights depend on it, so it is kept.)

    All shifts are sampled by one ``grid_sample`` over a grid stacked along the rows, so the
    features are never repeated ``2m - 1`` times (the original repeats both feature maps).

    Args:
        feat_l: ``(B, C, H, W)`` left features.
        feat_r: ``(B, C, H, W)`` right features.
        disp: ``(B, 1, H, W)`` current disparity estimate at this resolution.
        max_residual: ``m`` (>= 1); the volume has ``2m - 1`` channels.

    Returns:
        ``(B, 2m - 1, H, W)`` costs.
    """
    _check_features(feat_l, feat_r, "residual_cost_volume")
    b, c, h, w = feat_l.shape
    if not isinstance(disp, torch.Tensor) or disp.shape != (b, 1, h, w):
        got = tuple(disp.shape) if isinstance(disp, torch.Tensor) else type(disp).__name__
        raise ValueError(
            f"residual_cost_volume: disp must have shape (B, 1, H, W) = {(b, 1, h, w)}, got {got}"
        )
    if int(max_residual) != max_residual or max_residual < 1:
        raise ValueError(
            f"residual_cost_volume: max_residual must be a positive integer, got {max_residual}"
        )
    m = int(max_residual)
    shifts = torch.arange(-m + 1, m, device=disp.device, dtype=disp.dtype)
    grid = _sampling_grid(disp, shifts)
    warped = F.grid_sample(feat_r, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    warped = warped.view(b, c, 2 * m - 1, h, w)
    return (feat_l.unsqueeze(2) - warped).abs().sum(1)
