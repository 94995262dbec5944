"""Multi-stage smooth-L1 disparity loss (AnyNet's training loss).

The original trains every stage against the ground truth with ``F.smooth_l1_loss`` averaged
over the valid pixels of the batch, and sums the stages with weights ``(0.25, 0.5, 1, 1)``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiStageSmoothL1", "multi_stage_smooth_l1"]


def multi_stage_smooth_l1(
    preds: Sequence[torch.Tensor],
    gt: torch.Tensor,
    weights: Sequence[float] = (0.25, 0.5, 1.0, 1.0),
    maxdisp: float = 192,
    beta: float = 1.0,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Weighted sum of per-stage smooth-L1 losses on the valid pixels ``0 < gt < maxdisp``.

    ``loss_k = mean over valid pixels of smooth_l1(pred_k - gt; beta)`` (pixels of the whole
    batch pooled, as ``F.smooth_l1_loss(pred[mask], gt[mask])`` in the original) and
    ``total = sum_k weights[k] * loss_k``.

    A batch without a valid pixel gives ``total = 0`` and zero per-stage losses that are still
    connected to the predictions (zero gradients, no NaN), so the step is a no-op.

    Args:
        preds: one ``(B, 1, H, W)`` disparity per stage.
        gt: ``(B, 1, H, W)`` ground-truth disparity (0 or >= ``maxdisp`` where unknown).
        weights: per-stage weights; at least ``len(preds)`` entries (extra ones are ignored).
        maxdisp: ground truth at or above this is ignored.
        beta: smooth-L1 transition point (``F.smooth_l1_loss``'s ``beta``).

    Returns:
        ``(total, per_stage)``: the weighted scalar sum and the list of unweighted scalar
        stage losses.
    """
    if not isinstance(gt, torch.Tensor):
        raise TypeError(
            f"multi_stage_smooth_l1: gt must be a torch.Tensor, got {type(gt).__name__}"
        )
    if gt.ndim != 4 or gt.shape[1] != 1:
        raise ValueError(
            f"multi_stage_smooth_l1: gt must have shape (B, 1, H, W), got {tuple(gt.shape)}"
        )
    if isinstance(preds, torch.Tensor) or len(preds) == 0:
        raise TypeError(
            "multi_stage_smooth_l1: preds must be a non-empty list of (B, 1, H, W) tensors, one per stage"
        )
    for k, pred in enumerate(preds):
        if not isinstance(pred, torch.Tensor):
            raise TypeError(
                f"multi_stage_smooth_l1: preds[{k}] must be a torch.Tensor, got {type(pred).__name__}"
            )
        if pred.shape != gt.shape:
            raise ValueError(
                f"multi_stage_smooth_l1: preds[{k}] must have the shape of gt (B, 1, H, W) = "
                f"{tuple(gt.shape)}, got {tuple(pred.shape)}"
            )
    if len(weights) < len(preds):
        raise ValueError(
            f"multi_stage_smooth_l1: {len(preds)} stages but only {len(weights)} weights {tuple(weights)}"
        )
    if maxdisp <= 0:
        raise ValueError(f"multi_stage_smooth_l1: maxdisp must be > 0, got {maxdisp}")
    if beta < 0:
        raise ValueError(f"multi_stage_smooth_l1: beta must be >= 0, got {beta}")

    mask = (gt > 0) & (gt < maxdisp)
    valid = mask.to(preds[0].dtype)
    # Masked sums instead of pred[mask]: no host sync on GPU, and an empty mask gives 0 / 1 = 0
    # still connected to the graph. Unknown ground truth (0, inf, NaN) is replaced before the
    # loss so that 0 * inf never produces a NaN.
    target = torch.where(mask, gt, torch.zeros_like(gt))
    count = valid.sum().clamp(min=1)
    per_stage = [
        (F.smooth_l1_loss(pred, target, reduction="none", beta=beta) * valid).sum() / count
        for pred in preds
    ]
    total = sum(w * loss for w, loss in zip(weights, per_stage))
    return total, per_stage


class MultiStageSmoothL1(nn.Module):
    """Module form of :func:`multi_stage_smooth_l1`; returns ``(total, per_stage)``.

    Args:
        weights: per-stage weights.
        maxdisp: ground truth at or above this is ignored.
        beta: smooth-L1 transition point.
    """

    def __init__(
        self,
        weights: Sequence[float] = (0.25, 0.5, 1.0, 1.0),
        maxdisp: float = 192,
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        self.weights = tuple(float(w) for w in weights)
        self.maxdisp = maxdisp
        self.beta = beta

    def forward(
        self,
        preds: Sequence[torch.Tensor],
        gt: torch.Tensor,
        weights: Optional[Sequence[float]] = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``weights`` replaces the module's for this call (e.g. a stage switched off while
        it waits for its start epoch)."""
        weights = self.weights if weights is None else weights
        return multi_stage_smooth_l1(preds, gt, weights, self.maxdisp, self.beta)
