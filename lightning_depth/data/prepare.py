"""``lightning_depth prepare diode|monkaa``: write litdata shards of decoded samples, once.

Reads an extracted folder or the original archives (in place, in archive order, so a
compressed archive is decompressed once), splits the samples exactly as the DataModule's
``source="folder"`` does (same seed, same fractions), and writes each split with
``litdata.optimize`` to ``<out>/{train,val,test}``, a local folder or ``s3://bucket/prefix``.

Examples::

    lightning_depth prepare diode --src data/diode/val.tar.gz --out /data/diode_shards \\
        --size 256 256
    lightning_depth prepare monkaa --src frames_cleanpass.tar disparity.tar.bz2 \\
        --out s3://bucket/monkaa --endpoint-url http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from litdata import optimize

from lightning_depth.data.archive import (
    ArchiveSet,
    DIODEArchiveDataset,
    MonkaaArchiveDataset,
    list_diode_archive,
    list_monkaa_archive,
)
from lightning_depth.data.diode import (
    list_diode_samples,
    preprocess_depth,
    read_depth_and_mask,
    split_files,
)
from lightning_depth.data.monkaa import (
    MonkaaDataset,
    list_monkaa_samples,
    sample_name,
    split_samples,
)
from lightning_depth.data.streaming import storage_options
from lightning_depth.data.transforms import resize_like_cv2
from lightning_depth.io.errors import DataError
from lightning_depth.io.images import read_rgb

SPLITS = ("train", "val", "test")


def diode_record(files: tuple, size: tuple[int, int]) -> dict:
    """One DIODE shard record from ``(image, depth, mask)`` files: what
    :func:`~lightning_depth.data.diode.load_diode_sample` computes, before the float scaling.

    Returns:
        ``name`` str, ``image`` uint8 (H, W, 3), ``target`` float32 (H, W), ``mask`` uint8
        (H, W), with ``(H, W) = size``.
    """
    image_path, depth_path, mask_path = files
    image = read_rgb(image_path)
    depth, mask = read_depth_and_mask(depth_path, mask_path)
    if image.shape[:2] != depth.shape:
        raise DataError(
            f"image {image_path} is {image.shape[0]}x{image.shape[1]} but depth file "
            f"{depth_path} is {depth.shape[0]}x{depth.shape[1]} (H x W); they must match"
        )
    target, mask = preprocess_depth(depth, mask, size, source=depth_path)
    return {
        "name": Path(image_path).stem,
        "image": np.ascontiguousarray(resize_like_cv2(image, size), dtype=np.uint8),
        "target": np.ascontiguousarray(target[..., 0] if target.ndim == 3 else target),
        "mask": np.ascontiguousarray(mask, dtype=np.uint8),
    }


def _diode_item(item: tuple, size: tuple[int, int], archives: Optional[ArchiveSet]) -> dict:
    if archives is None:
        return diode_record(item, size)
    with archives.spooled(item) as paths:
        record = diode_record(paths, size)
    record["name"] = Path(item[0]).stem
    return record


def _monkaa_item(item: tuple, archives: Optional[ArchiveSet]) -> dict:
    dataset = MonkaaDataset([item]) if archives is None else MonkaaArchiveDataset(archives, [item])
    left, right, disparity = dataset.read(0)
    return {
        "name": sample_name(tuple(Path(p) for p in item)),
        "left": left,
        "right": right,
        "disparity": np.ascontiguousarray(disparity, dtype=np.float32),
    }


def _sources(src: Sequence[str]) -> tuple[Optional[Path], Optional[ArchiveSet]]:
    """A folder or archives."""
    if len(src) == 1 and Path(src[0]).is_dir():
        return Path(src[0]), None
    return None, ArchiveSet(src)


def _write(fn, parts: dict[str, list], out: str, args: argparse.Namespace) -> dict[str, int]:
    written = {}
    for split, items in parts.items():
        if not items:
            continue
        optimize(
            fn=fn,
            inputs=items,
            output_dir=f"{out.rstrip('/')}/{split}",
            chunk_bytes=args.chunk_bytes,
            num_workers=args.num_workers,
            storage_options=storage_options(args.endpoint_url),
            mode="overwrite",
            reorder_files=False,
            verbose=False,
            # optimize() sets the process-wide start method; "fork" is Linux's default, so
            # this leaves the rest of the process as it was (and skips re-importing torch).
            start_method="fork" if "fork" in multiprocessing.get_all_start_methods() else None,
        )
        written[split] = len(items)
    return written


def prepare_diode(args: argparse.Namespace) -> dict[str, int]:
    folder, archives = _sources(args.src)
    if archives is None:
        files = list_diode_samples(folder, args.splits, args.scene_types)
    else:
        files = list_diode_archive(archives, args.splits, args.scene_types)
        # DIODEArchiveDataset checks the triples the same way; build one to fail early.
        DIODEArchiveDataset(archives, files[:1], size=tuple(args.size))
    parts = dict(zip(SPLITS, split_files(files, args.fractions, args.seed)))
    fn = functools.partial(_diode_item, size=tuple(args.size), archives=archives)
    return _write(fn, parts, args.out, args)


def prepare_monkaa(args: argparse.Namespace) -> dict[str, int]:
    folder, archives = _sources(args.src)
    samples = list_monkaa_samples(folder) if archives is None else list_monkaa_archive(archives)
    parts = dict(
        zip(
            SPLITS,
            split_samples(samples, args.val_fraction, args.test_fraction, args.split_by, args.seed),
        )
    )
    fn = functools.partial(_monkaa_item, archives=archives)
    return _write(fn, parts, args.out, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning_depth prepare",
        description="Write litdata shards of DIODE or Monkaa, split as the DataModules split.",
    )
    sub = parser.add_subparsers(dest="dataset", required=True)
    for name in ("diode", "monkaa"):
        p = sub.add_parser(name)
        p.add_argument(
            "--src", nargs="+", required=True, help="extracted folder, or the archive(s)"
        )
        p.add_argument("--out", required=True, help="output folder or s3://bucket/prefix")
        p.add_argument("--seed", type=int, default=42, help="split seed (the DataModule's)")
        p.add_argument("--num-workers", type=int, default=1)
        p.add_argument("--chunk-bytes", default="64MB")
        p.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint")
        if name == "diode":
            p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
            p.add_argument("--splits", nargs="+", default=["val"])
            p.add_argument("--scene-types", nargs="+", default=["indoors", "outdoor"])
            p.add_argument("--fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1))
        else:
            p.add_argument("--val-fraction", type=float, default=0.1)
            p.add_argument("--test-fraction", type=float, default=0.0)
            p.add_argument("--split-by", choices=("frame", "scene"), default="frame")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``lightning_depth prepare``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        written = (prepare_diode if args.dataset == "diode" else prepare_monkaa)(args)
    except DataError as e:
        print(f"lightning_depth prepare: error: {e}", file=sys.stderr)
        return 1
    counts = " ".join(f"{k}={v}" for k, v in written.items())
    print(f"wrote {args.dataset} shards to {args.out}: {counts}")
    return 0
