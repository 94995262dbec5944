"""The default checkpoints of a run: the best epoch on the task's metric, and the latest."""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["BestCheckpoint", "LatestCheckpoint"]


class BestCheckpoint(ModelCheckpoint):
    """The ``save_top_k`` best epochs on a monitored metric.

    ``monitor=None`` (the default) watches the task's own metric and direction
    (``DepthTask.monitor``/``monitor_mode``: ``val/ssim`` max for mono, ``val/3px`` min for
    stereo), resolved when training starts; the file name then carries it, e.g.
    ``best-epoch007-val_ssim0.7102.ckpt``.

    Args:
        dirpath: folder (default: Lightning's, under the logger's or the root folder).
        monitor: logged metric key; ``None``: the task's.
        mode: ``"min"`` or ``"max"``; ``None``: the task's (or ``"min"`` with a ``monitor``).
        filename: Lightning file-name template; ``None``: ``best-epoch{epoch}-<metric>{value}``.
        save_top_k: how many of the best to keep.
    """

    def __init__(
        self,
        dirpath: Optional[str] = None,
        monitor: Optional[str] = None,
        mode: Optional[str] = None,
        filename: Optional[str] = None,
        save_top_k: int = 1,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            monitor=monitor,
            mode=mode or "min",
            filename=filename,
            save_top_k=save_top_k,
            auto_insert_metric_name=False,
        )
        self._task_monitor = monitor is None
        self._task_mode = mode is None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._task_monitor:
            self.monitor = pl_module.monitor
        if self._task_mode:
            # A metric given without a direction is minimised, as Lightning does.
            mode = pl_module.monitor_mode if self._task_monitor else "min"
            self.mode = mode
            self.kth_value = torch.tensor(torch.inf if mode == "min" else -torch.inf)
        if self.filename is None:
            metric = self.monitor.replace("/", "_")
            self.filename = "best-epoch{epoch:03d}-" + metric + "{" + self.monitor + ":.4f}"
        super().setup(trainer, pl_module, stage)


class LatestCheckpoint(ModelCheckpoint):
    """The latest epoch, with ``last.ckpt`` linked to it, so ``--ckpt_path last`` resumes from
    the newest state even when it is not the best (Lightning's own ``save_last`` on a
    monitored checkpoint only refreshes on epochs that improved the metric).

    Args:
        dirpath: folder (default: Lightning's, under the logger's or the root folder).
    """

    def __init__(self, dirpath: Optional[str] = None) -> None:
        super().__init__(
            dirpath=dirpath,
            save_top_k=1,
            filename="latest-epoch{epoch:03d}",
            save_last="link",
            auto_insert_metric_name=False,
        )
