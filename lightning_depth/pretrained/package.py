"""Turn the checkpoint a recipe produced into a shipped pretrained model.

``python -m lightning_depth.pretrained.package --ckpt CKPT --name NAME --recipe CONFIG
[--card-json EXTRA.json]`` writes ``lightning_depth/pretrained/weights/NAME.ckpt`` (the
weights, the LightningCLI config rebuilding the network and the task record; the optimiser
state, loops and callbacks are dropped) and ``NAME.json``, the model card: recipe, seed, steps,
the checkpoint's sha256 and the figures passed in ``--card-json`` (accuracy on the generated
validation set and on the real pair, measured by ``benchmarks/bench_real.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Optional, Sequence

import torch
import yaml

from lightning_depth.deploy.checkpoints import _read_checkpoint, _task_record
from lightning_depth.pretrained import WEIGHTS

__all__ = ["KEPT", "main", "slim_checkpoint"]

#: what a shipped checkpoint keeps of a Lightning checkpoint
KEPT = (
    "state_dict",
    "hyper_parameters",
    "datamodule_hyper_parameters",
    "task",
    "epoch",
    "global_step",
    "pytorch-lightning_version",
)


def slim_checkpoint(src: Path, dst: Path) -> dict:
    """Write ``src`` without optimiser state, loops and callbacks to ``dst``; returns what
    was kept (the task record is checked first)."""
    ckpt = _read_checkpoint(src)
    _task_record(ckpt, src)
    slim = {k: ckpt[k] for k in KEPT if k in ckpt}
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(slim, dst)
    return slim


def _recipe_seed(recipe: Path) -> Optional[int]:
    """The recipe's ``seed_everything`` (``None`` if it sets none)."""
    config = yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}
    return config.get("seed_everything")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_depth.pretrained.package")
    parser.add_argument("--ckpt", required=True, help="checkpoint the recipe produced")
    parser.add_argument("--name", required=True)
    parser.add_argument("--recipe", required=True, help="the recipe's config file")
    parser.add_argument("--card-json", default=None, help="extra card fields (measurements)")
    parser.add_argument("--out", default=str(WEIGHTS))
    args = parser.parse_args(argv)
    out = Path(args.out)
    dst = out / f"{args.name}.ckpt"
    slim = slim_checkpoint(Path(args.ckpt), dst)
    card = {
        "name": args.name,
        "task": slim["task"]["name"],
        "recipe": args.recipe,
        "seed": _recipe_seed(Path(args.recipe)),
        "epochs": None if slim.get("epoch") is None else slim["epoch"] + 1,
        "steps": slim.get("global_step"),
        "train_size": slim["task"].get("train_size"),
        "sha256": hashlib.sha256(dst.read_bytes()).hexdigest(),
        "bytes": dst.stat().st_size,
    }
    if args.card_json:
        card.update(json.loads(Path(args.card_json).read_text(encoding="utf-8")))
    dst.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(card))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
