"""Reading task checkpoints: which task a checkpoint holds, and the task module itself.

A :class:`~lightning_depth.tasks.base.DepthTask` stores ``checkpoint["task"] =
{"class_path": "pkg.module.Class", "name": ...}`` (see ``DepthTask.on_save_checkpoint``);
export, compression and the predict writer read it here, for any task.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Optional, Union

import torch

from lightning_depth.io.errors import DataError
from lightning_depth.tasks.base import DepthTask

__all__ = ["check_checkpoint_task", "checkpoint_task", "load_task"]

PathLike = Union[str, Path]


def _read_checkpoint(path: PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"checkpoint {path} {'is not a file' if path.exists() else 'does not exist'}"
        )
    try:
        # Our own checkpoints hold the LightningCLI config (plain containers) and tensors.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch.load raises many types for a bad file
        raise DataError(f"checkpoint {path} cannot be read: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DataError(f"checkpoint {path} is not a Lightning checkpoint (no 'state_dict')")
    return ckpt


def _task_record(checkpoint: Union[PathLike, dict], path: Optional[PathLike] = None) -> dict:
    """``checkpoint["task"]`` (``class_path`` and ``name``), checked; ``path`` names a
    checkpoint given as a dict in errors.

    Checkpoints written by ``lightning_depth fit`` before the record existed name their class
    in LightningCLI's ``hyper_parameters["_class_path"]``; the record is rebuilt from it."""
    if not isinstance(checkpoint, dict):
        path, checkpoint = checkpoint, _read_checkpoint(checkpoint)
    record = checkpoint.get("task")
    class_path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    if record is None and isinstance(class_path, str):
        cls = _task_class(path, class_path)
        record = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "name": cls.name}
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("class_path"), str)
        or not isinstance(record.get("name"), str)
    ):
        where = "" if path is None else f" {path}"
        raise DataError(
            f"checkpoint{where} has no task record (checkpoint['task'] with 'class_path' and "
            f"'name', got {record!r}): it was not written by a lightning_depth DepthTask, or "
            "predates the record; load it in Python with <TaskClass>.load_from_checkpoint(path)"
        )
    return record


def checkpoint_task(checkpoint: Union[PathLike, dict]) -> str:
    """The name of the task a checkpoint was trained for (``DepthTask.name``: ``"mono"``,
    ``"stereo"``, ...), from its task record.

    Args:
        checkpoint: a checkpoint file, or a checkpoint already loaded.

    Raises:
        DataError: unreadable, not a Lightning checkpoint, or without a task record.
    """
    return _task_record(checkpoint)["name"]


def check_checkpoint_task(path: PathLike, expected: str) -> None:
    """Raise a clear error if the checkpoint at ``path`` does not hold an ``expected`` task
    (a ``DepthTask.name``)."""
    record = _task_record(path)
    name = record["name"]
    if name != expected:
        cls = record["class_path"].rsplit(".", 1)[-1]
        raise DataError(
            f"checkpoint {path} holds a {name} model ({cls}) but this run builds a {expected} "
            f"model; use configs/predict/{name}.yaml or a {expected} checkpoint"
        )


def _task_class(path: PathLike, class_path: str) -> type[DepthTask]:
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as e:
        raise DataError(
            f"checkpoint {path} names its task class {class_path!r}, which cannot be imported: "
            f"{type(e).__name__}: {e}"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, DepthTask)):
        raise DataError(
            f"checkpoint {path} names its task class {class_path!r}, which is not a DepthTask"
        )
    return cls


def load_task(path: PathLike, map_location: str = "cpu") -> DepthTask:
    """The task module of a checkpoint written by ``lightning_depth fit``, in eval mode; its
    class is the one named in the checkpoint's task record.

    Raises:
        DataError: unreadable, no task record, a class that cannot be imported, or without
            the LightningCLI config needed to rebuild the network.
    """
    ckpt = _read_checkpoint(path)
    cls = _task_class(path, _task_record(ckpt, path)["class_path"])
    # Tasks built in Python get their network as a module, which is not stored among the
    # hyper-parameters; rebuilding would then make the default network instead.
    takes_net = "net" in inspect.signature(cls.__init__).parameters
    if takes_net and not (ckpt.get("hyper_parameters") or {}).get("net"):
        raise DataError(
            f"checkpoint {path} has no network config in its hyper-parameters (it was not "
            "written by `lightning_depth fit`); load it in Python with "
            f"{cls.__name__}.load_from_checkpoint(path, net=...)"
        )
    return cls.load_from_checkpoint(path, map_location=map_location).eval()
