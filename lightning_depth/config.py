"""The project's LightningCLI: any :class:`~lightning_depth.tasks.base.DepthTask` and any
DataModule chosen by ``class_path``, with the default callbacks in plain sight.

The default ``trainer.callbacks`` (shown by ``--print_config`` and ``--help``) are
:data:`DEFAULT_CALLBACKS`: the best and the latest checkpoint, learning-rate logging,
validation picture panels and a checkpoint on SIGTERM. A config's ``trainer.callbacks:``
list replaces them; ``trainer.callbacks+:`` (in a config) or ``--trainer.callbacks+=...``
(on the command line) adds to them.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from lightning_depth.callbacks.checkpoints import BestCheckpoint, LatestCheckpoint
from lightning_depth.callbacks.panels import PredictionPanels
from lightning_depth.tasks.base import DepthTask

__all__ = ["DEFAULT_CALLBACKS", "DepthCLI", "LoggedConfig", "build_cli", "check_precision"]

#: ``trainer.callbacks`` unless a config or the command line says otherwise.
DEFAULT_CALLBACKS: list[dict[str, Any]] = [
    {"class_path": "lightning_depth.callbacks.BestCheckpoint"},
    {"class_path": "lightning_depth.callbacks.LatestCheckpoint"},
    {
        "class_path": "lightning.pytorch.callbacks.LearningRateMonitor",
        "init_args": {"logging_interval": "epoch"},
    },
    {"class_path": "lightning_depth.callbacks.PredictionPanels"},
    {"class_path": "lightning_depth.callbacks.CheckpointOnSigterm"},
]


class LoggedConfig(SaveConfigCallback):
    """Saves the resolved config next to the logs, as LightningCLI does, and also puts it in
    the W&B run's config (LightningCLI does not do that by itself) together with the
    model's parameter count."""

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        params = sum(p.numel() for p in pl_module.parameters())
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                config = self.parser.dump(self.config, skip_none=False, format="json")
                logger.experiment.config.update(
                    {"config": json.loads(config), "num_parameters": params},
                    allow_val_change=True,
                )
            else:
                logger.log_hyperparams({"num_parameters": params})


class DepthCLI(LightningCLI):
    """LightningCLI for the depth tasks.

    Before ``fit``/``validate``/``test`` it refuses ``bf16`` precision on a GPU without
    bfloat16 support (V100, GTX 10xx) with a clear message, rather than letting it fail or
    crawl later.
    """

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.set_defaults({"trainer.callbacks": DEFAULT_CALLBACKS})

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        check_precision(
            config.get("trainer", {}).get("precision"), config.get("trainer", {}).get("accelerator")
        )

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        # The defaults follow the trainer's switches: no default checkpoints when
        # checkpointing is off, no learning-rate or panel logging without a logger.
        trainer = self._get(self.config_init, "trainer", default={})
        callbacks = kwargs.get("callbacks", trainer.get("callbacks")) or []
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        if trainer.get("enable_checkpointing") is False:
            callbacks = [
                c for c in callbacks if not isinstance(c, (BestCheckpoint, LatestCheckpoint))
            ]
        if trainer.get("logger") is False:
            callbacks = [
                c for c in callbacks if not isinstance(c, (LearningRateMonitor, PredictionPanels))
            ]
        kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)


def check_precision(precision: object, accelerator: object) -> None:
    """Raise if ``precision`` asks for bfloat16 on a CUDA device that lacks it."""
    if precision is None or "bf16" not in str(precision):
        return
    if str(accelerator) in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            name = torch.cuda.get_device_name()
            raise ValueError(
                f"precision={precision} needs a GPU with bfloat16 support (Ampere or newer); "
                f"{name} has none. Use configs/trainer/v100.yaml (16-mixed) or 32-true."
            )


def build_cli(args: Sequence[str], run: bool = True) -> DepthCLI:
    """The project's LightningCLI over ``args``: with ``run=True`` they start with a
    subcommand (``fit``, ``test``, ...), with ``run=False`` they are only configs and
    overrides, and the model, data and trainer are built but not run."""
    return DepthCLI(
        DepthTask,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=42,
        save_config_callback=LoggedConfig,
        save_config_kwargs={"overwrite": True},
        args=list(args),
        run=run,
    )
