"""LightningModule for stereo depth: AnyNet, the per-stage loss, per-stage metrics."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lightning_depth.encoding import denormalize
from lightning_depth.losses.stereo import MultiStageSmoothL1
from lightning_depth.metrics.benchmark import (
    BENCHMARK_METRICS,
    NONOCCLUDED_KEY,
    benchmark_metric,
    check_benchmark_metrics,
)
from lightning_depth.metrics.stereo import (
    EndPointError,
    ThreePixelError,
    bad_pixel_rate_per_sample,
    end_point_error_per_sample,
    three_pixel_error_per_sample,
)
from lightning_depth.models.anynet import AnyNet
from lightning_depth.models.padding import InputPadder
from lightning_depth.tasks.base import DepthTask, Headline, PictureRoles, stage_keys
from lightning_depth.viz import colorize, colorize_map, to_uint8_image


class StereoDepthModule(DepthTask):
    """Stereo disparity estimation with a multi-stage network (AnyNet).

    Batches are dicts with ``left``/``right`` (B, 3, H, W) ImageNet-normalised (see
    :mod:`lightning_depth.encoding`) and ``disparity`` (B, 1, H, W) in pixels (see
    :class:`~lightning_depth.data.monkaa.MonkaaDataModule`); pixels with
    ``0 < gt < maxdisp`` count.

    Logged: ``{stage}/loss`` and ``{stage}/loss_stage{k}`` for k = 1..S (S = the net's
    ``num_stages``: 4 with SPN), and on val/test ``3px_stage{k}`` (three-pixel error, a
    fraction in [0, 1]) and ``epe_stage{k}`` per stage; ``val/3px`` and ``val/epe`` are the
    last stage's.

    Args:
        net: the network; default ``AnyNet()`` (SPN with 8 channels). It returns one
            disparity per stage and has ``num_stages``.
        loss: the loss over the list of stage outputs; default
            ``MultiStageSmoothL1(weights=(0.25, 0.5, 1, 1), maxdisp=maxdisp)`` (the original's).
        optimizer: ``params -> Optimizer``; default Adam(lr=5e-4, betas=(0.9, 0.999)) as the
            original.
        scheduler: optional ``optimizer -> LRScheduler``.
        maxdisp: disparities at or above this are ignored by the metrics (and the default
            loss).
        spn_start_epoch: epoch from which the SPN stage's loss counts (earlier epochs train the
            three regression stages only, as the original's fine-tuning schedule).
        predict_stages: stages ``predict_step`` runs (anytime inference: fewer is faster);
            ``None``: all.
    """

    name = "stereo"
    input_keys = ("left", "right")
    target_key = "disparity"
    normalized_inputs = True
    output_name = "disparity"
    output_unit = "disparity of the left view, pixels"
    monitor = "val/3px"
    monitor_mode = "min"
    headlines = (
        Headline("3px", "3-px error (%)", scale=100.0, digits=2),
        Headline("epe", "EPE (px)", digits=3),
    )
    default_export_size = (256, 512)
    # AnyNet's SPN column loop exports as one Scan over a batch-1 layout.
    dynamic_batch_export = False
    map_kind = "disparity"
    metrics_note = (
        "3-px error: share of valid pixels off by more than 3 px and 5 % (KITTI D1), mean "
        "over test samples, last stage."
    )

    def __init__(
        self,
        net: Optional[nn.Module] = None,
        loss: Optional[nn.Module] = None,
        optimizer: Optional[OptimizerCallable] = None,
        scheduler: Optional[LRSchedulerCallable] = None,
        maxdisp: float = 192.0,
        spn_start_epoch: int = 0,
        predict_stages: Optional[int] = None,
    ) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_task_hyperparameters()
        self.net = net if net is not None else AnyNet()
        self.maxdisp = float(maxdisp)
        self.loss_fn = loss if loss is not None else MultiStageSmoothL1(maxdisp=self.maxdisp)
        self.spn_start_epoch = spn_start_epoch
        self.predict_stages = predict_stages
        weights = getattr(self.loss_fn, "weights", None)
        if weights is not None and len(weights) < self.num_stages:
            raise ValueError(
                f"the loss has {len(weights)} stage weights {tuple(weights)} but the network "
                f"returns {self.num_stages} stages"
            )
        self.val_metrics = self.make_metrics()
        self.test_metrics = self.make_metrics()

    def default_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=5e-4, betas=(0.9, 0.999))

    def forward(
        self, left: torch.Tensor, right: torch.Tensor, stages: Optional[int] = None
    ) -> list[torch.Tensor]:
        """Any input size: pads to :attr:`size_multiple` and crops every stage back."""
        padder = InputPadder(left.shape, multiple=self.size_multiple)
        left_p, right_p = padder.pad(left, right)
        return [padder.unpad(d) for d in self.net(left_p, right_p, stages=stages)]

    def forward_outputs(self, batch: dict, stages: Optional[int] = None) -> list[torch.Tensor]:
        return self(batch["left"], batch["right"], stages=stages)

    def export_module(self, stages: Optional[int] = None) -> nn.Module:
        return _Exported(self.net, stages).eval()

    def set_predict_stages(self, stages: Optional[int]) -> None:
        if stages is not None and not 1 <= int(stages) <= self.num_stages:
            raise ValueError(
                f"stages must be in 1..{self.num_stages} for this network, got {stages}"
            )
        self.predict_stages = stages

    # -- loss ----------------------------------------------------------------------------
    @property
    def loss_terms(self) -> tuple[str, ...]:
        return tuple(f"stage{k}" for k in range(1, self.num_stages + 1))

    @property
    def loss_curve_keys(self) -> tuple[str, ...]:
        return ("loss", *(f"loss_{term}" for term in self.loss_terms))

    def stage_weights(self) -> Optional[tuple[float, ...]]:
        """Loss weights for the current epoch (the SPN stage waits for ``spn_start_epoch``);
        ``None``: the loss' own."""
        weights = getattr(self.loss_fn, "weights", None)
        if weights is None:
            return None
        weights = list(weights[: self.num_stages])
        if self.num_stages == 4 and self.current_epoch < self.spn_start_epoch:
            weights[3] = 0.0
        return tuple(weights)

    def compute_loss(self, batch: dict, preds: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        total, per_stage = self.loss_fn(
            [p.float() for p in preds], batch["disparity"], weights=self.stage_weights()
        )
        return {"loss": total, **{f"stage{k}": v for k, v in enumerate(per_stage, start=1)}}

    # -- metrics -------------------------------------------------------------------------
    #: the real benchmark's metrics reported besides the task's own (keys of
    #: :data:`~lightning_depth.metrics.benchmark.BENCHMARK_METRICS`, e.g. ``bad2``,
    #: ``d1_all``); set from the DataModule's ``benchmark_metrics`` by :meth:`setup`.
    benchmark_metrics: tuple[str, ...] = ()

    def setup(self, stage: str) -> None:
        """Report the metrics of the benchmark the trainer's DataModule holds (its
        ``benchmark_metrics``: Middlebury's bad-2.0/4.0, KITTI's D1-all) from this run on."""
        datamodule = getattr(self.trainer, "datamodule", None)
        self.use_benchmark_metrics(getattr(datamodule, "benchmark_metrics", ()))

    def use_benchmark_metrics(self, keys: Iterable[str]) -> None:
        """Report the benchmark metrics ``keys`` too: on the final output, in the epoch
        metrics (``val/<key>``, ``test/<key>``), the final and per-sample metrics, and as
        headlines (so the summary's ``RESULT`` line carries them). Batches then need the
        non-occlusion mask (key :data:`~lightning_depth.metrics.benchmark.NONOCCLUDED_KEY`)
        for the ``*_noc`` metrics.

        Raises:
            ValueError: an unknown key (the message lists the known ones).
        """
        keys = check_benchmark_metrics(keys)
        if keys == self.benchmark_metrics:
            return
        self.benchmark_metrics = keys
        self.val_metrics = self.make_metrics().to(self.device)
        self.test_metrics = self.make_metrics().to(self.device)
        self.headlines = type(self).headlines + tuple(
            Headline(k, BENCHMARK_METRICS[k].label, scale=100.0, digits=2) for k in keys
        )

    def _update_benchmark_metrics(
        self, metrics: nn.ModuleDict, batch: dict, final: torch.Tensor
    ) -> None:
        gt = batch["disparity"].float()
        nonoccluded = batch.get(NONOCCLUDED_KEY)
        for key in self.benchmark_metrics:
            metrics[key].update(final.float(), gt, nonoccluded)

    def make_metrics(self) -> nn.ModuleDict:
        metrics = {}
        for three, epe in zip(
            stage_keys("3px", self.num_stages), stage_keys("epe", self.num_stages)
        ):
            metrics[three] = ThreePixelError(maxdisp=self.maxdisp)
            metrics[epe] = EndPointError(maxdisp=self.maxdisp)
        metrics.update({key: benchmark_metric(key) for key in self.benchmark_metrics})
        return nn.ModuleDict(metrics)

    def update_metrics(
        self, metrics: nn.ModuleDict, batch: dict, preds: Sequence[torch.Tensor]
    ) -> None:
        gt = batch["disparity"].float()
        for k, pred in enumerate(preds, start=1):
            metrics[f"3px_stage{k}"].update(pred.float(), gt)
            metrics[f"epe_stage{k}"].update(pred.float(), gt)
        self._update_benchmark_metrics(metrics, batch, preds[-1])

    def compute_metrics(self, metrics: nn.ModuleDict) -> dict[str, torch.Tensor]:
        out = {name: m.compute() for name, m in metrics.items()}
        out["3px"] = out[f"3px_stage{self.num_stages}"]
        out["epe"] = out[f"epe_stage{self.num_stages}"]
        return out

    def make_final_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict(
            {
                "3px": ThreePixelError(maxdisp=self.maxdisp),
                "epe": EndPointError(maxdisp=self.maxdisp),
                **{key: benchmark_metric(key) for key in self.benchmark_metrics},
            }
        )

    def update_final_metrics(
        self, metrics: nn.ModuleDict, batch: dict, final: torch.Tensor
    ) -> None:
        gt = batch["disparity"].float()
        metrics["3px"].update(final.float(), gt)
        metrics["epe"].update(final.float(), gt)
        self._update_benchmark_metrics(metrics, batch, final)

    def per_sample_metrics(
        self, batch: dict, preds: Sequence[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Per-sample three-pixel error and EPE of every stage, each ``(B,)`` (NaN where a
        sample has no valid pixel), for tables and distribution plots; ``3px``/``epe`` are
        the last stage's."""
        gt = batch["disparity"].float()
        out = {}
        for k, pred in enumerate(preds, start=1):
            out[f"3px_stage{k}"] = three_pixel_error_per_sample(
                pred.float(), gt, maxdisp=self.maxdisp
            )
            out[f"epe_stage{k}"] = end_point_error_per_sample(
                pred.float(), gt, maxdisp=self.maxdisp
            )
        out["3px"] = out[f"3px_stage{len(preds)}"]
        out["epe"] = out[f"epe_stage{len(preds)}"]
        nonoccluded = batch.get(NONOCCLUDED_KEY)
        for key in self.benchmark_metrics:
            m = BENCHMARK_METRICS[key]
            mask = nonoccluded if m.region == "nonoccluded" else None
            if m.region == "nonoccluded" and mask is None:
                raise ValueError(f"{key} needs the batch's {NONOCCLUDED_KEY!r} mask, got none")
            out[key] = bad_pixel_rate_per_sample(
                preds[-1].float(), gt, m.threshold, m.relative, mask
            )
        return out

    # -- pictures and outputs ------------------------------------------------------------
    @property
    def picture_roles(self) -> PictureRoles:
        return PictureRoles(
            inputs=("left",), target="ground_truth", prediction=f"stage{self.num_stages}"
        )

    def visualize(
        self, batch: dict, preds: Sequence[torch.Tensor], index: int = 0
    ) -> dict[str, Any]:
        """Pictures of one sample: left, right, ground truth, each stage, last stage's error.

        Returns a dict of ``uint8 (H, W, 3)`` arrays; disparities share one colour scale,
        near = warm (:func:`~lightning_depth.viz.colorize_map`).
        """
        gt = batch["disparity"][index].float()
        valid = (gt > 0) & (gt < self.maxdisp)
        hi = float(gt[valid].max()) if valid.any() else float(preds[-1][index].max())
        out = {
            "left": self.input_image(batch, index),
            "right": to_uint8_image(denormalize(batch["right"][index].float())),
            "ground_truth": colorize_map(gt, "disparity", 0.0, hi, mask=valid),
        }
        for k, pred in enumerate(preds, start=1):
            out[f"stage{k}"] = colorize_map(pred[index].float(), "disparity", 0.0, hi)
        error = (preds[-1][index].float() - gt).abs()
        out["error"] = colorize(error, valid, cmap="inferno", vmin=0.0, vmax=5.0)
        return out

    #: ``"native"``: the pair as given; ``"x2"``: the pair enlarged 2x (bilinear), the
    #: disparity brought back to the pair's size (bilinear) and halved. AnyNet estimates at
    #: 1/4 resolution, so on images whose thin structures that grid misses, 2x is finer in the
    #: image's pixels, at 4x the work (Motorcycle: 3-px error 20.2% -> 14.8%, see
    #: ``benchmarks/bench_real.py``); disparities must stay within the network's range at 2x.
    predict_resolutions = ("native", "x2")

    def predict_map(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        if self.predict_resolution != "x2":
            return super().predict_map(left, right)
        size = left.shape[-2:]
        big = [
            F.interpolate(v, scale_factor=2.0, mode="bilinear", align_corners=False)
            for v in (left, right)
        ]
        disparity = super().predict_map(*big)
        return F.interpolate(disparity, size=size, mode="bilinear", align_corners=False) / 2.0

    def prediction_map(self, preds: Sequence[torch.Tensor]) -> torch.Tensor:
        """Disparity in pixels of the last stage run, clamped to >= 0 (a left disparity
        cannot be negative; regression near the border can undershoot)."""
        return preds[-1].detach().float().clamp_min(0.0)

    def input_image(self, batch: dict, index: int) -> np.ndarray:
        return to_uint8_image(denormalize(batch["left"][index].float()))


class _Exported(nn.Module):
    """``left, right (B, 3, H, W) ImageNet-normalised -> disparity (B, 1, H, W)`` of stage
    ``stages`` (default the last); H, W multiples of 16."""

    def __init__(self, net: nn.Module, stages: Optional[int] = None) -> None:
        super().__init__()
        self.net = net
        self.stages = stages

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.net(left, right, stages=self.stages)[-1]
