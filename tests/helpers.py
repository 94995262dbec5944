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


def _fit_one_epoch(args: list[str], root: Path) -> Path:
    from lightning_depth.cli import main

    main(
        ["fit", *args, f"--trainer.default_root_dir={root}", "--trainer.max_epochs=1",
         # Only the latest checkpoint (it writes last.ckpt); no logger, so no panels either.
         "--trainer.callbacks=[{class_path: lightning_depth.callbacks.LatestCheckpoint}]",
         "--trainer.logger=false", "--trainer.enable_progress_bar=false"]
    )  # fmt: skip
    return next(root.rglob("last.ckpt"))


def demo_data_args(task: str, root: Path) -> list[str]:
    """The demo config of ``task`` with tiny generated data under ``root`` (its ``synth_dir``;
    mono 4-1-4 -> depth 2 at 32x32; AnyNet with a 2-channel SPN at 64x128 crops)."""
    if task == "mono":
        return ["--config", "configs/demo/mono.yaml", f"--data.init_args.synth_dir={root / 'diode'}",
                "--data.init_args.synth_samples=12", "--data.init_args.synth_size=[48, 64]",
                "--data.init_args.size=[32, 32]"]  # fmt: skip
    return ["--config", "configs/demo/stereo.yaml", f"--data.init_args.synth_dir={root / 'monkaa'}",
            "--data.init_args.synth_scenes=1", "--data.init_args.synth_frames=6",
            "--data.init_args.synth_size=[64, 128]", "--data.init_args.split_by=frame",
            "--data.init_args.val_fraction=0.3", "--data.init_args.size=[64, 128]"]  # fmt: skip


def demo_checkpoints(root: Path) -> dict[str, Path]:
    """``last.ckpt`` of a one-epoch ``lightning_depth fit`` of each demo on the data of
    :func:`demo_data_args` under ``root``."""
    mono = _fit_one_epoch(
        [*demo_data_args("mono", root), "--model.init_args.net.init_args.depth=2"], root / "mono"
    )
    stereo = _fit_one_epoch(
        [*demo_data_args("stereo", root), "--model.init_args.net.init_args.spn_channels=2"],
        root / "stereo",
    )
    return {"mono": mono, "stereo": stereo}


def quiet_trainer(**overrides) -> L.Trainer:
    """A CPU Trainer for tests: no logger, checkpoints, progress bar or model summary unless
    ``overrides`` say otherwise."""
    settings = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return L.Trainer(**{**settings, **overrides})


class BatchLog(Callback):
    """Appends one JSON line per training batch, ``{"epoch", "batch", "step", "names"}``
    (``step``: the global step after it), to ``path`` as soon as the batch is trained, then
    sleeps ``seconds``: a run slow enough to be signalled mid-epoch, and a record of what it
    trained up to the moment it was stopped."""

    def __init__(self, path: str, seconds: float = 0.0) -> None:
        self.path, self.seconds = Path(path), seconds

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        record = {"epoch": trainer.current_epoch, "batch": batch_idx, "step": trainer.global_step,
                  "names": list(batch["name"])}  # fmt: skip
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.seconds:
            import time

            time.sleep(self.seconds)
