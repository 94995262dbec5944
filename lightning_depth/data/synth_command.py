"""``lightning_depth synth diode|monkaa --out DIR ...``: write a generated dataset in the real
DIODE or Monkaa layout (sizes are ``HxW``)."""

from __future__ import annotations

import argparse
import inspect
from typing import Sequence

from lightning_depth.data.diode import synthesize_diode
from lightning_depth.data.monkaa import synthesize_monkaa
from lightning_depth.data.transforms import format_size, parse_size

__all__ = ["build_parser", "main"]


def _size_argument(parser: argparse.ArgumentParser, function) -> None:
    default = inspect.signature(function).parameters["size"].default
    parser.add_argument(
        "--size", type=parse_size, default=default, help=f"HxW, default {format_size(default)}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning_depth synth", description="Write a generated dataset in a real layout."
    )
    sub = parser.add_subparsers(dest="dataset", required=True)
    diode = sub.add_parser(
        "diode", help="DIODE layout: <out>/<split>/{indoors,outdoor}/scene_*/scan_*/"
    )
    diode.add_argument("--out", required=True)
    diode.add_argument("--n", type=int, default=64, help="number of samples")
    _size_argument(diode, synthesize_diode)
    diode.add_argument("--seed", type=int, default=0)
    diode.add_argument("--split", default="val")
    monkaa = sub.add_parser("monkaa", help="Monkaa layout: frames_cleanpass/ and disparity/")
    monkaa.add_argument("--out", required=True)
    monkaa.add_argument("--scenes", type=int, default=2)
    monkaa.add_argument("--frames", type=int, default=8, help="frames per scene")
    _size_argument(monkaa, synthesize_monkaa)
    monkaa.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str]) -> int:
    """Entry point of ``lightning_depth synth``; returns the exit status."""
    args = build_parser().parse_args(list(argv))
    if args.dataset == "diode":
        paths = synthesize_diode(
            args.out, n=args.n, size=args.size, seed=args.seed, split=args.split
        )
    else:
        paths = synthesize_monkaa(
            args.out, scenes=args.scenes, frames=args.frames, size=args.size, seed=args.seed
        )
    print(f"wrote {len(paths)} samples to {args.out}")
    return 0
