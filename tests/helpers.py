"""Test-only callbacks, importable by the subprocesses that distributed tests launch."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class SampleRecorder(Callback):
    """Writes, per process, the sample names each epoch trained and validated on, and the
    validation metrics as logged (after the cross-process sync), to ``<out>/rank<r>.json``."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.train: dict[int, list[str]] = {}
        self.val: dict[int, list[str]] = {}
        self.metrics: dict[str, float] = {}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx) -> None:
        self.train.setdefault(trainer.current_epoch, []).extend(batch["name"])

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if not trainer.sanity_checking:
            self.val.setdefault(trainer.current_epoch, []).extend(batch["name"])

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.metrics = {
                k: float(v)
                for k, v in trainer.callback_metrics.items()
                if k.startswith("val/") and isinstance(v, torch.Tensor) and v.numel() == 1
            }
            self._write(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        self._write(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        record = {"train": self.train, "val": self.val, "metrics": self.metrics}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


class RunConfigProbe(Callback):
    """Writes the W&B run's config (as the run holds it at the end of fit) to ``out``."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        self.out.write_text(json.dumps(dict(trainer.logger.experiment.config), default=str))
