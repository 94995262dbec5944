"""Freeze parts of a task while the rest trains (e.g. AnyNet's stages under a new SPN).

Lightning's ``BaseFinetuning`` freezes a batch norm by switching off its running statistics,
so the frozen layer normalises with each batch's statistics, in validation too; a frozen
trained stage must instead keep normalising with its own running statistics. This callback
therefore takes the frozen modules out of gradient descent (``requires_grad=False``) and
keeps them in eval mode (running statistics used and not updated, dropout off) for the whole
fit: from the start of training (validation sets eval mode itself and restores the modes
after), re-applied at every training epoch's start.
"""

from __future__ import annotations

from typing import Any, Sequence

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from lightning_depth.callbacks.init_weights import matches_any

__all__ = ["FreezeWeights", "frozen_modules"]


def frozen_modules(module: nn.Module, patterns: Sequence[str]) -> dict[str, nn.Module]:
    """The submodules of ``module`` whose names (as ``named_modules`` gives them, e.g.
    ``net.feature_extractor``) match one of the ``fnmatch`` patterns, outermost first (a
    match's own submodules are not listed again).

    Raises:
        ValueError: no patterns, a pattern that matches no module (the message lists the
            module names at the top two levels), or nothing left to train.
    """
    if not patterns:
        raise ValueError("FreezeWeights: give at least one module name pattern")
    names = [name for name, _ in module.named_modules() if name]
    unmatched = [p for p in patterns if not any(matches_any(n, [p]) for n in names)]
    if unmatched:
        top = [n for n in names if n.count(".") <= 1]
        raise ValueError(
            f"FreezeWeights: no module matches {unmatched}; the modules are named like {top}"
        )
    chosen: dict[str, nn.Module] = {}
    for name, sub in module.named_modules():
        inside = any(name.startswith(c + ".") for c in chosen)
        if name and not inside and matches_any(name, patterns):
            chosen[name] = sub
    frozen = {id(p) for sub in chosen.values() for p in sub.parameters()}
    if all(id(p) in frozen for p in module.parameters()):
        raise ValueError(f"FreezeWeights: {list(patterns)} freeze every parameter; nothing trains")
    return chosen


class FreezeWeights(Callback):
    """Keep the modules named by ``modules`` (``fnmatch`` patterns over module names) fixed
    while the rest of the task trains.

    Args:
        modules: patterns such as ``net.feature_extractor`` or ``net.cost_filters.*``.

    Example (LightningCLI: AnyNet's three stages fixed, only the SPN trains)::

        --trainer.callbacks+=lightning_depth.callbacks.FreezeWeights
        --trainer.callbacks.modules=[net.feature_extractor,net.cost_filters]
    """

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = list(modules)
        self._frozen: dict[str, nn.Module] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._frozen = frozen_modules(pl_module, self.modules)
        for sub in self._frozen.values():
            sub.requires_grad_(False)
        count = sum(p.numel() for sub in self._frozen.values() for p in sub.parameters())
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        rank_zero_info(
            f"FreezeWeights: {', '.join(self._frozen)} fixed ({count:,} parameters, "
            f"eval mode); {trainable:,} parameters train"
        )

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Here, not in setup: Lightning warns of modules in eval mode just before this hook.
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for sub in self._frozen.values():
            sub.eval()

    def state_dict(self) -> dict[str, Any]:
        return {"modules": self.modules}
