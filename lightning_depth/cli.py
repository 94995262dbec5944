"""``lightning_depth`` command line.

``fit``/``validate``/``test``/``predict`` go through LightningCLI (configs under
``configs/``); ``synth`` writes generated datasets in the real DIODE / Monkaa layouts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

import lightning as L
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from lightning_depth.tasks.base import DepthTask

#: commands that are not LightningCLI subcommands: name -> "module:function", where the
#: function takes the remaining arguments and returns an exit code (imported on use).
TOOLS = {
    "synth": "lightning_depth.cli:synth_main",
    "export": "lightning_depth.deploy.export:main",
    "compress": "lightning_depth.deploy.compress:main",
    "prepare": "lightning_depth.data.prepare:main",
    "ablate": "lightning_depth.ablation:main",
}


class LoggedConfig(SaveConfigCallback):
    """Saves the resolved config next to the logs, as LightningCLI does, and also puts it in
    the W&B run's config (LightningCLI does not do that by itself) together with the
    model's parameter count."""

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        params = sum(p.numel() for p in pl_module.parameters())
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                config = self.parser.dump(self.config, skip_none=False, format="json")
                logger.experiment.config.update(
                    {"config": json.loads(config), "num_parameters": params},
                    allow_val_change=True,
                )
            else:
                logger.log_hyperparams({"num_parameters": params})


class DepthCLI(LightningCLI):
    """LightningCLI for the depth tasks: any :class:`DepthTask` and any DataModule, chosen by
    ``class_path`` in the config.

    Before ``fit``/``validate``/``test`` it refuses ``bf16`` precision on a GPU without
    bfloat16 support (V100, GTX 10xx) with a clear message, rather than letting it fail or
    crawl later.
    """

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        check_precision(
            config.get("trainer", {}).get("precision"), config.get("trainer", {}).get("accelerator")
        )


def check_precision(precision: object, accelerator: object) -> None:
    """Raise if ``precision`` asks for bfloat16 on a CUDA device that lacks it."""
    if precision is None or "bf16" not in str(precision):
        return
    if str(accelerator) in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            name = torch.cuda.get_device_name()
            raise ValueError(
                f"precision={precision} needs a GPU with bfloat16 support (Ampere or newer); "
                f"{name} has none. Use configs/trainer/v100.yaml (16-mixed) or 32-true."
            )


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like WxH (e.g. 256x192), got {text!r}"
        ) from None
    return w, h


def synth_main(argv: Sequence[str]) -> int:
    """``lightning_depth synth diode|monkaa --out DIR ...``."""
    parser = argparse.ArgumentParser(
        prog="lightning_depth synth", description="Write a generated dataset in a real layout."
    )
    sub = parser.add_subparsers(dest="dataset", required=True)
    diode = sub.add_parser(
        "diode", help="DIODE layout: <out>/<split>/{indoors,outdoor}/scene_*/scan_*/"
    )
    diode.add_argument("--out", required=True)
    diode.add_argument("--n", type=int, default=64, help="number of samples")
    diode.add_argument("--size", type=_size, default=(256, 192), help="WxH")
    diode.add_argument("--seed", type=int, default=0)
    diode.add_argument("--split", default="val")
    monkaa = sub.add_parser("monkaa", help="Monkaa layout: frames_cleanpass/ and disparity/")
    monkaa.add_argument("--out", required=True)
    monkaa.add_argument("--scenes", type=int, default=2)
    monkaa.add_argument("--frames", type=int, default=8, help="frames per scene")
    monkaa.add_argument("--size", type=_size, default=(320, 192), help="WxH")
    monkaa.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(list(argv))
    if args.dataset == "diode":
        from lightning_depth.data.synth import synthesize_diode

        paths = synthesize_diode(
            args.out, n=args.n, size=args.size, seed=args.seed, split=args.split
        )
    else:
        from lightning_depth.data.monkaa import synthesize_monkaa

        paths = synthesize_monkaa(
            args.out, scenes=args.scenes, frames=args.frames, size=args.size, seed=args.seed
        )
    print(f"wrote {len(paths)} samples to {args.out}")
    return 0


def build_cli(args: Sequence[str], run: bool = True) -> DepthCLI:
    """The project's LightningCLI over ``args``: with ``run=True`` they start with a
    subcommand (``fit``, ``test``, ...), with ``run=False`` they are only configs and
    overrides, and the model, data and trainer are built but not run."""
    return DepthCLI(
        DepthTask,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=42,
        save_config_callback=LoggedConfig,
        save_config_kwargs={"overwrite": True},
        args=list(args),
        run=run,
    )


def main(argv: Optional[Sequence[str]] = None) -> Optional[int]:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TOOLS:
        import importlib

        module, function = TOOLS[args[0]].split(":")
        return getattr(importlib.import_module(module), function)(args[1:])
    build_cli(args)
    return None


if __name__ == "__main__":
    sys.exit(main())
