"""``lightning_depth synth diode|monkaa --out DIR ...``: write a generated dataset in the real
DIODE or Monkaa layout (sizes are ``HxW``). ``monkaa --style things`` writes FlyingThings-style
scenes (:mod:`~lightning_depth.data.synth_things`), the stereo data that transfers to real
pairs; ``diode --style photo|things`` photo-textured rooms and streets, ``things`` with
FlyingThings-style clutter (:mod:`~lightning_depth.data.synth_diode`); Monkaa scenes are
rendered by ``--workers`` processes (default: the CPUs available).

``--out`` must be new or empty; ``--overwrite`` replaces a set generated there before (removed
first, so two sizes never mix) and deletes nothing else (see
:mod:`~lightning_depth.data.generated`)."""

from __future__ import annotations

import argparse
import inspect
import sys
from typing import Sequence

from lightning_depth.data.diode import diode_generated, synthesize_diode
from lightning_depth.data.generated import write_set
from lightning_depth.data.monkaa import monkaa_generated, synthesize_monkaa
from lightning_depth.data.synth_diode import STYLES as DIODE_STYLES
from lightning_depth.data.synth_monkaa import STYLES
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
    diode.add_argument(
        "--style",
        choices=DIODE_STYLES,
        default="procedural",
        help="procedural: patterned rooms and streets (the demo); photo: photographs on most "
        "surfaces; things: photo plus FlyingThings-style clutter (objects near the camera, "
        "many behind, thin bars)",
    )
    _overwrite_argument(diode)
    monkaa = sub.add_parser("monkaa", help="Monkaa layout: frames_cleanpass/ and disparity/")
    monkaa.add_argument("--out", required=True)
    monkaa.add_argument(
        "--style",
        choices=STYLES,
        default="rooms",
        help="rooms: textured rooms, a short zoom per scene (the demo); things: "
        "FlyingThings-style photo-textured clutter (transfers to real pairs)",
    )
    monkaa.add_argument("--scenes", type=int, default=2)
    monkaa.add_argument(
        "--frames", type=int, default=None, help="frames per scene (default: rooms 8, things 1)"
    )
    _size_argument(monkaa, synthesize_monkaa)
    monkaa.add_argument("--seed", type=int, default=0)
    monkaa.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes rendering scenes (default: the CPUs available; same files either way)",
    )
    _overwrite_argument(monkaa)
    return parser


def _overwrite_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a set generated in --out before (nothing else is deleted)",
    )


def main(argv: Sequence[str]) -> int:
    """Entry point of ``lightning_depth synth``; returns the exit status."""
    args = build_parser().parse_args(list(argv))
    try:
        if args.dataset == "diode":
            generated = diode_generated(
                args.n, args.size, args.seed, split=args.split, style=args.style
            )
        else:
            frames = args.frames if args.frames is not None else (8 if args.style == "rooms" else 1)
            generated = monkaa_generated(
                args.scenes, frames, args.size, args.seed, style=args.style, workers=args.workers
            )
        write_set(generated, args.out, overwrite=args.overwrite)
    except ValueError as e:  # DataError included: a non-empty output, a bad argument
        print(f"lightning_depth synth: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {generated.description} to {args.out}")
    return 0
