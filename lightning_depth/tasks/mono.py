"""LightningModule for monocular depth: a network, the loss, metrics and an optimiser."""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image import StructuralSimilarityIndexMeasure

from lightning_depth.encoding import LOG_DEPTH_RANGE, decode_log_depth
from lightning_depth.losses.mono import MonoDepthLoss
from lightning_depth.metrics.depth import DepthMetrics, depth_metrics_per_sample
from lightning_depth.models.autoencoder import DepthAutoencoder, count_parameters
from lightning_depth.models.padding import InputPadder
from lightning_depth.optim import KerasAdam
from lightning_depth.tasks.base import DepthTask, Headline, PictureRoles
from lightning_depth.viz import colorize_map, to_uint8_image

#: SSIM settings of the metric (torchmetrics' Gaussian SSIM, as the paper reports it).
_SSIM = dict(gaussian_kernel=True, kernel_size=7, sigma=1.5)


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
        data_range: data range of the SSIM metric, in log-depth units (default
            :data:`~lightning_depth.encoding.LOG_DEPTH_RANGE` = log(300), the largest target
            the preprocessing produces).
        channels_last: run the network in channels-last memory format (faster on CPU and
            tensor cores; numerics unchanged).
    """

    name = "mono"
    input_keys = ("image",)
    target_key = "target"
    output_name = "depth_log"
    output_unit = "log-depth: natural log of metres"
    monitor = "val/ssim"
    monitor_mode = "max"
    headlines = (
        Headline("ssim", "SSIM", higher_is_better=True),
        Headline("abs_rel", "AbsRel"),
        Headline("delta1", "δ<1.25", higher_is_better=True),
    )
    default_export_size = (256, 256)
    dynamic_batch_export = True
    map_kind = "depth"
    metrics_note = (
        "Parameters count the batch-norm running statistics (Keras' total). SSIM is computed "
        "on log-depth; AbsRel and δ<1.25 on metric depth over valid pixels."
    )

    def __init__(
        self,
        net: Optional[nn.Module] = None,
        loss: Optional[nn.Module] = None,
        optimizer: Optional[OptimizerCallable] = None,
        scheduler: Optional[LRSchedulerCallable] = None,
        data_range: float = LOG_DEPTH_RANGE,
        channels_last: bool = False,
    ) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_task_hyperparameters()
        self.net = net if net is not None else DepthAutoencoder()
        self.loss_fn = loss if loss is not None else MonoDepthLoss()
        self.data_range = data_range
        self.channels_last = channels_last
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.val_metrics = self.make_metrics()
        self.test_metrics = self.make_metrics()

    def default_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return KerasAdam(params, lr=2e-4, eps=1e-7)

    def parameter_count(self) -> int:
        # The paper counts the autoencoders as Keras does: weights plus BN running statistics.
        return count_parameters(self.net)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.net(image).contiguous()

    def forward_outputs(self, batch: dict, stages: Optional[int] = None) -> torch.Tensor:
        """Log-depth ``(B, 1, H, W)`` of images of any size: padded (replicate) on the right
        and bottom to a multiple of :attr:`size_multiple` and cropped back, so every output
        pixel is the input's."""
        image = batch["image"]
        padder = InputPadder(image.shape, multiple=self.size_multiple)
        (padded,) = padder.pad(image)
        return padder.unpad(self(padded))

    predict_resolutions = ("train", "native", "tiles")
    #: share of a tile's height and width that neighbouring tiles overlap at
    #: ``predict_resolution="tiles"`` (at least; the tiles spread evenly over the image).
    tile_overlap: float = 0.25

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        # A loaded model predicts at the size it was trained at (where the checkpoint says).
        self.predict_resolution = self.default_predict_resolution

    def predict_map(self, image: torch.Tensor) -> torch.Tensor:
        """Depth in metres ``(B, 1, H, W)`` of images ``(B, 3, H, W)`` in [0, 1], at the
        images' size whatever :attr:`predict_resolution`:

        - ``"train"``: the image is resized (bilinear, half-pixel centres, no antialias:
          OpenCV's INTER_LINEAR, as the training data were) to :attr:`train_size` and the
          log-depth resized back to ``H x W`` before decoding;
        - ``"native"``: padded to :attr:`size_multiple` and cropped back;
        - ``"tiles"``: the image at its own scale cut into overlapping tiles of
          :attr:`train_size` (see :func:`tile_starts`; an image smaller than a tile along a
          side is one tile along it), the tiles' log-depths blended with weights that fall
          linearly to the tile borders over the overlap (:func:`tile_weights`). For images
          larger than the training size where the scene's scale matters; a Python loop over
          tiles, so not for export.
        """
        if self.predict_resolution == "native":
            return self.prediction_map(self.forward_outputs({"image": image}))
        if self.predict_resolution == "tiles":
            return self.prediction_map(self._tiled_log_depth(image))
        size = image.shape[-2:]
        small = F.interpolate(image, size=self.train_size, mode="bilinear", align_corners=False)
        log_depth = F.interpolate(
            self.forward_outputs({"image": small}),
            size=size,
            mode="bilinear",
            align_corners=False,
        )
        return self.prediction_map(log_depth)

    def _tiled_log_depth(self, image: torch.Tensor) -> torch.Tensor:
        """Log-depth ``(B, 1, H, W)`` of ``image`` from overlapping tiles of
        :attr:`train_size`, blended (see :meth:`predict_map`)."""
        b, _, h, w = image.shape
        th, tw = min(self.train_size[0], h), min(self.train_size[1], w)
        oh, ow = round(self.tile_overlap * th), round(self.tile_overlap * tw)
        weight = (
            tile_weights(th, oh, image.device)[:, None] * tile_weights(tw, ow, image.device)[None]
        )
        total = image.new_zeros(b, 1, h, w, dtype=torch.float32)
        norm = image.new_zeros(1, 1, h, w, dtype=torch.float32)
        for y in tile_starts(h, th, oh):
            for x in tile_starts(w, tw, ow):
                tile = image[..., y : y + th, x : x + tw]
                log_depth = self.forward_outputs({"image": tile}).float()
                total[..., y : y + th, x : x + tw] += weight * log_depth
                norm[..., y : y + th, x : x + tw] += weight
        return total / norm

    def export_module(self, stages: Optional[int] = None) -> nn.Module:
        if stages is not None:
            raise ValueError("stages applies to anytime (stereo) models only")
        return _Exported(self.net).eval()

    # -- loss ----------------------------------------------------------------------------
    @property
    def loss_terms(self) -> tuple[str, ...]:
        return ("ssim", "l1", "smoothness")

    def compute_loss(self, batch: dict, pred: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = self.loss_fn(
            pred.float(),
            batch["target"].float(),
            mask=batch.get("mask"),
            image=batch["image"].float(),
        )
        return {"loss": terms["loss"], **{k: terms[k] for k in self.loss_terms}}

    # -- metrics -------------------------------------------------------------------------
    def make_final_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict(
            {
                "ssim": StructuralSimilarityIndexMeasure(**_SSIM, data_range=self.data_range),
                "depth": DepthMetrics(),
            }
        )

    def update_final_metrics(self, metrics: nn.ModuleDict, batch: dict, pred: torch.Tensor) -> None:
        # Metrics accumulate in float32 whatever the autocast dtype.
        pred = pred.float()
        metrics["ssim"].update(pred, batch["target"].float())
        metrics["depth"].update(pred, batch["target"].float(), batch["mask"])

    def per_sample_metrics(self, batch: dict, pred: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample SSIM and depth metrics, each ``(B,)``, for tables and distributions."""
        pred, target = pred.float(), batch["target"].float()
        ssim = structural_similarity_index_measure(
            pred, target, **_SSIM, data_range=self.data_range, reduction="none"
        )
        return {"ssim": ssim, **depth_metrics_per_sample(pred, target, batch["mask"])}

    # -- pictures and outputs ------------------------------------------------------------
    @property
    def picture_roles(self) -> PictureRoles:
        return PictureRoles(inputs=("input",), target="target", prediction="prediction")

    def visualize(self, batch: dict, pred: torch.Tensor, index: int = 0) -> dict[str, Any]:
        """Pictures of one sample: input, target and prediction (log-depth coloured near =
        warm, :func:`~lightning_depth.viz.colorize_map`; invalid black).

        Returns a dict of ``uint8 (H, W, 3)`` arrays keyed ``input``, ``target``,
        ``prediction``; target and prediction share one colour scale.
        """
        mask = batch["mask"][index]
        target = batch["target"][index]
        valid_target = target[mask] if mask.any() else target.flatten()
        lo, hi = float(valid_target.min()), float(valid_target.max())
        return {
            "input": self.input_image(batch, index),
            "target": colorize_map(target, "depth", lo, hi, mask=mask),
            "prediction": colorize_map(pred[index].float(), "depth", lo, hi),
        }

    def prediction_map(self, pred: torch.Tensor) -> torch.Tensor:
        """Metric depth in metres, ``exp(log-depth)``."""
        return decode_log_depth(pred.detach().float())

    def input_image(self, batch: dict, index: int) -> np.ndarray:
        return to_uint8_image(batch["image"][index].float())


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Offsets of tiles of ``tile`` pixels covering ``length`` pixels, neighbours sharing at
    least ``overlap`` pixels: ``n = ceil((length - overlap) / (tile - overlap))`` tiles spread
    evenly from 0 to ``length - tile`` (one tile at 0 when ``length <= tile``).

    Example:
        >>> tile_starts(64, 32, 8)
        [0, 16, 32]
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, {tile}), got {overlap}")
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def tile_weights(size: int, overlap: int, device: Optional[torch.device] = None) -> torch.Tensor:
    """Blending weights ``(size,)`` along one side of a tile: 1 in the middle, falling
    linearly over ``overlap`` pixels to ``1 / (overlap + 1)`` at the borders (never 0, so a
    pixel only one tile covers keeps that tile's value)."""
    i = torch.arange(size, device=device, dtype=torch.float32)
    edge = torch.minimum(i + 1, size - i) / (overlap + 1)
    return edge.clamp(max=1.0)


class _Exported(nn.Module):
    """``image (B, 3, H, W) in [0, 1] -> depth_log (B, 1, H, W)``; H, W multiples of
    ``2**depth``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)
