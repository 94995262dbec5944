"""``lightning_depth`` command line.

``fit``/``validate``/``test``/``predict`` go through LightningCLI (configs under
``configs/``); ``synth`` writes generated datasets in the real DIODE / Monkaa layouts.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningCLI

from lightning_depth.tasks.base import DepthTask

TOOLS = ("synth",)


class DepthCLI(LightningCLI):
    """LightningCLI for the depth tasks: any :class:`DepthTask` and any DataModule, chosen by
    ``class_path`` in the config."""


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


def main(argv: Optional[Sequence[str]] = None) -> Optional[int]:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "synth":
        return synth_main(args[1:])
    DepthCLI(
        DepthTask,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=42,
        save_config_kwargs={"overwrite": True},
        args=args,
    )
    return None


if __name__ == "__main__":
    sys.exit(main())
