"""Warm start: initialise a task's weights from a checkpoint or a shipped pretrained model
before training, leaving out the parts named (e.g. an SPN of another width).

Lightning has no callback for this (``ckpt_path`` resumes a whole run, optimizer and epoch
included, and needs the same architecture); this one loads matching weights only and refuses
any mismatch it was not told to leave out, so a warm start never silently half-loads.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Sequence

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info

from lightning_depth import pretrained
from lightning_depth.deploy.checkpoints import _read_checkpoint

__all__ = ["InitWeights", "load_matching", "matches_any", "source_state_dict"]


def source_state_dict(source: str) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a shipped pretrained model's name (``pretrained.names()``) or of a
    Lightning checkpoint file.

    Raises:
        FileNotFoundError: neither a shipped name nor an existing file (the message lists the
            names and the path looked at).
        DataError: the file cannot be read or is not a Lightning checkpoint (as
            :func:`~lightning_depth.deploy.checkpoints.load_task` reads checkpoints).
    """
    if source in pretrained.names():
        path = pretrained.path(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"InitWeights: {source!r} is neither a shipped pretrained model "
                f"{pretrained.names()} nor a checkpoint file (looked at {path.resolve()})"
            )
    return _read_checkpoint(path)["state_dict"]


def matches_any(name: str, patterns: Sequence[str]) -> bool:
    """Whether ``name`` matches one of the ``fnmatch`` ``patterns`` (case-sensitive)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def load_matching(
    module: torch.nn.Module, state: dict[str, torch.Tensor], exclude: Sequence[str] = ()
) -> dict[str, list[str]]:
    """Copy ``state`` into ``module``, every tensor on both sides except the names matching an
    ``exclude`` pattern (``fnmatch``, e.g. ``net.spn.*``), which keep the module's own values.

    Returns:
        ``{"loaded": [...], "kept": [...]}``: the names copied, and the module's names left
        out by ``exclude``.

    Raises:
        ValueError: a name not left out is missing on one side or has another shape; the
            message lists every one.
    """
    own = module.state_dict()
    wanted = {k for k in own if not matches_any(k, exclude)}
    given = {k for k in state if not matches_any(k, exclude)}
    problems = [f"{k}: not in the source" for k in sorted(wanted - given)]
    problems += [f"{k}: in the source, not in the model" for k in sorted(given - wanted)]
    problems += [
        f"{k}: shape {tuple(state[k].shape)} in the source, {tuple(own[k].shape)} in the model"
        for k in sorted(wanted & given)
        if state[k].shape != own[k].shape
    ]
    if problems:
        raise ValueError(
            "InitWeights: the source does not match the model (leave parts out with exclude, "
            "e.g. 'net.spn.*'): " + "; ".join(problems)
        )
    with torch.no_grad():
        for k in sorted(wanted):
            own[k].copy_(state[k])
    return {"loaded": sorted(wanted), "kept": sorted(set(own) - wanted)}


class InitWeights(Callback):
    """Initialise the task from ``source`` when fitting starts (after the model is built,
    before a resumed run restores its own checkpoint, which then wins).

    Args:
        source: a shipped pretrained model's name (e.g. ``anynet_spn8``) or a checkpoint path.
        exclude: ``fnmatch`` patterns of state-dict names that keep their fresh initialisation
            (on both sides: e.g. ``net.spn.*`` starts an SPN of any width from scratch).

    Example (LightningCLI)::

        --trainer.callbacks+=lightning_depth.callbacks.InitWeights
        --trainer.callbacks.source=anynet_spn8 --trainer.callbacks.exclude=[net.spn.*]
    """

    def __init__(self, source: str, exclude: Sequence[str] = ()) -> None:
        self.source = source
        self.exclude = list(exclude)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        done = load_matching(pl_module, source_state_dict(self.source), self.exclude)
        rank_zero_info(
            f"InitWeights: {len(done['loaded'])} tensors from {self.source}; "
            f"{len(done['kept'])} left as initialised ({', '.join(self.exclude) or 'none'})"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"source": self.source, "exclude": self.exclude}
