"""Validation pictures and per-sample metric tables for W&B (TensorBoard and CSV too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger


class PredictionPanels(Callback):
    """Every validation epoch: an image panel of a fixed set of samples and a table of
    per-sample metrics.

    The samples are the first ``num_samples`` of the validation set (the validation loader
    does not shuffle, so they stay the same across epochs). The model provides
    ``visualize(batch, outputs, index) -> dict[str, uint8 (H, W, 3)]`` and
    ``per_sample_metrics(batch, outputs) -> dict[str, Tensor (B,)]``.

    W&B: ``val/panel`` (one image per sample, the model's pictures side by side, captioned
    with the sample name) and ``val/per_sample`` (a ``wandb.Table``). TensorBoard: the
    panels via ``add_image``. Other loggers: PNG files under the log folder. Only global
    rank 0 logs media; per-sample values are gathered from every process first.

    Args:
        num_samples: how many samples the image panel shows.
        table: log the per-sample metric table.
    """

    def __init__(self, num_samples: int = 4, table: bool = True) -> None:
        self.num_samples = num_samples
        self.table = table
        self._panels: list[tuple[str, np.ndarray]] = []
        self._rows: dict[str, list[torch.Tensor]] = {}
        self._names: list[str] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._panels, self._rows, self._names = [], {}, []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: dict,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking:
            return
        names = list(batch.get("name", []))
        if self.table:
            for key, value in pl_module.per_sample_metrics(batch, outputs).items():
                self._rows.setdefault(key, []).append(value.detach().float())
            self._names.extend(names)
        if trainer.is_global_zero and len(self._panels) < self.num_samples:
            size = next(v for v in batch.values() if isinstance(v, torch.Tensor)).shape[0]
            for i in range(min(size, self.num_samples - len(self._panels))):
                pictures = pl_module.visualize(batch, outputs, index=i)
                strip = np.concatenate(list(pictures.values()), axis=1)
                caption = names[i] if i < len(names) else f"sample {len(self._panels)}"
                caption += " | " + " / ".join(pictures)
                self._panels.append((caption, strip))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        columns = {}
        for key, chunks in self._rows.items():
            values = torch.cat(chunks) if chunks else torch.empty(0, device=pl_module.device)
            # every process holds its share of the samples; rank 0 tables all of them
            gathered = pl_module.all_gather(values)
            columns[key] = gathered.reshape(-1).cpu().numpy()
        if not trainer.is_global_zero:
            return
        step = trainer.global_step
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                self._log_wandb(logger, columns, step)
            elif isinstance(logger, TensorBoardLogger):
                for i, (_, strip) in enumerate(self._panels):
                    logger.experiment.add_image(f"val/panel_{i}", strip, step, dataformats="HWC")
            else:
                self._save_png(trainer, logger, step)

    def _log_wandb(self, logger: WandbLogger, columns: dict[str, np.ndarray], step: int) -> None:
        import wandb

        if self._panels:
            logger.log_image(
                key="val/panel",
                images=[strip for _, strip in self._panels],
                caption=[caption for caption, _ in self._panels],
                step=step,
            )
        if self.table and columns:
            n = len(next(iter(columns.values())))
            names = self._names if len(self._names) == n else [str(i) for i in range(n)]
            table = wandb.Table(columns=["sample", *columns])
            for i in range(n):
                table.add_data(names[i], *(float(columns[k][i]) for k in columns))
            logger.experiment.log({"val/per_sample": table}, step=step)

    def _save_png(self, trainer: L.Trainer, logger: Any, step: int) -> None:
        from PIL import Image

        root = Path(
            logger.log_dir if getattr(logger, "log_dir", None) else trainer.default_root_dir
        )
        folder = root / "panels" / f"step{step:07d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, (_, strip) in enumerate(self._panels):
            Image.fromarray(strip).save(folder / f"sample{i}.png")
