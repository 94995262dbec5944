"""LightningModule for monocular depth: a network, the loss, metrics and an optimiser."""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image import StructuralSimilarityIndexMeasure

from lightning_depth.losses.mono import MonoDepthLoss
from lightning_depth.metrics.depth import DepthMetrics, depth_metrics_per_sample
from lightning_depth.models.autoencoder import DepthAutoencoder
from lightning_depth.optim import KerasAdam
from lightning_depth.tasks.base import DepthTask
from lightning_depth.viz import colorize, to_uint8_image


class MonoDepthModule(DepthTask):
    """Monocular depth estimation: ``image (B, 3, H, W) -> log-depth (B, 1, H, W)``.

    Batches are dicts with ``image`` (B, 3, H, W) in [0, 1], ``target`` (B, 1, H, W) log-depth
    and ``mask`` (B, 1, H, W) bool (see :class:`~lightning_depth.data.diode.DIODEDataModule`).

    Logged: ``{train,val,test}/loss`` and each loss term (``.../loss_ssim``, ``.../loss_l1``,
    ``.../loss_smoothness``); on val/test the epoch metrics ``ssim`` (torchmetrics SSIM of the
    predicted against the target log-depth, as the paper reports it) and the standard depth
    metrics on valid pixels in metric depth (``abs_rel``, ``rmse``, ``log10``,
    ``delta1..3``).

    Args:
        net: the network; default ``DepthAutoencoder(depth=4)``.
        loss: the loss module; default the faithful :class:`MonoDepthLoss`.
        optimizer: ``params -> Optimizer``; default :class:`~lightning_depth.optim.KerasAdam`
            (lr=2e-4), the original's Keras Adam update.
        scheduler: optional ``optimizer -> LRScheduler``.
        ssim_data_range: data range of the SSIM metric, in log-depth units (default log(300),
            the largest target the preprocessing produces).
        channels_last: run the network in channels-last memory format (faster on CPU and
            tensor cores; numerics unchanged).
    """

    monitor = "val/ssim"
    monitor_mode = "max"

    def __init__(
        self,
        net: Optional[nn.Module] = None,
        loss: Optional[nn.Module] = None,
        optimizer: Optional[OptimizerCallable] = None,
        scheduler: Optional[LRSchedulerCallable] = None,
        ssim_data_range: float = math.log(300.0),
        channels_last: bool = False,
    ) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_task_hyperparameters()
        self.net = net if net is not None else DepthAutoencoder()
        self.loss_fn = loss if loss is not None else MonoDepthLoss()
        self.ssim_data_range = ssim_data_range
        self.channels_last = channels_last
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.val_metrics = self.make_metrics()
        self.test_metrics = self.make_metrics()

    def default_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return KerasAdam(params, lr=2e-4, eps=1e-7)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.net(image).contiguous()

    # -- metrics -------------------------------------------------------------------------
    def make_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict(
            {
                "ssim": StructuralSimilarityIndexMeasure(
                    gaussian_kernel=True, kernel_size=7, sigma=1.5, data_range=self.ssim_data_range
                ),
                "depth": DepthMetrics(),
            }
        )

    def predict_outputs(self, batch: dict) -> torch.Tensor:
        return self(batch["image"])

    def update_metrics(self, metrics: nn.ModuleDict, batch: dict, pred: torch.Tensor) -> None:
        # Metrics accumulate in float32 whatever the autocast dtype.
        pred = pred.float()
        metrics["ssim"].update(pred, batch["target"].float())
        metrics["depth"].update(pred, batch["target"].float(), batch["mask"])

    def compute_metrics(self, metrics: nn.ModuleDict) -> dict[str, torch.Tensor]:
        out = {"ssim": metrics["ssim"].compute()}
        out.update(metrics["depth"].compute())
        return out

    def per_sample_metrics(self, batch: dict, pred: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample SSIM and depth metrics, each ``(B,)``, for tables and distributions."""
        pred, target = pred.float(), batch["target"].float()
        ssim = structural_similarity_index_measure(
            pred,
            target,
            gaussian_kernel=True,
            kernel_size=7,
            sigma=1.5,
            data_range=self.ssim_data_range,
            reduction="none",
        )
        return {"ssim": ssim, **depth_metrics_per_sample(pred, target, batch["mask"])}

    # -- steps ---------------------------------------------------------------------------
    def _step(self, batch: dict, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        pred = self(batch["image"])
        # The loss (SSIM's divisions, exp-weighted smoothness) runs in float32 under autocast.
        with torch.autocast(self.device.type, enabled=False):
            terms = self.loss_fn(
                pred.float(),
                batch["target"].float(),
                mask=batch.get("mask"),
                image=batch["image"].float(),
            )
        bs = batch["image"].shape[0]
        on_step = stage == "train"
        self.log(
            f"{stage}/loss",
            terms["loss"],
            prog_bar=True,
            batch_size=bs,
            on_step=on_step,
            on_epoch=True,
            sync_dist=not on_step,
        )
        for name in ("ssim", "l1", "smoothness"):
            self.log(
                f"{stage}/loss_{name}",
                terms[name],
                batch_size=bs,
                on_step=on_step,
                on_epoch=True,
                sync_dist=not on_step,
            )
        return terms["loss"], pred

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Log-depth of images of any size: padded (replicate) on the right and bottom to a
        multiple of ``2**net.depth`` and cropped back, so every output pixel is the input's."""
        from lightning_depth.models.padding import InputPadder

        image = batch["image"]
        padder = InputPadder(image.shape, multiple=2 ** getattr(self.net, "depth", 0))
        (padded,) = padder.pad(image)
        return {"depth_log": padder.unpad(self(padded)), "name": batch.get("name")}

    # -- pictures ------------------------------------------------------------------------
    def visualize(self, batch: dict, pred: torch.Tensor, index: int = 0) -> dict[str, Any]:
        """Pictures of one sample: input, target and prediction (jet, invalid black).

        Returns a dict of ``uint8 (H, W, 3)`` arrays keyed ``input``, ``target``,
        ``prediction``; target and prediction share one colour scale.
        """
        mask = batch["mask"][index]
        target = batch["target"][index]
        valid_target = target[mask] if mask.any() else target.flatten()
        lo, hi = float(valid_target.min()), float(valid_target.max())
        return {
            "input": to_uint8_image(batch["image"][index]),
            "target": colorize(target, mask, vmin=lo, vmax=hi),
            "prediction": colorize(pred[index].float(), vmin=lo, vmax=hi),
        }
