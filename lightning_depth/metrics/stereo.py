"""Stereo disparity metrics: three-pixel error (KITTI's D1 outlier rate) and end-point error.

A pixel is valid where ``0 < gt < maxdisp``; samples without a valid pixel are skipped.

Epoch values are the mean of per-sample values: each image weighs the same whatever its number
of valid pixels and whatever the batch size. (The original AnyNet averages per-batch values,
which depends on the batch size; with batch size 1 the two agree.) Pooling all pixels instead
would let dense images dominate sparse ones. The per-sample values are kept for distribution
plots (:meth:`ThreePixelError.per_sample`, or the pure ``*_per_sample`` functions).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = [
    "EndPointError",
    "ThreePixelError",
    "end_point_error_per_sample",
    "three_pixel_error_per_sample",
]


def _valid_mask(pred: torch.Tensor, gt: torch.Tensor, maxdisp: float, name: str) -> torch.Tensor:
    for arg, t in (("pred", pred), ("gt", gt)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != 1:
            raise ValueError(f"{name}: {arg} must have shape (B, 1, H, W), got {tuple(t.shape)}")
    if pred.shape != gt.shape:
        raise ValueError(
            f"{name}: pred and gt must have the same shape (B, 1, H, W), got "
            f"{tuple(pred.shape)} and {tuple(gt.shape)}"
        )
    if maxdisp <= 0:
        raise ValueError(f"{name}: maxdisp must be > 0, got {maxdisp}")
    return (gt > 0) & (gt < maxdisp)


def _per_sample(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over each sample's valid pixels; NaN for samples without any."""
    values = torch.where(mask, values, torch.zeros_like(values)).flatten(1)
    count = mask.flatten(1).sum(1)
    out = values.sum(1) / count.clamp(min=1)
    return torch.where(count > 0, out, torch.full_like(out, float("nan")))


def three_pixel_error_per_sample(
    pred: torch.Tensor, gt: torch.Tensor, maxdisp: float = 192
) -> torch.Tensor:
    """Fraction of valid pixels whose error exceeds 3 px and 5 % of the true disparity.

    ``outlier = |pred - gt| > 3 and |pred - gt| / gt > 0.05`` (KITTI's D1 definition, as the
    original ``error_estimating``), averaged over the pixels with ``0 < gt < maxdisp``.

    Args:
        pred: ``(B, 1, H, W)`` predicted disparity.
        gt: ``(B, 1, H, W)`` ground truth.
        maxdisp: ground truth at or above this is ignored.

    Returns:
        ``(B,)`` fractions in [0, 1]; NaN for a sample without a valid pixel.

    Example:
        >>> gt = torch.full((1, 1, 1, 2), 100.0)
        >>> three_pixel_error_per_sample(torch.tensor([[[[104.0, 106.0]]]]), gt)
        tensor([0.5000])
    """
    mask = _valid_mask(pred, gt, maxdisp, "three_pixel_error_per_sample")
    err = (pred - gt).abs()
    outlier = (err > 3) & (err > 0.05 * gt)
    return _per_sample(outlier.to(pred.dtype if pred.is_floating_point() else torch.float32), mask)


def end_point_error_per_sample(
    pred: torch.Tensor, gt: torch.Tensor, maxdisp: float = 192
) -> torch.Tensor:
    """Mean absolute disparity error over each sample's pixels with ``0 < gt < maxdisp``.

    Args:
        pred: ``(B, 1, H, W)`` predicted disparity.
        gt: ``(B, 1, H, W)`` ground truth.
        maxdisp: ground truth at or above this is ignored.

    Returns:
        ``(B,)`` errors in pixels; NaN for a sample without a valid pixel.
    """
    mask = _valid_mask(pred, gt, maxdisp, "end_point_error_per_sample")
    return _per_sample((pred - gt).abs(), mask)


class _PerSampleMean(Metric):
    """Mean over samples of a per-sample value; sum states (exact under DDP) plus a ``cat``
    state with the values themselves."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, maxdisp: float = 192, **kwargs) -> None:
        super().__init__(**kwargs)
        if maxdisp <= 0:
            raise ValueError(f"{type(self).__name__}: maxdisp must be > 0, got {maxdisp}")
        self.maxdisp = float(maxdisp)
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def _per_sample(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Add a batch: ``pred`` and ``gt`` are ``(B, 1, H, W)``."""
        values = self._per_sample(pred.detach(), gt.detach())
        values = values[~torch.isnan(values)].float()
        self.total += values.sum()
        self.count += values.numel()
        self.values.append(values)

    def compute(self) -> torch.Tensor:
        """Mean of the per-sample values seen since the last reset (NaN if none)."""
        if int(self.count) == 0:
            return torch.tensor(float("nan"), device=self.total.device)
        return self.total / self.count

    def per_sample(self) -> torch.Tensor:
        """``(N,)`` per-sample values of the samples with valid pixels, in update order
        (synchronised across processes like :meth:`compute`)."""
        with self.sync_context():
            values = dim_zero_cat(self.values) if len(self.values) else torch.zeros(0)
        return values.float()


class ThreePixelError(_PerSampleMean):
    """Three-pixel error (fraction of outliers, KITTI D1), mean over samples.

    See :func:`three_pixel_error_per_sample` for the per-sample value and the module docstring
    for why the epoch value is a mean over samples. The value is a fraction in [0, 1]
    (multiply by 100 for percent).

    Args:
        maxdisp: ground truth at or above this is ignored.
        kwargs: ``torchmetrics.Metric`` options.
    """

    def _per_sample(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return three_pixel_error_per_sample(pred, gt, self.maxdisp)


class EndPointError(_PerSampleMean):
    """End-point error (mean absolute disparity error, pixels), mean over samples.

    Args:
        maxdisp: ground truth at or above this is ignored.
        kwargs: ``torchmetrics.Metric`` options.
    """

    def _per_sample(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return end_point_error_per_sample(pred, gt, self.maxdisp)
