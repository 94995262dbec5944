"""The default checkpoints of a run: the best epoch on the task's metric, and the latest; and
what ``--ckpt_path last`` / ``--ckpt_path best`` mean.

A run's checkpoints live in ``<trainer.default_root_dir>/checkpoints/`` (:func:`run_checkpoint_dir`),
not under the logger's version folder: a new process of the same run (a resumed job, a
``validate`` or ``test`` afterwards) has a new logger version but finds the same folder.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Optional

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.rank_zero import rank_zero_info

__all__ = [
    "BestCheckpoint",
    "LatestCheckpoint",
    "resolve_ckpt_path",
    "run_checkpoint_dir",
]

#: ``--ckpt_path`` values resolved by :func:`resolve_ckpt_path`
SPECIAL_CKPT_PATHS = ("last", "best")


def run_checkpoint_dir(trainer: L.Trainer) -> str:
    """The run's checkpoint folder: ``<trainer.default_root_dir>/checkpoints``."""
    return _run_folder(str(trainer.default_root_dir))


def _run_folder(root: str) -> str:
    path = os.path.join(root, "checkpoints")
    return os.path.realpath(os.path.expanduser(path)) if _is_local_file_protocol(path) else path


class _RunFolderCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose default folder is :func:`run_checkpoint_dir` (Lightning's
    default is the logger's version folder, a new one in every process)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = run_checkpoint_dir(trainer)
        super().setup(trainer, pl_module, stage)


class BestCheckpoint(_RunFolderCheckpoint):
    """The ``save_top_k`` best epochs on a monitored metric.

    ``monitor=None`` (the default) watches the task's own metric and direction
    (``DepthTask.monitor``/``monitor_mode``: ``val/ssim`` max for mono, ``val/3px`` min for
    stereo), resolved when training starts; the file name then carries it, e.g.
    ``best-epoch007-val_ssim0.7102.ckpt``.

    Args:
        dirpath: folder (default: the run's, ``<trainer.default_root_dir>/checkpoints``).
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


class LatestCheckpoint(_RunFolderCheckpoint):
    """The latest epoch, with ``last.ckpt`` linked to it, so ``--ckpt_path last`` resumes from
    the newest state even when it is not the best (Lightning's own ``save_last`` on a
    monitored checkpoint only refreshes on epochs that improved the metric).

    Args:
        dirpath: folder (default: the run's, ``<trainer.default_root_dir>/checkpoints``).
    """

    def __init__(self, dirpath: Optional[str] = None) -> None:
        super().__init__(
            dirpath=dirpath,
            save_top_k=1,
            filename="latest-epoch{epoch:03d}",
            save_last="link",
            auto_insert_metric_name=False,
        )


# -- --ckpt_path last | best -------------------------------------------------------------------


def _mtime(path: str) -> Optional[float]:
    try:
        return os.path.getmtime(path)  # follows links; a dangling link has none
    except OSError:
        return None


def _newest(paths: list[str]) -> Optional[str]:
    dated = [(t, p) for p in paths if (t := _mtime(p)) is not None]
    return max(dated)[1] if dated else None


def _last(folders: list[str], root: str) -> tuple[str, str]:
    patterns = [os.path.join(f, f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}*.ckpt") for f in folders]
    # Lightning's SLURM auto-requeue saves hpc_ckpt_<n>.ckpt into the root folder.
    patterns.append(os.path.join(root, "hpc_ckpt_*.ckpt"))
    path = _newest([p for pattern in patterns for p in glob.glob(pattern)])
    if path is None:
        raise FileNotFoundError(
            "--ckpt_path last: no checkpoint of this run to load; looked for "
            + ", ".join(patterns)
            + ". Train without --ckpt_path first (checkpoints go to "
            "<trainer.default_root_dir>/checkpoints), use the same --trainer.default_root_dir "
            "as the run, or pass a checkpoint file."
        )
    return path, "the newest of " + ", ".join(patterns)


def _best(folders: list[str]) -> tuple[str, str]:
    files = [p for f in folders for p in glob.glob(os.path.join(f, "*.ckpt"))]
    newest = _newest(files)
    where = ", ".join(os.path.join(f, "*.ckpt") for f in folders)
    if newest is None:
        raise FileNotFoundError(
            f"--ckpt_path best: no checkpoint of this run to choose from in {where}. Train "
            "without --ckpt_path first (checkpoints go to <trainer.default_root_dir>/"
            "checkpoints), use the same --trainer.default_root_dir as the run, or pass a "
            "checkpoint file."
        )
    # Every checkpoint holds the BestCheckpoint's state as it was when it was written: the
    # newest one knows the run's best file and its score.
    callbacks = torch.load(newest, map_location="cpu", mmap=True, weights_only=False).get(
        "callbacks", {}
    )
    states = [
        s
        for key, s in callbacks.items()
        if key.startswith(BestCheckpoint.__qualname__ + "{") and s.get("best_model_path")
    ]
    if len(states) != 1:
        raise ValueError(
            f"--ckpt_path best: the newest checkpoint {newest} records "
            f"{len(states)} BestCheckpoint best files (expected one); pass a checkpoint file."
        )
    state = states[0]
    name = os.path.basename(state["best_model_path"])
    path = os.path.join(os.path.dirname(newest), name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--ckpt_path best: the newest checkpoint {newest} names {name} as the best "
            f"({state['monitor']}), but {path} does not exist; pass a checkpoint file."
        )
    score = float(state["best_model_score"])
    return path, f"the best {state['monitor']} ({score:.4f}) recorded in {newest}"


def _resolved(name: str, path: str, why: str) -> str:
    rank_zero_info(f"--ckpt_path {name}: loading {path} ({why})")
    return path


def resolve_ckpt_path(trainer_config: Any, ckpt_path: Optional[str]) -> Optional[str]:
    """``--ckpt_path`` as a file, from the parsed (not yet built) trainer config: ``last`` is
    the newest ``last*.ckpt`` of the run (or a newer SLURM ``hpc_ckpt_*.ckpt`` in the root
    folder), ``best`` the best ``BestCheckpoint`` file of the run; anything else is returned
    as it is. Resolved before the classes are built, so that LightningCLI rebuilds the model
    from the checkpoint's own hyper-parameters, as it does for a checkpoint file.

    The run's folder is ``<trainer.default_root_dir>/checkpoints`` (default root: the working
    folder), or our checkpoint callbacks' ``dirpath`` where the config sets one; for ``last``
    also the folder of a ``ModelCheckpoint`` with a ``dirpath`` (one without writes under the
    logger's version folder, which a new process cannot know). Unlike Lightning's own
    ``last``/``best``, this works in a new process (Lightning's ``best`` only knows the
    current process's fit) and never goes on without a checkpoint.

    Raises:
        FileNotFoundError: no such checkpoint; the message says where it looked.
    """
    if ckpt_path not in SPECIAL_CKPT_PATHS:
        return ckpt_path
    root = str(_get(trainer_config, "default_root_dir") or os.getcwd())
    run_folder = _run_folder(root)
    callbacks = _get(trainer_config, "callbacks") or []
    callbacks = callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]
    ours = {BestCheckpoint.__name__} | (
        {LatestCheckpoint.__name__} if ckpt_path == "last" else set()
    )
    folders: list[str] = []
    for callback in callbacks:
        name = str(_get(callback, "class_path") or "").rsplit(".", 1)[-1]
        dirpath = _get(_get(callback, "init_args") or {}, "dirpath")
        if name in ours:
            folder = str(dirpath or run_folder)
        elif ckpt_path == "last" and name == ModelCheckpoint.__name__ and dirpath:
            folder = str(dirpath)
        else:
            continue
        if folder not in folders:
            folders.append(folder)
    folders = folders or [run_folder]
    if ckpt_path == "last":
        return _resolved("last", *_last(folders, root))
    return _resolved("best", *_best(folders))


def _get(config: Any, key: str) -> Any:
    """``config[key]`` of a dict or jsonargparse Namespace, ``None`` when absent."""
    if config is None:
        return None
    getter = getattr(config, "get", None)
    return getter(key) if callable(getter) else getattr(config, key, None)
