"""LightningModule for stereo depth: AnyNet, the per-stage loss, per-stage metrics."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lightning_depth.losses.stereo import multi_stage_smooth_l1
from lightning_depth.metrics.stereo import (
    EndPointError,
    ThreePixelError,
    end_point_error_per_sample,
    three_pixel_error_per_sample,
)
from lightning_depth.models.anynet import AnyNet
from lightning_depth.models.padding import InputPadder
from lightning_depth.tasks.base import DepthTask
from lightning_depth.viz import colorize, to_uint8_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class StereoDepthModule(DepthTask):
    """Stereo disparity estimation with a multi-stage network (AnyNet).

    Batches are dicts with ``left``/``right`` (B, 3, H, W) ImageNet-normalised and
    ``disparity`` (B, 1, H, W) in pixels (see
    :class:`~lightning_depth.data.monkaa.MonkaaDataModule`); pixels with
    ``0 < gt < maxdisp`` count.

    Logged: ``{stage}/loss`` and ``{stage}/loss_stage{k}`` for k = 1..S (S = 4 with SPN), and on
    val/test ``3px_stage{k}`` (three-pixel error, a fraction in [0, 1]) and ``epe_stage{k}`` per stage;
    ``val/3px`` is the last stage's.

    Args:
        net: the network; default ``AnyNet()`` (SPN with 8 channels).
        optimizer: ``params -> Optimizer``; default Adam(lr=5e-4, betas=(0.9, 0.999)) as the
            original.
        scheduler: optional ``optimizer -> LRScheduler``.
        loss_weights: per-stage loss weights (the original's (0.25, 0.5, 1, 1)).
        maxdisp: disparities at or above this are ignored in loss and metrics.
        beta: smooth-L1 transition point.
        spn_start_epoch: epoch from which the SPN stage's loss counts (earlier epochs train the
            three regression stages only, as the original's fine-tuning schedule).
        pad_multiple: evaluation pads inputs to this multiple and crops outputs back.
        predict_stages: stages ``predict_step`` runs (anytime inference: fewer is faster);
            ``None``: all.
    """

    monitor = "val/3px"
    monitor_mode = "min"

    def __init__(
        self,
        net: Optional[nn.Module] = None,
        optimizer: Optional[OptimizerCallable] = None,
        scheduler: Optional[LRSchedulerCallable] = None,
        loss_weights: Sequence[float] = (0.25, 0.5, 1.0, 1.0),
        maxdisp: float = 192.0,
        beta: float = 1.0,
        spn_start_epoch: int = 0,
        pad_multiple: int = 16,
        predict_stages: Optional[int] = None,
    ) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_task_hyperparameters()
        self.net = net if net is not None else AnyNet()
        self.loss_weights = tuple(float(w) for w in loss_weights)
        self.maxdisp = float(maxdisp)
        self.beta = beta
        self.spn_start_epoch = spn_start_epoch
        self.pad_multiple = pad_multiple
        self.predict_stages = predict_stages
        self.num_stages = self._count_stages()
        if len(self.loss_weights) < self.num_stages:
            raise ValueError(
                f"loss_weights has {len(self.loss_weights)} entries but the network returns "
                f"{self.num_stages} stages"
            )
        self.val_metrics = self.make_metrics()
        self.test_metrics = self.make_metrics()

    def _count_stages(self) -> int:
        spn = getattr(self.net, "spn_channels", 0)
        return 4 if spn else 3

    def default_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=5e-4, betas=(0.9, 0.999))

    def forward(
        self, left: torch.Tensor, right: torch.Tensor, stages: Optional[int] = None
    ) -> list[torch.Tensor]:
        """Any input size: pads to ``pad_multiple`` and crops every stage back."""
        padder = InputPadder(left.shape, multiple=self.pad_multiple)
        left_p, right_p = padder.pad(left, right)
        return [padder.unpad(d) for d in self.net(left_p, right_p, stages=stages)]

    # -- metrics -------------------------------------------------------------------------
    def make_metrics(self) -> nn.ModuleDict:
        metrics = {}
        for k in range(1, self.num_stages + 1):
            metrics[f"3px_stage{k}"] = ThreePixelError(maxdisp=self.maxdisp)
            metrics[f"epe_stage{k}"] = EndPointError(maxdisp=self.maxdisp)
        return nn.ModuleDict(metrics)

    def predict_outputs(self, batch: dict) -> list[torch.Tensor]:
        return self(batch["left"], batch["right"])

    def update_metrics(
        self, metrics: nn.ModuleDict, batch: dict, preds: Sequence[torch.Tensor]
    ) -> None:
        gt = batch["disparity"].float()
        for k, pred in enumerate(preds, start=1):
            metrics[f"3px_stage{k}"].update(pred.float(), gt)
            metrics[f"epe_stage{k}"].update(pred.float(), gt)

    def compute_metrics(self, metrics: nn.ModuleDict) -> dict[str, torch.Tensor]:
        out = {name: m.compute() for name, m in metrics.items()}
        out["3px"] = out[f"3px_stage{self.num_stages}"]
        out["epe"] = out[f"epe_stage{self.num_stages}"]
        return out

    def per_sample_metrics(
        self, batch: dict, preds: Sequence[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Per-sample three-pixel error and EPE of every stage, each ``(B,)`` (NaN where a
        sample has no valid pixel), for tables and distribution plots."""
        gt = batch["disparity"].float()
        out = {}
        for k, pred in enumerate(preds, start=1):
            out[f"3px_stage{k}"] = three_pixel_error_per_sample(
                pred.float(), gt, maxdisp=self.maxdisp
            )
            out[f"epe_stage{k}"] = end_point_error_per_sample(
                pred.float(), gt, maxdisp=self.maxdisp
            )
        return out

    # -- steps ---------------------------------------------------------------------------
    def stage_weights(self) -> tuple[float, ...]:
        """Loss weights for the current epoch (the SPN stage waits for ``spn_start_epoch``)."""
        weights = list(self.loss_weights[: self.num_stages])
        if self.num_stages == 4 and self.current_epoch < self.spn_start_epoch:
            weights[3] = 0.0
        return tuple(weights)

    def _step(self, batch: dict, stage: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
        preds = self(batch["left"], batch["right"])
        with torch.autocast(self.device.type, enabled=False):
            total, per_stage = multi_stage_smooth_l1(
                [p.float() for p in preds],
                batch["disparity"],
                weights=self.stage_weights(),
                maxdisp=self.maxdisp,
                beta=self.beta,
            )
        bs = batch["left"].shape[0]
        on_step = stage == "train"
        self.log(
            f"{stage}/loss",
            total,
            prog_bar=True,
            batch_size=bs,
            on_step=on_step,
            on_epoch=True,
            sync_dist=not on_step,
        )
        for k, value in enumerate(per_stage, start=1):
            self.log(
                f"{stage}/loss_stage{k}",
                value,
                batch_size=bs,
                on_step=on_step,
                on_epoch=True,
                sync_dist=not on_step,
            )
        return total, preds

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Disparities of the first ``predict_stages`` stages (all if ``None``): anytime
        inference stops the network early."""
        disparities = self(batch["left"], batch["right"], stages=self.predict_stages)
        return {"disparities": disparities, "name": batch.get("name")}

    # -- pictures ------------------------------------------------------------------------
    def visualize(
        self, batch: dict, preds: Sequence[torch.Tensor], index: int = 0
    ) -> dict[str, Any]:
        """Pictures of one sample: left, right, ground truth, each stage, last stage's error.

        Returns a dict of ``uint8 (H, W, 3)`` arrays; disparities share one colour scale.
        """
        gt = batch["disparity"][index].float()
        valid = (gt > 0) & (gt < self.maxdisp)
        hi = float(gt[valid].max()) if valid.any() else float(preds[-1][index].max())
        out = {
            "left": to_uint8_image(batch["left"][index], IMAGENET_MEAN, IMAGENET_STD),
            "right": to_uint8_image(batch["right"][index], IMAGENET_MEAN, IMAGENET_STD),
            "ground_truth": colorize(gt, valid, vmin=0.0, vmax=hi),
        }
        for k, pred in enumerate(preds, start=1):
            out[f"stage{k}"] = colorize(pred[index].float(), vmin=0.0, vmax=hi)
        error = (preds[-1][index].float() - gt).abs()
        out["error"] = colorize(error, valid, cmap="inferno", vmin=0.0, vmax=5.0)
        return out
