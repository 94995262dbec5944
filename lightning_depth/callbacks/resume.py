"""A checkpoint on SIGTERM or SIGUSR1, from which ``--ckpt_path last`` resumes exactly."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from lightning_depth.callbacks.checkpoints import LatestCheckpoint

__all__ = ["CheckpointOnSigterm", "exit_status"]


def exit_status(signum: int) -> int:
    """The shell's exit status of a process ended by signal ``signum``: ``128 + signum``
    (143 for SIGTERM, 138 for SIGUSR1), so a job scheduler sees that it did not finish."""
    return 128 + int(signum)


class CheckpointOnSigterm(Callback):
    """On SIGTERM (a cluster's pre-emption, ``kill``) or SIGUSR1 (what a cluster sends before
    the time limit, e.g. ``sbatch --signal=SIGUSR1@90``) training stops after the current
    batch, ``last.ckpt`` is written into the checkpoint folder (replacing the link to the
    latest epoch), and the process exits with status 128 + the signal (143, 138), not 0.
    ``--ckpt_path last`` then resumes exactly where it stopped: the training loaders' state
    is in the checkpoint, so the interrupted epoch goes on with the batches not yet trained
    (:class:`~lightning_depth.data.loaders.ResumableLoader`, and the shard loader).

    SIGTERM is Lightning's own handling (its handler flags the trainer, the loops stop at the
    next batch boundary with ``SIGTERMException``, which reaches :meth:`on_exception`);
    SIGUSR1 is turned into a SIGTERM to this process (from the sanity check or training on;
    before, it ends the process with status 138 and nothing to save). Under SLURM with Lightning's
    auto-requeue (``SLURMEnvironment(auto_requeue=True)``, its default under ``srun``)
    Lightning handles SIGUSR1 itself (an ``hpc_ckpt_<n>.ckpt`` and ``scontrol requeue``),
    and this callback leaves that signal alone. During ``validate``/``test``/``predict`` a
    signal stops the run with the same status and writes nothing.
    """

    #: the signals handled here besides SIGTERM
    extra_signals = (signal.SIGUSR1,)

    def __init__(self) -> None:
        self.signal: Optional[int] = None
        self._previous: dict[int, Any] = {}

    # -- SIGUSR1 --------------------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.signal = None

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)

    def _install(self, trainer: L.Trainer) -> None:
        # After Lightning has registered its handlers (its teardown then restores the ones
        # from before, ours not among them); until then SIGUSR1 ends the process (status
        # 138 all the same), with nothing trained yet to save.
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        connector = getattr(trainer, "_accelerator_connector", None)
        environment = getattr(connector, "cluster_environment", None)
        if isinstance(environment, SLURMEnvironment) and environment.auto_requeue:
            return  # Lightning's SLURM requeue owns SIGUSR1
        for signum in self.extra_signals:
            self._previous[signum] = signal.signal(signum, self._as_sigterm)

    def _as_sigterm(self, signum: int, frame: Optional[FrameType]) -> None:
        rank_zero_info(f"Received {signal.Signals(signum).name}: stopping after this batch")
        self.signal = signum
        os.kill(os.getpid(), signal.SIGTERM)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore_handlers()

    # -- the checkpoint and the exit status -----------------------------------------------

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        self._restore_handlers()
        signum = self.signal or signal.SIGTERM
        # SIGTERMException is a SystemExit without a status, i.e. 0; a scheduler must see
        # that the job did not finish (and may requeue it).
        exception.code = exit_status(signum)
        name = signal.Signals(signum).name
        if trainer.state.fn != TrainerFn.FITTING:
            rank_zero_info(
                f"{name}: stopped {trainer.state.fn.value}; exit status {exception.code}"
            )
            return
        folder = self._folder(trainer)
        if folder is None:
            rank_zero_info(f"{name}: no checkpoint folder (checkpointing is off); nothing saved")
            return
        path = Path(folder) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt"
        if trainer.is_global_zero and (path.is_symlink() or path.exists()):
            path.unlink()
        trainer.save_checkpoint(path)
        rank_zero_info(
            f"{name}: saved {path} (epoch {trainer.current_epoch}, global step "
            f"{trainer.global_step}); resume with --ckpt_path last; exit status {exception.code}"
        )

    @staticmethod
    def _folder(trainer: L.Trainer) -> Optional[str]:
        callbacks = [c for c in trainer.checkpoint_callbacks if getattr(c, "dirpath", None)]
        latest = [c for c in callbacks if isinstance(c, LatestCheckpoint)]
        chosen = (latest or callbacks or [None])[0]
        return None if chosen is None else str(chosen.dirpath)
