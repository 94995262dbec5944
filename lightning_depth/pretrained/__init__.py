"""Pretrained models that ship inside the package (offline; no downloads).

Each model ``<name>`` is a slim Lightning checkpoint ``weights/<name>.ckpt`` (weights, the
LightningCLI config that rebuilds the network, the task record; no optimiser state) and a
model card ``weights/<name>.json``: the recipe (``configs/pretrain/<name>.yaml``), its seed,
steps and data, and the accuracy measured on the generated validation set and on the real
Middlebury Motorcycle pair. Each is written by :func:`lightning_depth.pretrained.package.main`
from the checkpoint its recipe produced.

Example:
    >>> from lightning_depth import pretrained
    >>> pretrained.names()  # doctest: +SKIP
    ['anynet_spn8']
    >>> task = pretrained.load("anynet_spn8")  # doctest: +SKIP

On the command line: ``lightning_depth predict --config configs/predict/stereo.yaml
--pretrained anynet_spn8 --data.init_args.inputs='[pairs/]'``.
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning_depth.deploy.checkpoints import load_task
from lightning_depth.tasks.base import DepthTask

__all__ = ["WEIGHTS", "card", "load", "names", "path"]

#: folder of the shipped checkpoints and cards
WEIGHTS = Path(__file__).resolve().parent / "weights"


def names() -> list[str]:
    """Names of the shipped models (those with both a checkpoint and a card)."""
    return sorted(p.stem for p in WEIGHTS.glob("*.ckpt") if p.with_suffix(".json").is_file())


def path(name: str) -> Path:
    """The checkpoint file of a shipped model.

    Raises:
        ValueError: no shipped model of that name (the message lists those there are).
    """
    shipped = names()
    if name not in shipped:
        listed = ", ".join(shipped) if shipped else "none"
        raise ValueError(
            f"no pretrained model {name!r} in {WEIGHTS} (shipped: {listed}); train one with "
            f"its recipe: lightning_depth fit --config configs/pretrain/{name}.yaml"
        )
    return WEIGHTS / f"{name}.ckpt"


def card(name: str) -> dict:
    """The model card of a shipped model (recipe, data, steps, measured accuracy)."""
    return json.loads(path(name).with_suffix(".json").read_text(encoding="utf-8"))


def load(name: str, map_location: str = "cpu") -> DepthTask:
    """The shipped model ``name`` as its task module, in eval mode."""
    return load_task(path(name), map_location=map_location)
