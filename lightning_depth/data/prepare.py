"""``lightning_depth prepare diode|monkaa``: write litdata shards of decoded samples, once.

Reads an extracted folder or the original archives (in place, in archive order, so a
compressed archive is decompressed once), splits the samples by the dataset's DataModule
itself (so exactly as ``source="folder"`` does, same seed, same fractions), and writes each
split's *records* (what the dataset's transform computes before anything random, see
:mod:`~lightning_depth.data.streaming`) with ``litdata.optimize`` to ``<out>/{train,val,test}``,
a local folder or ``s3://bucket/prefix``. Nothing here knows a dataset: the DataModule's
layout reads, its transform makes the records.

Examples::

    lightning_depth prepare diode --src data/diode/val.tar.gz --out /data/diode_shards \\
        --size 256x256
    lightning_depth prepare monkaa --src frames_cleanpass.tar disparity.tar.bz2 \\
        --out s3://bucket/monkaa --endpoint-url http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
import inspect
import multiprocessing
import sys
from pathlib import Path
from typing import Optional, Sequence

from litdata import optimize

from lightning_depth.data.base import DepthDataModule, SampleDataset
from lightning_depth.data.diode import DIODEDataModule
from lightning_depth.data.monkaa import MonkaaDataModule
from lightning_depth.data.streaming import storage_options
from lightning_depth.data.transforms import format_size, parse_size

__all__ = ["build_parser", "main", "write_shards"]

SPLITS = ("train", "val", "test")

#: the datasets ``prepare`` writes, and their DataModule arguments it takes (beyond the
#: split's ``seed``, ``val_fraction`` and ``test_fraction``)
DATASETS: dict[str, tuple[type[DepthDataModule], tuple[str, ...]]] = {
    "diode": (DIODEDataModule, ("size", "splits", "scene_types")),
    "monkaa": (MonkaaDataModule, ("split_by",)),
}


def write_shards(
    datamodule: DepthDataModule,
    out: str,
    chunk_bytes: str = "64MB",
    num_workers: int = 1,
    endpoint_url: Optional[str] = None,
) -> dict[str, int]:
    """Write the records of ``datamodule``'s folder or archives, split as it splits them, to
    ``<out>/<split>``; a split without samples is not written.

    Returns:
        the number of samples written per split.
    """
    source, parts = datamodule.list_splits()
    transform = datamodule.make_transform(training=False)
    written = {}
    for split, samples in zip(SPLITS, parts):
        if not samples:
            continue
        dataset = SampleDataset(datamodule.layout, samples, transform, source)
        optimize(
            fn=dataset.record,
            inputs=list(range(len(dataset))),
            output_dir=f"{out.rstrip('/')}/{split}",
            chunk_bytes=chunk_bytes,
            num_workers=num_workers,
            storage_options=storage_options(endpoint_url),
            mode="overwrite",
            reorder_files=False,
            verbose=False,
            # optimize() sets the process-wide start method; "fork" is Linux's default, so
            # this leaves the rest of the process as it was (and skips re-importing torch).
            start_method="fork" if "fork" in multiprocessing.get_all_start_methods() else None,
        )
        written[split] = len(samples)
    return written


def _default(cls: type, name: str):
    return inspect.signature(cls.__init__).parameters[name].default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning_depth prepare",
        description="Write litdata shards of DIODE or Monkaa, split as the DataModules split.",
    )
    sub = parser.add_subparsers(dest="dataset", required=True)
    for name, (cls, options) in DATASETS.items():
        p = sub.add_parser(name, help=f"defaults: {cls.__name__}'s")
        p.add_argument(
            "--src", nargs="+", required=True, help="extracted folder, or the archive(s)"
        )
        p.add_argument("--out", required=True, help="output folder or s3://bucket/prefix")
        p.add_argument("--seed", type=int, default=42, help="split seed (the DataModule's)")
        for fraction in ("val_fraction", "test_fraction"):
            p.add_argument(
                f"--{fraction.replace('_', '-')}", type=float, default=_default(cls, fraction)
            )
        if "size" in options:
            size = _default(cls, "size")
            p.add_argument(
                "--size", type=parse_size, default=size, help=f"HxW, default {format_size(size)}"
            )
        if "splits" in options:
            p.add_argument("--splits", nargs="+", default=list(_default(cls, "splits")))
        if "scene_types" in options:
            p.add_argument("--scene-types", nargs="+", default=list(_default(cls, "scene_types")))
        if "split_by" in options:
            p.add_argument(
                "--split-by", choices=("frame", "scene"), default=_default(cls, "split_by")
            )
        p.add_argument("--num-workers", type=int, default=1)
        p.add_argument("--chunk-bytes", default="64MB")
        p.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint")
    return parser


def _datamodule(args: argparse.Namespace) -> DepthDataModule:
    cls, options = DATASETS[args.dataset]
    kwargs = {k: getattr(args, k) for k in ("seed", "val_fraction", "test_fraction", *options)}
    if len(args.src) == 1 and Path(args.src[0]).is_dir():
        return cls(args.src[0], source="folder", **kwargs)
    return cls(".", source="archive", archives=list(args.src), **kwargs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``lightning_depth prepare``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        written = write_shards(
            _datamodule(args), args.out, args.chunk_bytes, args.num_workers, args.endpoint_url
        )
    except ValueError as e:  # DataError included: a bad source, sample or argument
        print(f"lightning_depth prepare: error: {e}", file=sys.stderr)
        return 1
    counts = " ".join(f"{k}={v}" for k, v in written.items())
    print(f"wrote {args.dataset} shards to {args.out}: {counts}")
    return 0
