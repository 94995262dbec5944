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
import logging
import time
from typing import Any, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from lightning_depth import pretrained
from lightning_depth.callbacks.checkpoints import (
    BestCheckpoint,
    LatestCheckpoint,
    resolve_ckpt_path,
)
from lightning_depth.callbacks.panels import PredictionPanels
from lightning_depth.callbacks.summary import summary_lines
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
    crawl later. After each it prints a summary ending in one ``RESULT key=value ...`` line
    (global rank 0 only; see :mod:`~lightning_depth.callbacks.summary`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()
        silence_tips()
        super().__init__(*args, **kwargs)

    def parse_arguments(self, parser: Any, args: Any) -> None:
        # LightningCLI warns when ``args`` is given while sys.argv holds arguments; here the
        # tools (compress, ablate) pass lists they built on purpose from their own command
        # line, so the warning would only be noise. Otherwise as LightningCLI parses.
        if args is None or isinstance(args, (list, tuple)):
            self.config = parser.parse_args(args)
        else:  # a dict or Namespace
            self.config = parser.parse_object(args)
        # --ckpt_path last|best: the run's checkpoint in <default_root_dir>/checkpoints, in
        # any process, or an error that says where it looked (never from scratch). Resolved
        # to a file here, before the classes are built, so that LightningCLI rebuilds the
        # model from the checkpoint's own settings as it does for a file path.
        subcommand = self.config.get("subcommand")
        if subcommand and self.config[subcommand].get("pretrained"):
            self._use_pretrained(subcommand, self.config[subcommand])
        if subcommand and self.config[subcommand].get("ckpt_path") is not None:
            section = self.config[subcommand]
            section["ckpt_path"] = resolve_ckpt_path(
                section.get("trainer"), section.get("ckpt_path")
            )

    @staticmethod
    def _use_pretrained(subcommand: str, section: Any) -> None:
        """``--pretrained NAME``: the shipped checkpoint (:mod:`lightning_depth.pretrained`)
        as ``ckpt_path``, so LightningCLI rebuilds the network from its saved config."""
        name = section["pretrained"]
        if subcommand == "fit":
            raise ValueError(
                "--pretrained is for validate, test and predict; fit resumes from --ckpt_path"
            )
        if section.get("ckpt_path") is not None:
            raise ValueError(
                f"give either --pretrained ({name}) or --ckpt_path ({section['ckpt_path']}), "
                "not both"
            )
        section["ckpt_path"] = str(pretrained.path(name))

    def after_fit(self) -> None:
        self._summarize("fit")

    def after_validate(self) -> None:
        self._summarize("validate")

    def after_test(self) -> None:
        self._summarize("test")

    def _summarize(self, stage: str) -> None:
        if self.trainer.is_global_zero:
            seconds = time.perf_counter() - self.started
            print("\n".join(summary_lines(self.trainer, stage, seconds)), flush=True)

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.set_defaults({"trainer.callbacks": DEFAULT_CALLBACKS})
        parser.add_argument(
            "--pretrained",
            type=Optional[str],
            default=None,
            help="a model shipped in the package (lightning_depth.pretrained.names()) instead "
            "of --ckpt_path (validate, test, predict)",
        )

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


class _DropTips(logging.Filter):
    """Drops Lightning's advertising tips (``💡 Tip: ... litlogger ...``, logged at INFO on
    every run); every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def silence_tips() -> None:
    """Install :class:`_DropTips` on the loggers Lightning's ``rank_zero_info`` writes to
    (there is no setting for it); idempotent."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())


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


def build_cli(args: Optional[Sequence[str]], run: bool = True) -> DepthCLI:
    """The project's LightningCLI over ``args``: with ``run=True`` they start with a
    subcommand (``fit``, ``test``, ...), with ``run=False`` they are only configs and
    overrides, and the model, data and trainer are built but not run. ``None``: the
    process's own command line (``sys.argv[1:]``)."""
    return DepthCLI(
        DepthTask,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=42,
        save_config_callback=LoggedConfig,
        save_config_kwargs={"overwrite": True},
        args=None if args is None else list(args),
        run=run,
    )


#: what ``check-data`` adds after the user's arguments: a trainer that needs no accelerator
#: and starts nothing (the check reads only the data section)
CHECK_DATA_TRAINER = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.num_nodes=1",
    "--trainer.strategy=auto",
    "--trainer.precision=32-true",
    "--trainer.logger=false",
    "--trainer.callbacks=[]",
]


def check_data_main(argv: Sequence[str]) -> int:
    """Check every sample of a config's data, as fit does before its first step, and stop.

    ``lightning_depth check-data --config CONFIG [--data.init_args.X=...]`` builds the
    config's DataModule (generated data are written first if the config asks for them) and
    runs its pre-flight check. Exit status 0 when every sample is good (or, with
    ``on_bad_samples=exclude``, once the report is written), 1 with the list of bad samples.
    """
    import sys

    from lightning_depth.data.base import DepthDataModule
    from lightning_depth.io.errors import DataError

    args = list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(check_data_main.__doc__)
        return 0 if args else 2
    cli = build_cli([*args, *CHECK_DATA_TRAINER], run=False)
    data = cli.datamodule
    if not isinstance(data, DepthDataModule) or data.source == "shards":
        print(
            f"lightning_depth check-data: error: {type(data).__name__} (source "
            f"{getattr(data, 'source', '?')}) has no pre-flight check; it checks folders and "
            "archives of the package's DataModules (DIODE, Monkaa, Middlebury, KITTI; shards "
            "were checked by prepare)",
            file=sys.stderr,
        )
        return 2
    try:
        data.prepare_data()
        data.checked_splits()
    except (DataError, ValueError) as e:
        print(f"lightning_depth check-data: error: {e}", file=sys.stderr)
        return 1
    print(data.check_result.summary())
    if data.excluded_report is not None:
        print(f"excluded {len(data.check_result.bad)} bad samples; report: {data.excluded_report}")
    return 0
