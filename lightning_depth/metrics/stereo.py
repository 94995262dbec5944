"""Stereo disparity metrics: three-pixel error (KITTI's D1 outlier rate), end-point error, and
the bad-pixel rates of the real benchmarks (Middlebury bad-2.0/bad-4.0, KITTI D1-all).

A pixel is valid where ``0 < gt < maxdisp`` (the bad-pixel rates: where ``gt`` is finite and
> 0, inside an optional region mask); samples without a valid pixel are skipped.

Holes: a prediction that is not finite (NaN or inf; e.g. the pixels a classical matcher leaves
without a match) counts as an error, as if it were disparity 0: it is a bad pixel for every
threshold and its end-point error is ``gt``. (This is how ``benchmarks/bench_real.py`` scores
StereoSGBM with its invalid pixels; the networks' outputs are always finite.)

Epoch values are the mean of per-sample values: each image weighs the same whatever its number
of valid pixels and whatever the batch size. (The original AnyNet averages per-batch values,
which depends on the batch size; with batch size 1 the two agree.) Pooling all pixels instead
would let dense images dominate sparse ones. The per-sample values are kept for distribution
plots (:meth:`ThreePixelError.per_sample`, or the pure ``*_per_sample`` functions).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = [
    "REDUCTIONS",
    "REGIONS",
    "BadPixelRate",
    "EndPointError",
    "ThreePixelError",
    "bad_pixel_counts",
    "bad_pixel_rate_per_sample",
    "end_point_error_per_sample",
    "three_pixel_error_per_sample",
]

#: where a bad-pixel rate counts: every pixel with ground truth, or the non-occluded ones
REGIONS = ("all", "nonoccluded")
#: how a bad-pixel rate pools images: mean of per-image rates, or bad pixels over all pixels
REDUCTIONS = ("sample", "pixel")


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


def _abs_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``|pred - gt|`` with holes (non-finite predictions) read as disparity 0."""
    pred = torch.where(torch.isfinite(pred), pred, torch.zeros_like(pred))
    return (pred - gt).abs()


def _outliers(
    pred: torch.Tensor, gt: torch.Tensor, threshold: float, relative: float
) -> torch.Tensor:
    """Bool map of ``|pred - gt| > threshold and |pred - gt| > relative * gt``, holes
    included."""
    err = _abs_error(pred, gt)
    return ((err > threshold) & (err > relative * gt)) | ~torch.isfinite(pred)


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
    outlier = _outliers(pred, gt, 3.0, 0.05)
    return _per_sample(outlier.to(pred.dtype if pred.is_floating_point() else torch.float32), mask)


def end_point_error_per_sample(
    pred: torch.Tensor, gt: torch.Tensor, maxdisp: float = 192
) -> torch.Tensor:
    """Mean absolute disparity error over each sample's pixels with ``0 < gt < maxdisp``; a
    hole (non-finite prediction) is read as disparity 0, so its error is ``gt``.

    Args:
        pred: ``(B, 1, H, W)`` predicted disparity.
        gt: ``(B, 1, H, W)`` ground truth.
        maxdisp: ground truth at or above this is ignored.

    Returns:
        ``(B,)`` errors in pixels; NaN for a sample without a valid pixel.
    """
    mask = _valid_mask(pred, gt, maxdisp, "end_point_error_per_sample")
    return _per_sample(_abs_error(pred, gt), mask)


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


# -- the real benchmarks' bad-pixel rates ---------------------------------------------------


def _benchmark_valid(
    pred: torch.Tensor,
    gt: torch.Tensor,
    threshold: float,
    relative: float,
    mask: Optional[torch.Tensor],
    name: str,
) -> torch.Tensor:
    """Checked inputs -> bool ``(B, 1, H, W)`` of the pixels that count."""
    _valid_mask(pred, gt, 1.0, name)  # the shape and type checks
    if not threshold >= 0 or not relative >= 0:
        raise ValueError(
            f"{name}: threshold and relative must be >= 0, got {threshold} and {relative}"
        )
    valid = torch.isfinite(gt) & (gt > 0)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.shape != gt.shape:
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(
                f"{name}: mask must have the shape of gt {tuple(gt.shape)} (B, 1, H, W), got "
                f"{shape}"
            )
        valid = valid & (mask if mask.dtype == torch.bool else mask != 0)
    return valid


def bad_pixel_counts(
    pred: torch.Tensor,
    gt: torch.Tensor,
    threshold: float,
    relative: float = 0.0,
    mask: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bad pixels and counted pixels of each sample (what :func:`bad_pixel_rate_per_sample`
    divides; pooled over images for KITTI).

    Args:
        pred: ``(B, 1, H, W)`` predicted disparity; non-finite values are holes (bad).
        gt: ``(B, 1, H, W)`` ground truth; pixels where it is not finite or <= 0 do not count.
        threshold: a pixel is bad where ``|pred - gt| > threshold`` (px) ...
        relative: ... and ``|pred - gt| > relative * gt`` (0: no relative condition).
        mask: optional ``(B, 1, H, W)`` region (bool, or nonzero = in): only its pixels count.

    Returns:
        ``(bad, counted)``, each ``(B,)`` int64.
    """
    valid = _benchmark_valid(pred, gt, threshold, relative, mask, "bad_pixel_counts")
    bad = _outliers(pred, gt, threshold, relative) & valid
    return bad.flatten(1).sum(1), valid.flatten(1).sum(1)


def bad_pixel_rate_per_sample(
    pred: torch.Tensor,
    gt: torch.Tensor,
    threshold: float,
    relative: float = 0.0,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Share of each sample's counted pixels that are bad: Middlebury's bad-2.0 and bad-4.0
    (``threshold`` 2 or 4, ``relative`` 0), KITTI's D1 (3 px and ``relative`` 0.05).

    ``bad = |pred - gt| > threshold and |pred - gt| > relative * gt``, or ``pred`` a hole
    (not finite), over the pixels with finite ``gt > 0`` inside ``mask``. Unlike
    :func:`three_pixel_error_per_sample` there is no ``maxdisp``: the benchmarks count every
    pixel with ground truth.

    Args:
        pred, gt, threshold, relative, mask: as :func:`bad_pixel_counts`.

    Returns:
        ``(B,)`` fractions in [0, 1]; NaN for a sample without a counted pixel.

    Example:
        >>> gt = torch.tensor([[[[10.0, 10.0, 10.0, float("inf")]]]])
        >>> bad_pixel_rate_per_sample(torch.tensor([[[[11.0, 13.0, float("nan"), 0.0]]]]), gt, 2.0)
        tensor([0.6667])
    """
    bad, counted = bad_pixel_counts(pred, gt, threshold, relative, mask)
    rate = bad.double() / counted.clamp(min=1).double()
    rate = torch.where(counted > 0, rate, torch.full_like(rate, float("nan")))
    return rate.to(pred.dtype if pred.is_floating_point() else torch.float32)


class BadPixelRate(Metric):
    """A bad-pixel rate over an evaluation set (see :func:`bad_pixel_rate_per_sample`).

    States are sums (``dist_reduce_fx="sum"``), so DDP values equal single-process ones.

    Args:
        threshold: error threshold in pixels (Middlebury: 2 or 4; KITTI D1: 3).
        relative: relative threshold (KITTI D1: 0.05).
        region: ``"all"`` (every pixel with ground truth) or ``"nonoccluded"`` (only where
            the ``nonoccluded`` mask given to :meth:`update` is true).
        reduction: ``"sample"``: the mean of per-image rates (images weigh the same;
            samples without a counted pixel are skipped); ``"pixel"``: all bad pixels over
            all counted pixels (KITTI's devkit pools its images so).
        kwargs: ``torchmetrics.Metric`` options.

    Example:
        >>> m = BadPixelRate(2.0)
        >>> m.update(torch.tensor([[[[11.0, 13.0]]]]), torch.tensor([[[[10.0, 10.0]]]]))
        >>> m.compute()
        tensor(0.5000)
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        threshold: float,
        relative: float = 0.0,
        region: str = "all",
        reduction: str = "sample",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if region not in REGIONS:
            raise ValueError(f"BadPixelRate: region must be one of {REGIONS}, got {region!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"BadPixelRate: reduction must be one of {REDUCTIONS}, got {reduction!r}"
            )
        if not threshold >= 0 or not relative >= 0:
            raise ValueError(
                f"BadPixelRate: threshold and relative must be >= 0, got {threshold} and {relative}"
            )
        self.threshold, self.relative = float(threshold), float(relative)
        self.region, self.reduction = region, reduction
        self.add_state(
            "rate_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("samples", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("bad", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("counted", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self,
        pred: torch.Tensor,
        gt: torch.Tensor,
        nonoccluded: Optional[torch.Tensor] = None,
    ) -> None:
        """Add a batch: ``pred``, ``gt`` and (for ``region="nonoccluded"``, required there)
        the bool ``nonoccluded`` mask, each ``(B, 1, H, W)``."""
        mask = None
        if self.region == "nonoccluded":
            if nonoccluded is None:
                raise ValueError(
                    "BadPixelRate(region='nonoccluded') needs the batch's non-occlusion mask "
                    "(B, 1, H, W), got none: the data give no occlusion masks"
                )
            mask = nonoccluded.detach()
        bad, counted = bad_pixel_counts(
            pred.detach(), gt.detach(), self.threshold, self.relative, mask
        )
        has = counted > 0
        self.rate_sum += (bad[has].double() / counted[has].double()).sum()
        self.samples += has.sum()
        self.bad += bad.sum()
        self.counted += counted.sum()

    def compute(self) -> torch.Tensor:
        """The rate, a fraction in [0, 1] (float32; NaN if no pixel counted)."""
        if self.reduction == "pixel":
            num, den = self.bad.double(), self.counted.double()
        else:
            num, den = self.rate_sum, self.samples.double()
        if float(den) == 0:
            return torch.tensor(float("nan"), device=num.device)
        return (num / den).float()
