"""DIODE (monocular depth): listing, the reference preprocessing, Dataset and DataModule.

On-disk layout (as published, and as :func:`~lightning_depth.data.synth.synthesize_diode`
writes it)::

    <root>/<split>/{indoors,outdoor}/scene_XXXXX/scan_XXXXX/<id>.png
                                                           <id>_depth.npy       float32 (H, W, 1)
                                                           <id>_depth_mask.npy  float32 (H, W)

The preprocessing is the original Keras example's (``DataGenerator.load``), reproduced
exactly so parity tests can compare against it; see :func:`preprocess_depth`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from lightning_depth.data.base import SourceDataModule
from lightning_depth.data.loaders import Item, split_item
from lightning_depth.data.transforms import hflip as flip_lr
from lightning_depth.data.transforms import resize_like_cv2, to_chw_tensor
from lightning_depth.io.errors import DataError
from lightning_depth.io.images import check_depth, read_npy, read_rgb

PathLike = Union[str, Path]
SampleFiles = tuple[Path, Path, Path]

DEPTH_SUFFIX = "_depth.npy"
MASK_SUFFIX = "_depth_mask.npy"
LAYOUT = "<root>/<split>/<scene type>/scene_*/scan_*/<id>.png with <id>_depth.npy and <id>_depth_mask.npy"

# Constants of the reference preprocessing: the largest depth kept (m) and the lower clip.
MAX_DEPTH = 300
MIN_DEPTH = 0.1


# -- listing -------------------------------------------------------------------------------


def _find_images(root: Path, splits: Sequence[str], scene_types: Sequence[str]) -> list[Path]:
    images: list[Path] = []
    for split in splits:
        for scene_type in scene_types:
            images.extend((root / split / scene_type).glob("scene_*/scan_*/*.png"))
    return sorted(images)


def list_diode_samples(
    root: PathLike,
    splits: Sequence[str] = ("val",),
    scene_types: Sequence[str] = ("indoors", "outdoor"),
) -> list[SampleFiles]:
    """List ``(image, depth, mask)`` path triples under a DIODE root, sorted by path.

    Args:
        root: the folder holding the split folders (``train``, ``val``).
        splits: split folders to read.
        scene_types: scene type folders to read (``indoors``, ``outdoor``).

    Returns:
        Sorted list of ``(png, depth npy, mask npy)`` paths.

    Raises:
        DataError: no image is found (the message gives the folders searched and the
            expected layout), or an image lacks its depth or mask file (named).
    """
    root = Path(root)
    images = _find_images(root, splits, scene_types)
    if not images:
        searched = ", ".join(str(root / s / t) for s in splits for t in scene_types)
        reason = "does not exist" if not root.exists() else "holds no samples"
        raise DataError(
            f"DIODE root {root} {reason}: searched {searched}; expected the layout {LAYOUT}"
        )
    samples = []
    for image in images:
        stem = image.name[: -len(".png")]
        depth = image.with_name(stem + DEPTH_SUFFIX)
        mask = image.with_name(stem + MASK_SUFFIX)
        for path, what in ((depth, "depth"), (mask, "depth mask")):
            if not path.is_file():
                raise DataError(f"missing {what} file {path} for image {image}")
        samples.append((image, depth, mask))
    return samples


# -- reading and preprocessing -------------------------------------------------------------


def read_depth_and_mask(depth_path: PathLike, mask_path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate a DIODE depth map and its mask.

    Args:
        depth_path: ``<id>_depth.npy``, (H, W, 1) or (H, W), metres.
        mask_path: ``<id>_depth_mask.npy``, (H, W) or (H, W, 1), > 0 where valid.

    Returns:
        depth (H, W) floating, finite, >= 0; mask (H, W) bool.

    Raises:
        DataError: unreadable file, wrong shape, NaN/inf or negative depth, or depth and mask
            of different sizes.
    """
    depth = read_npy(depth_path, ndim=(2, 3), what="depth")
    if depth.ndim == 3 and depth.shape[2] != 1:
        raise DataError(f"depth file {depth_path} has shape {depth.shape}; expected (H, W, 1)")
    depth = depth.reshape(depth.shape[:2])
    if not np.issubdtype(depth.dtype, np.floating):
        depth = depth.astype(np.float32)
    check_depth(depth, depth_path)
    mask = read_npy(mask_path, ndim=(2, 3), what="depth mask")
    if mask.ndim == 3 and mask.shape[2] != 1:
        raise DataError(f"depth mask file {mask_path} has shape {mask.shape}; expected (H, W)")
    mask = mask.reshape(mask.shape[:2])
    if mask.shape != depth.shape:
        raise DataError(
            f"depth mask file {mask_path} is {mask.shape[0]}x{mask.shape[1]} but depth file "
            f"{depth_path} is {depth.shape[0]}x{depth.shape[1]} (H x W); they must match"
        )
    return depth, mask > 0


def preprocess_depth(
    depth: np.ndarray, mask: np.ndarray, size: tuple[int, int], source: PathLike = "depth"
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's depth preprocessing: clipped, masked log-depth, resized.

    ``max_depth = min(300, percentile(depth, 99))`` over all pixels (invalid ones too, as the
    original); depth is clipped to ``[0.1, max_depth]``; its log is taken where the mask is
    valid; invalid pixels are set to 0.1 (the original leaves them uninitialised, we define
    them as the lower clip bound); the result is clipped to ``[0.1, log(max_depth)]`` and
    resized with OpenCV's float ``INTER_LINEAR``. The mask is resized with ``INTER_NEAREST``.
    Numpy's type promotion is kept as in the original (a bound of exactly 300 m makes the
    computation float64), and only the output is cast to float32.

    Args:
        depth: (H, W) metres, finite and >= 0.
        mask: (H, W) bool, valid pixels.
        size: output ``(H, W)``.
        source: file name for error messages.

    Returns:
        target (H', W') float32 log-depth and mask (H', W') bool.

    Raises:
        DataError: the 99th percentile of depth is 0 (over 99% of pixels are 0), where the
            reference would produce ``-inf``.
    """
    max_depth = min(MAX_DEPTH, np.percentile(depth, 99))
    if max_depth <= 0:
        raise DataError(
            f"depth file {source}: over 99% of pixels have depth 0, so the reference's "
            "log(max_depth) is -inf; the sample has no usable depth"
        )
    depth = np.clip(depth, MIN_DEPTH, max_depth)
    log_depth = np.full_like(depth, MIN_DEPTH)
    np.log(depth, out=log_depth, where=mask)
    log_depth = np.clip(log_depth, MIN_DEPTH, np.log(max_depth))
    target = resize_like_cv2(log_depth, size).astype(np.float32)
    return target, resize_like_cv2(mask, size, interpolation="nearest")


def load_diode_sample(
    image_path: PathLike,
    depth_path: PathLike,
    mask_path: PathLike,
    size: tuple[int, int] = (256, 256),
) -> dict[str, torch.Tensor]:
    """Read one DIODE sample and preprocess it as the reference does.

    Image: RGB uint8, resized with OpenCV's fixed-point ``INTER_LINEAR``, then scaled to [0, 1]
    as ``tf.image.convert_image_dtype`` does (``x * float32(1/255)``, which differs from
    ``x / 255`` in the last bit for some values). Depth: see :func:`preprocess_depth`.
    All inputs are validated before any of this.

    Args:
        image_path: ``<id>.png``.
        depth_path: ``<id>_depth.npy``.
        mask_path: ``<id>_depth_mask.npy``.
        size: output ``(H, W)``.

    Returns:
        ``image`` (3, H, W) float32 in [0, 1], ``target`` (1, H, W) float32 log-depth,
        ``mask`` (1, H, W) bool.

    Raises:
        DataError: a file is missing, unreadable or invalid, or the sizes disagree.
    """
    image = read_rgb(image_path)
    depth, mask = read_depth_and_mask(depth_path, mask_path)
    if image.shape[:2] != depth.shape:
        raise DataError(
            f"image {image_path} is {image.shape[0]}x{image.shape[1]} but depth file "
            f"{depth_path} is {depth.shape[0]}x{depth.shape[1]} (H x W); they must match"
        )
    image = resize_like_cv2(image, size).astype(np.float32) * np.float32(1 / 255)
    target, mask = preprocess_depth(depth, mask, size, source=depth_path)
    return {
        "image": to_chw_tensor(image),
        "target": to_chw_tensor(target),
        "mask": to_chw_tensor(mask),
    }


# -- datasets ------------------------------------------------------------------------------


class MonoDepthFilesDataset(Dataset):
    """Base dataset over ``(image, depth, mask)`` file triples.

    Does the reading and preprocessing (:func:`load_diode_sample`), the augmentation (a
    random horizontal flip of image, target and mask together, drawn from torch's RNG, which
    DataLoader seeds per worker) and tensor conversion. Subclasses only list files.

    Args:
        files: ``(image, depth, mask)`` path triples.
        size: output ``(H, W)``.
        hflip: flip each sample left-right with probability 0.5.

    Items are dicts: ``image`` (3, H, W) float32 in [0, 1], ``target`` (1, H, W) float32
    log-depth, ``mask`` (1, H, W) bool, ``name`` str (the sample id).
    """

    def __init__(
        self,
        files: Sequence[tuple[PathLike, PathLike, PathLike]],
        size: tuple[int, int] = (256, 256),
        hflip: bool = False,
    ) -> None:
        self.files = [tuple(Path(p) for p in triple) for triple in files]
        if any(len(triple) != 3 for triple in self.files):
            raise ValueError("files must be (image, depth, mask) path triples")
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (H, W) with H, W >= 1, got {size}")
        self.size = (int(size[0]), int(size[1]))
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.files)

    def sample_name(self, index: int) -> str:
        return self.files[index][0].stem

    def __getitem__(self, item: Item) -> dict:
        # (index, seed) from the training sampler makes the flip reproducible on resume
        index, generator = split_item(item)
        image, depth, mask = self.files[index]
        sample = load_diode_sample(image, depth, mask, size=self.size)
        if self.hflip and bool(torch.rand((), generator=generator) < 0.5):
            sample["image"], sample["target"], sample["mask"] = flip_lr(
                sample["image"], sample["target"], sample["mask"]
            )
        sample["name"] = self.sample_name(index)
        return sample


class DIODEDataset(MonoDepthFilesDataset):
    """DIODE samples; build from a root folder with :meth:`from_root`."""

    @classmethod
    def from_root(
        cls,
        root: PathLike,
        splits: Sequence[str] = ("val",),
        scene_types: Sequence[str] = ("indoors", "outdoor"),
        size: tuple[int, int] = (256, 256),
        hflip: bool = False,
    ) -> DIODEDataset:
        return cls(list_diode_samples(root, splits, scene_types), size=size, hflip=hflip)


# -- splitting and the DataModule ----------------------------------------------------------


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    fractions = [float(f) for f in fractions]
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {tuple(fractions)}")
    return fractions


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Sizes of a split of ``n`` items by ``fractions`` (summing to 1).

    Largest-remainder rounding, then every part with a non-zero fraction gets at least one
    item (taken from the largest part).

    Raises:
        ValueError: fractions negative or not summing to 1.
        DataError: fewer items than parts with a non-zero fraction.
    """
    fractions = _check_fractions(fractions)
    wanted = sum(f > 0 for f in fractions)
    if n < wanted:
        raise DataError(
            f"cannot split {n} samples into {wanted} non-empty parts (fractions "
            f"{tuple(fractions)}); need at least {wanted} samples"
        )
    exact = [f * n for f in fractions]
    counts = [int(np.floor(e)) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fractions):
        if f > 0 and counts[i] == 0:
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    return counts


def split_files(files: Sequence, fractions: Sequence[float], seed: int) -> list[list]:
    """The DataModule's seeded train/val/test split of a sorted sample list.

    Args:
        files: samples, sorted (folder paths, archive members: any items).
        fractions: train/val/test fractions summing to 1 (see :func:`split_counts`).
        seed: seed of the permutation.

    Returns:
        ``[train, val, test]``, each in the order of ``files``.
    """
    counts = split_counts(len(files), fractions)
    order = np.random.default_rng(seed).permutation(len(files))
    parts = np.split(order, np.cumsum(counts)[:-1])
    return [[files[i] for i in sorted(part)] for part in parts]


class DIODEDataModule(SourceDataModule):
    """DIODE monocular depth: a seeded train/val/test split of the samples under ``root``.

    Batches (all loaders) are dicts with ``image`` (B, 3, H, W) float32 in [0, 1],
    ``target`` (B, 1, H, W) float32 log-depth (see :func:`preprocess_depth`), ``mask``
    (B, 1, H, W) bool (valid depth) and ``name`` (list of B sample ids), with
    ``(H, W) = size``.

    Every listed sample falls in exactly one of train/val/test; each split with a non-zero
    fraction gets at least one sample. Only train is shuffled and flipped; predict uses the
    test split. The split is drawn from ``seed`` over the sorted file list, so it is the same
    on every machine and rank.

    Args:
        root: DIODE root folder (holding ``val/`` and/or ``train/``).
        splits: split folders to read samples from.
        scene_types: scene types to read (``indoors``, ``outdoor``).
        fractions: train/val/test fractions, summing to 1.
        seed: seed of the split.
        size: network input ``(H, W)``.
        hflip: random horizontal flips on the train split.
        batch_size: train batch size.
        eval_batch_size: val/test/predict batch size (default ``batch_size``).
        num_workers: DataLoader workers.
        pin_memory: pin batches (for GPU training).
        persistent_workers: keep workers between epochs (only used with ``num_workers > 0``).
        synth_samples: if > 0 and ``root`` holds no samples, ``prepare_data`` writes that many
            generated samples there first (a demo can point at a cache folder).
        synth_size: generated image size ``(W, H)`` (as the real data's 1024x768).
        synth_seed: seed of the generator.
        source: where samples come from: ``"folder"`` (``root``), ``"archive"`` (the
            original ``val.tar.gz`` / ``train.tar.gz`` read in place, see
            :mod:`~lightning_depth.data.archive`) or ``"shards"`` (written by
            ``lightning_depth prepare diode``, see :mod:`~lightning_depth.data.streaming`).
            Each gives the same samples in the same split.
        archives: the archive files, for ``source="archive"``.
        shards: shard folder or ``s3://bucket/prefix`` holding ``train/``, ``val/``, ``test/``,
            for ``source="shards"``; its samples are already resized (``size`` must be the
            one given to ``prepare``, checked per item) and split (``splits``,
            ``scene_types``, ``fractions`` and the split ``seed`` are ``prepare``'s;
            ``seed`` still seeds the shuffle and flips).
        cache_dir: download cache for remote shards (default: a fresh temporary folder per
            run, as a stale litdata cache can hang); for archives, where their member indexes
            are kept (default: indexed again in every run).
        endpoint_url: S3-compatible endpoint for ``s3://`` shards.
    """

    def __init__(
        self,
        root: str,
        splits: tuple[str, ...] = ("val",),
        scene_types: tuple[str, ...] = ("indoors", "outdoor"),
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        seed: int = 42,
        size: tuple[int, int] = (256, 256),
        hflip: bool = True,
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        synth_samples: int = 0,
        synth_size: tuple[int, int] = (256, 192),
        synth_seed: int = 0,
        source: str = "folder",
        archives: Optional[list[str]] = None,
        shards: Optional[str] = None,
        cache_dir: Optional[str] = None,
        endpoint_url: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.check_source(source, archives, shards, batch_size, eval_batch_size)
        if len(fractions) != 3:
            raise ValueError(f"fractions must be (train, val, test), got {fractions}")
        _check_fractions(fractions)
        self.save_hyperparameters()
        self.root = Path(root)
        self.splits = tuple(splits)
        self.scene_types = tuple(scene_types)
        self.fractions = tuple(float(f) for f in fractions)
        self.seed = seed
        self.size = tuple(size)
        self.hflip = hflip
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.synth_samples = synth_samples
        self.synth_size = tuple(synth_size)
        self.synth_seed = synth_seed
        self.train_files: list[SampleFiles] = []
        self.val_files: list[SampleFiles] = []
        self.test_files: list[SampleFiles] = []
        self._is_setup = False

    def prepare_data(self) -> None:
        self.index_archives()
        if self.hparams.source != "folder":
            return
        if self.synth_samples > 0 and not _find_images(self.root, self.splits, self.scene_types):
            from lightning_depth.data.synth import synthesize_diode

            synthesize_diode(
                self.root,
                n=self.synth_samples,
                size=self.synth_size,
                seed=self.synth_seed,
                split=self.splits[0],
                scene_types=self.scene_types,
            )

    def setup(self, stage: Optional[str] = None) -> None:
        if self._is_setup:
            return
        source = self.hparams.source
        if source == "shards":
            self._setup_shards()
            self._is_setup = True
            return
        if source == "archive":
            from lightning_depth.data.archive import (
                ArchiveSet,
                DIODEArchiveDataset,
                list_diode_archive,
            )

            archives = ArchiveSet(self.hparams.archives, index_dir=self.hparams.cache_dir)
            files = list_diode_archive(archives, self.splits, self.scene_types)

            def make(files: list, hflip: bool = False) -> Dataset:
                return DIODEArchiveDataset(archives, files, size=self.size, hflip=hflip)
        else:
            files = list_diode_samples(self.root, self.splits, self.scene_types)

            def make(files: list, hflip: bool = False) -> Dataset:
                return DIODEDataset(files, size=self.size, hflip=hflip)

        self.train_files, self.val_files, self.test_files = split_files(
            files, self.fractions, self.seed
        )
        self.train_set = make(self.train_files, hflip=self.hflip)
        self.val_set = make(self.val_files)
        self.test_set = make(self.test_files)
        self._is_setup = True

    def _setup_shards(self) -> None:
        # Built here, not in __init__: litdata reads the DDP rank when the dataset is made.
        from lightning_depth.data.streaming import DIODEStreamingDataset

        hp = self.hparams
        common = dict(
            seed=self.seed, size=self.size, cache_dir=hp.cache_dir, endpoint_url=hp.endpoint_url
        )
        base = hp.shards.rstrip("/")
        self.train_set = DIODEStreamingDataset(
            f"{base}/train", hflip=self.hflip, shuffle=True, **common
        )
        self.val_set = DIODEStreamingDataset(f"{base}/val", drop_last=False, **common)
        self.test_set = DIODEStreamingDataset(f"{base}/test", drop_last=False, **common)
