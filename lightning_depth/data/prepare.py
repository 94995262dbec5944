"""``lightning_depth prepare diode|monkaa``: write litdata shards of decoded samples, once.

Reads an extracted folder or the original archives (in place, in archive order, so a
compressed archive is decompressed once), splits the samples by the dataset's DataModule
itself (so exactly as ``source="folder"`` does, same seed, same fractions, after the same
pre-flight check of every sample: bad samples stop it before anything is written, all listed),
and writes each
split's *records* (what the dataset's transform computes before anything random, see
:mod:`~lightning_depth.data.streaming`) with ``litdata.optimize`` to ``<out>/{train,val,test}``,
a local folder or ``s3://bucket/prefix``. Nothing here knows a dataset: the DataModule's
layout reads, its transform makes the records.

The output must be new or empty: ``--overwrite`` first removes the ``train/``, ``val/`` and
``test/`` shards found there (so no split of an earlier run is left beside the new ones) and
deletes nothing else.

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
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from litdata import optimize

from lightning_depth.data.base import DepthDataModule, SampleDataset
from lightning_depth.data.check import ON_BAD_SAMPLES
from lightning_depth.data.diode import DIODEDataModule
from lightning_depth.data.monkaa import MonkaaDataModule
from lightning_depth.data.streaming import storage_options
from lightning_depth.data.transforms import format_size, parse_size
from lightning_depth.io.errors import DataError

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
    overwrite: bool = False,
) -> dict[str, int]:
    """Write the records of ``datamodule``'s folder or archives, split as it splits them, to
    ``<out>/<split>``; a split without samples is not written. ``out`` must be new or empty;
    with ``overwrite``, its old ``train``/``val``/``test`` shards are removed first (once the
    samples have passed the check).

    Returns:
        the number of samples written per split.

    Raises:
        DataError: ``out`` is not empty (without ``overwrite``), or bad samples (the
            pre-flight check, as the DataModule's ``setup``).
    """
    check_output(out, overwrite, endpoint_url)
    source, parts = datamodule.checked_splits()
    if overwrite:
        remove_splits(out, endpoint_url)
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


def _s3_location(out: str) -> tuple[str, str]:
    bucket, _, prefix = out[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")


def _s3_client(endpoint_url: Optional[str]):
    import boto3

    return boto3.client("s3", **storage_options(endpoint_url))


def existing_entries(out: str, endpoint_url: Optional[str] = None) -> list[str]:
    """The names directly under ``out`` (a folder or ``s3://bucket/prefix``); [] if none."""
    if out.startswith("s3://"):
        bucket, prefix = _s3_location(out)
        start = f"{prefix}/" if prefix else ""
        listed = _s3_client(endpoint_url).list_objects_v2(
            Bucket=bucket, Prefix=start, Delimiter="/", MaxKeys=100
        )
        names = [c["Prefix"][len(start) :].rstrip("/") for c in listed.get("CommonPrefixes", [])]
        return sorted(names + [o["Key"][len(start) :] for o in listed.get("Contents", [])])
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"output {out} is a file, not a folder")
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def remove_splits(out: str, endpoint_url: Optional[str] = None) -> None:
    """Remove the ``train``/``val``/``test`` shards under ``out`` (nothing else)."""
    if out.startswith("s3://"):
        bucket, prefix = _s3_location(out)
        client = _s3_client(endpoint_url)
        for split in SPLITS:
            start = f"{prefix}/{split}/" if prefix else f"{split}/"
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=start
            ):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        return
    for split in SPLITS:
        path = Path(out) / split
        if path.is_dir():
            shutil.rmtree(path)


def check_output(out: str, overwrite: bool, endpoint_url: Optional[str] = None) -> None:
    """Refuse a non-empty ``out`` unless ``overwrite``.

    Raises:
        DataError: ``out`` holds something and ``overwrite`` is false.
    """
    names = existing_entries(out, endpoint_url)
    if names and not overwrite:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise DataError(
            f"output {out} is not empty (it holds {shown}); pass --overwrite to replace the "
            "shards there (train/, val/ and test/ are removed first, nothing else), or choose "
            "an empty or new output"
        )


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
        p.add_argument(
            "--on-bad-samples",
            choices=ON_BAD_SAMPLES,
            default="error",
            help="bad samples stop prepare (listed), or are left out with a written report",
        )
        p.add_argument(
            "--overwrite",
            action="store_true",
            help="replace the shards in a non-empty --out (its train/, val/, test/ only)",
        )
    return parser


def _datamodule(args: argparse.Namespace) -> DepthDataModule:
    cls, options = DATASETS[args.dataset]
    names = ("seed", "val_fraction", "test_fraction", "on_bad_samples", *options)
    kwargs = {k: getattr(args, k) for k in names}
    if len(args.src) == 1 and Path(args.src[0]).is_dir():
        return cls(args.src[0], source="folder", **kwargs)
    return cls(source="archive", archives=list(args.src), **kwargs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``lightning_depth prepare``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        written = write_shards(
            _datamodule(args),
            args.out,
            args.chunk_bytes,
            args.num_workers,
            args.endpoint_url,
            overwrite=args.overwrite,
        )
    except ValueError as e:  # DataError included: a bad source, sample or argument
        print(f"lightning_depth prepare: error: {e}", file=sys.stderr)
        return 1
    counts = " ".join(f"{k}={v}" for k, v in written.items())
    print(f"wrote {args.dataset} shards to {args.out}: {counts}")
    return 0
