"""Standard depth metrics (AbsRel, RMSE, log10, delta < 1.25**k) on valid pixels.

Each sample's value is the mean over its valid pixels; the epoch value is the mean over
samples (as Eigen et al. and most evaluation code report them). Predictions and targets are
compared in metric depth, so log-depth inputs are exponentiated first.
"""

from __future__ import annotations

from typing import Optional

import torch
from torchmetrics import Metric

__all__ = ["METRIC_NAMES", "DepthMetrics", "depth_metrics_per_sample"]

METRIC_NAMES = ("abs_rel", "rmse", "log10", "delta1", "delta2", "delta3")


def depth_metrics_per_sample(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    log_input: bool = True,
    min_depth: float = 1e-6,
) -> dict[str, torch.Tensor]:
    """Per-sample depth metrics over valid pixels (e.g. for a W&B table).

    With ``p`` and ``t`` the predicted and true depths of a sample's valid pixels::

        abs_rel = mean(|p - t| / t)          rmse = sqrt(mean((p - t)**2))
        log10   = mean(|log10 p - log10 t|)  deltaK = mean(max(p / t, t / p) < 1.25**K)

    A pixel is valid where ``mask`` is True and the true depth is finite and > 0.

    Args:
        pred: ``(B, 1, H, W)`` predicted depth (log-depth if ``log_input``).
        target: ``(B, 1, H, W)`` true depth (log-depth if ``log_input``).
        mask: ``(B, 1, H, W)`` bool validity; None means every pixel.
        log_input: inputs are natural-log depth, compared after ``exp``.
        min_depth: predictions are clamped to at least this depth (metres) before the ratios
            and ``log10``: ``exp`` of a very negative log-depth underflows to 0 and a raw
            depth prediction may be <= 0, which would give ``inf``/``nan``.

    Returns:
        dict with ``(B,)`` tensors ``abs_rel``, ``rmse``, ``log10``, ``delta1``, ``delta2``,
        ``delta3`` (NaN for samples without a valid pixel) and ``num_valid`` (``(B,)`` int64).
    """
    for arg, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"depth metrics: {arg} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(
                f"depth metrics: {arg} must have shape (B, 1, H, W), got {tuple(x.shape)}"
            )
    if pred.shape != target.shape:
        raise ValueError(
            f"depth metrics: pred and target must have the same shape (B, 1, H, W), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if mask is None:
        mask = torch.ones_like(target, dtype=torch.bool)
    elif not isinstance(mask, torch.Tensor) or mask.shape != target.shape:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(
            f"depth metrics: mask must have shape {tuple(target.shape)} like target, got {shape}"
        )
    mask = mask if mask.dtype == torch.bool else mask != 0

    # Ratios and logs in float32 at least, whatever the autocast dtype of the prediction.
    dtype = torch.promote_types(pred.dtype, torch.float32)
    pred = pred.to(dtype)
    target = target.to(dtype)
    if log_input:
        pred, target = pred.exp(), target.exp()
    valid = mask & torch.isfinite(target) & (target > 0)
    pred = pred.clamp(min=min_depth)
    # Invalid pixels get a harmless value so no inf/nan reaches the (masked) sums.
    target = torch.where(valid, target, torch.ones_like(target))
    pred = torch.where(valid, pred, torch.ones_like(pred))

    w = valid.to(dtype)
    n = w.flatten(1).sum(dim=1)

    def per_sample(x: torch.Tensor) -> torch.Tensor:
        mean = (x * w).flatten(1).sum(dim=1) / n.clamp(min=1.0)
        return torch.where(n > 0, mean, torch.full_like(mean, float("nan")))

    ratio = torch.maximum(pred / target, target / pred)
    out = {
        "abs_rel": per_sample((pred - target).abs() / target),
        "rmse": per_sample((pred - target).square()).sqrt(),
        "log10": per_sample((pred.log10() - target.log10()).abs()),
    }
    for k in (1, 2, 3):
        out[f"delta{k}"] = per_sample((ratio < 1.25**k).to(dtype))
    out["num_valid"] = n.to(torch.int64)
    return out


class DepthMetrics(Metric):
    """Epoch depth metrics: the mean over samples of each sample's metrics on valid pixels.

    States are per-metric sums over samples and a sample count (``dist_reduce_fx="sum"``), so
    the DDP result equals the single-process one. Samples without a valid pixel are skipped.

    Args:
        log_input: ``update`` receives natural-log depth (the network's output) and compares
            ``exp`` of it.
        min_depth: prediction clamp, see :func:`depth_metrics_per_sample`.

    Example:
        >>> m = DepthMetrics(log_input=False)
        >>> m.update(torch.full((1, 1, 2, 2), 2.0), torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2, dtype=torch.bool))
        >>> m.compute()["abs_rel"]
        tensor(1.)
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, log_input: bool = True, min_depth: float = 1e-6, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log_input = log_input
        self.min_depth = min_depth
        for name in METRIC_NAMES:
            self.add_state(f"sum_{name}", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state(
            "num_samples", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum"
        )

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> None:
        """Args:
        pred: ``(B, 1, H, W)`` predicted (log-)depth.
        target: ``(B, 1, H, W)`` true (log-)depth.
        mask: ``(B, 1, H, W)`` bool validity (None: all pixels).
        """
        values = depth_metrics_per_sample(pred, target, mask, self.log_input, self.min_depth)
        keep = values["num_valid"] > 0
        for name in METRIC_NAMES:
            total = getattr(self, f"sum_{name}")
            setattr(self, f"sum_{name}", total + values[name][keep].to(total.dtype).sum())
        self.num_samples += keep.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        """Returns:
        dict of scalars ``abs_rel``, ``rmse``, ``log10``, ``delta1..3`` (NaN if no
        sample had a valid pixel).
        """
        n = self.num_samples.to(self.sum_abs_rel.dtype)
        return {name: getattr(self, f"sum_{name}") / n for name in METRIC_NAMES}
