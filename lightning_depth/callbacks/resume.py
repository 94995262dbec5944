"""A checkpoint on SIGTERM, from which ``--ckpt_path last`` resumes."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


class CheckpointOnSigterm(Callback):
    """On SIGTERM (a cluster's pre-emption, ``kill``) Lightning stops after the current batch;
    this callback then writes ``last.ckpt`` into the checkpoint folder, replacing the link to
    the latest epoch, so ``--ckpt_path last`` resumes from the interrupted state (the
    interrupted epoch starts over; Lightning restarts epochs whose data loader is not
    stateful).

    Exact resume at epoch boundaries needs no random state in the checkpoint: training order
    and augmentation are functions of ``(seed, epoch)``
    (:class:`~lightning_depth.data.loaders.SeededShuffleSampler`).
    """

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        checkpoint = next(
            (cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath), None
        )
        if checkpoint is None:
            return
        path = Path(checkpoint.dirpath) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt"
        if trainer.is_global_zero and (path.is_symlink() or path.exists()):
            path.unlink()
        trainer.save_checkpoint(path)
