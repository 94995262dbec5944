"""DIODE (monocular depth): its layout, the reference preprocessing, dataset and DataModule.

On-disk layout (as published, and as :func:`synthesize_diode` writes it)::

    <root>/<split>/{indoors,outdoor}/scene_XXXXX/scan_XXXXX/<id>.png
                                                           <id>_depth.npy       float32 (H, W, 1)
                                                           <id>_depth_mask.npy  float32 (H, W)

The preprocessing is the original Keras example's (``DataGenerator.load``), reproduced
exactly so parity tests can compare against it; see :func:`preprocess_depth`. The same
:class:`DIODETransform` serves the folder, archive and shard sources, and
``lightning_depth predict`` uses its image functions.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path, PurePath
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from lightning_depth.data.base import DepthDataModule, SampleDataset
from lightning_depth.data.check import probe_rgb
from lightning_depth.data.generated import Generated
from lightning_depth.data.layout import Folder, Layout, Sample, Source
from lightning_depth.data.synth_diode import STYLES as DIODE_STYLES
from lightning_depth.data.synth_diode import diode_samples
from lightning_depth.data.transforms import (
    check_size,
    format_size,
    random_hflip,
    resize_like_cv2,
    to_chw_tensor,
)
from lightning_depth.encoding import MAX_DEPTH, MIN_DEPTH, to_unit
from lightning_depth.io.errors import DataError
from lightning_depth.io.images import check_depth, read_npy, read_rgb

__all__ = [
    "DIODEDataModule",
    "DIODEDataset",
    "DIODELayout",
    "DIODETransform",
    "diode_generated",
    "image_to_tensor",
    "list_diode_samples",
    "load_diode_sample",
    "preprocess_depth",
    "read_depth_and_mask",
    "synthesize_diode",
]

PathLike = Union[str, os.PathLike]

SCENE_TYPES = ("indoors", "outdoor")
DEPTH_SUFFIX = "_depth.npy"
MASK_SUFFIX = "_depth_mask.npy"
LAYOUT = (
    "<root>/<split>/<scene type>/scene_*/scan_*/<id>.png with <id>_depth.npy and "
    "<id>_depth_mask.npy"
)


# -- layout --------------------------------------------------------------------------------


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
            f"depth mask file {mask_path} is {format_size(mask.shape)} but depth file "
            f"{depth_path} is {format_size(depth.shape)} (HxW); they must match"
        )
    return depth, mask > 0


def _check_sizes(
    image_path: PathLike, image_size: Sequence[int], depth_path: PathLike, depth_size: Sequence[int]
) -> None:
    if tuple(image_size[:2]) != tuple(depth_size[:2]):
        raise DataError(
            f"image {image_path} is {format_size(image_size)} but depth file "
            f"{depth_path} is {format_size(depth_size)} (HxW); they must match"
        )


class DIODELayout(Layout):
    """DIODE's layout (see the module docstring) for some splits and scene types.

    Args:
        splits: split folders to read (``train``, ``val``).
        scene_types: scene type folders to read (``indoors``, ``outdoor``).
    """

    name = "DIODE"
    description = LAYOUT
    files = ("image", "depth", "depth mask")

    def __init__(
        self, splits: Sequence[str] = ("val",), scene_types: Sequence[str] = SCENE_TYPES
    ) -> None:
        self.splits = tuple(splits)
        self.scene_types = tuple(scene_types)

    def patterns(self) -> list[str]:
        return [f"{s}/{t}/scene_*/scan_*/*.png" for s in self.splits for t in self.scene_types]

    def companions(self, image: PurePath) -> tuple[PurePath, PurePath]:
        stem = image.name[: -len(".png")]
        return image.with_name(stem + DEPTH_SUFFIX), image.with_name(stem + MASK_SUFFIX)

    def read(self, paths: Sequence[PathLike]) -> dict[str, np.ndarray]:
        """``image`` uint8 (H, W, 3), ``depth`` (H, W) metres, ``mask`` bool (H, W), checked
        (see :func:`read_depth_and_mask`; the image must have the depth's size)."""
        image_path, depth_path, mask_path = paths
        image = read_rgb(image_path)
        depth, mask = read_depth_and_mask(depth_path, mask_path)
        _check_sizes(image_path, image.shape[:2], depth_path, depth.shape)
        return {"image": image, "depth": depth, "mask": mask}

    def check(self, paths: Sequence[PathLike]) -> None:
        """What :meth:`read` checks, with the image's header and checksums verified instead
        of decoding it (:func:`~lightning_depth.data.check.probe_rgb`)."""
        image_path, depth_path, mask_path = paths
        size = probe_rgb(image_path)
        depth, _ = read_depth_and_mask(depth_path, mask_path)
        _check_sizes(image_path, size, depth_path, depth.shape)

    def write(
        self,
        root: PathLike,
        split: str,
        scene_type: str,
        scene: int,
        scan: int,
        view: int,
        image: np.ndarray,
        depth: np.ndarray,
        mask: np.ndarray,
    ) -> Path:
        """Write one sample as DIODE stores it (depth 0 where invalid); returns the image path."""
        folder = Path(root) / split / scene_type / f"scene_{scene:05d}" / f"scan_{scan:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{scene:05d}_{scan:05d}_{scene_type}_{view // 100:03d}_{view % 100:03d}"
        Image.fromarray(image).save(folder / f"{stem}.png")
        np.save(
            folder / f"{stem}{DEPTH_SUFFIX}", np.where(mask, depth, 0).astype(np.float32)[..., None]
        )
        np.save(folder / f"{stem}{MASK_SUFFIX}", mask.astype(np.float32))
        return folder / f"{stem}.png"


def list_diode_samples(
    root: Union[PathLike, Source],
    splits: Sequence[str] = ("val",),
    scene_types: Sequence[str] = SCENE_TYPES,
) -> list[Sample]:
    """``(image, depth, mask)`` triples under a DIODE folder (or in archives), sorted.

    Args:
        root: the folder holding the split folders, or a source such as an
            :class:`~lightning_depth.data.archive.ArchiveSet`.
        splits, scene_types: as :class:`DIODELayout`.

    Raises:
        DataError: no image is found (the message gives the folders searched and the
            expected layout), or an image lacks its depth or mask file (named).
    """
    source = Folder(root) if isinstance(root, (str, os.PathLike)) else root
    return DIODELayout(splits, scene_types).list(source)


# -- transform -----------------------------------------------------------------------------


def preprocess_depth(
    depth: np.ndarray, mask: np.ndarray, size: tuple[int, int], source: PathLike = "depth"
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's depth preprocessing: clipped, masked log-depth, resized.

    ``max_depth = min(MAX_DEPTH, percentile(depth, 99))`` over all pixels (invalid ones too,
    as the original); depth is clipped to ``[MIN_DEPTH, max_depth]``; its log is taken where
    the mask is valid; invalid pixels are set to ``MIN_DEPTH`` (the original leaves them
    uninitialised, we define them as the lower clip bound); the result is clipped to
    ``[MIN_DEPTH, log(max_depth)]`` and resized with OpenCV's float ``INTER_LINEAR``. The mask
    is resized with ``INTER_NEAREST``. Numpy's type promotion is kept as in the original (a
    bound of exactly 300 m makes the computation float64), and only the output is cast to
    float32.

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
    # the reference's bound is the int 300: an int keeps numpy's type promotion as there
    max_depth = min(int(MAX_DEPTH), np.percentile(depth, 99))
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


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """The mono networks' input: uint8 ``(H, W, 3)`` -> float32 ``(3, H, W)`` in [0, 1]
    (:func:`~lightning_depth.encoding.to_unit`, as ``tf.image.convert_image_dtype``)."""
    return to_chw_tensor(to_unit(image))


class DIODETransform:
    """DIODE's transform: the reference preprocessing at ``size``, then an optional flip.

    Record (what shards store): ``image`` uint8 (H, W, 3) resized with OpenCV's fixed-point
    ``INTER_LINEAR``, ``target`` float32 (H, W) log-depth and ``mask`` uint8 (H, W) (see
    :func:`preprocess_depth`). Item: ``image`` (3, H, W) float32 in [0, 1]
    (:func:`image_to_tensor`), ``target`` (1, H, W) float32, ``mask`` (1, H, W) bool, flipped
    left-right together with probability 0.5 if ``hflip``.

    Args:
        size: output ``(H, W)``.
        hflip: random horizontal flips.
    """

    fields = {"image": (np.uint8, 3), "target": (np.float32, 2), "mask": (np.uint8, 2)}

    def __init__(self, size: Sequence[int] = (256, 256), hflip: bool = False) -> None:
        self.size = check_size(size, "size")
        self.hflip = hflip

    def record(self, arrays: dict[str, np.ndarray], files: Sequence[str]) -> dict[str, np.ndarray]:
        target, mask = preprocess_depth(arrays["depth"], arrays["mask"], self.size, files[1])
        return {
            "image": np.ascontiguousarray(resize_like_cv2(arrays["image"], self.size)),
            "target": np.ascontiguousarray(target),
            "mask": np.ascontiguousarray(mask, dtype=np.uint8),
        }

    def __call__(
        self,
        record: dict[str, np.ndarray],
        generator: Optional[torch.Generator] = None,
        where: str = "sample",
    ) -> dict[str, torch.Tensor]:
        got = record["image"].shape[:2]
        if tuple(got) != self.size:
            want = format_size(self.size)
            raise DataError(
                f"{where} holds {format_size(got)} (HxW) samples but size is {want}; run "
                f"`lightning_depth prepare diode --size {want}` or set size to the shards' size"
            )
        image = image_to_tensor(record["image"])
        target = to_chw_tensor(record["target"])
        mask = to_chw_tensor(record["mask"] > 0)
        if self.hflip:
            image, target, mask = random_hflip(image, target, mask, generator=generator)
        return {"image": image, "target": target, "mask": mask}


def load_diode_sample(
    image_path: PathLike,
    depth_path: PathLike,
    mask_path: PathLike,
    size: tuple[int, int] = (256, 256),
) -> dict[str, torch.Tensor]:
    """Read one DIODE sample and preprocess it as the reference does (:class:`DIODETransform`
    without flips).

    Returns:
        ``image`` (3, H, W) float32 in [0, 1], ``target`` (1, H, W) float32 log-depth,
        ``mask`` (1, H, W) bool.

    Raises:
        DataError: a file is missing, unreadable or invalid, or the sizes disagree.
    """
    files = [str(image_path), str(depth_path), str(mask_path)]
    transform = DIODETransform(size)
    return transform(transform.record(DIODELayout().read(files), files))


# -- dataset and DataModule ----------------------------------------------------------------


class DIODEDataset(SampleDataset):
    """DIODE samples from a folder (or archives); items as :class:`DIODETransform`'s plus
    ``name`` (the sample id).

    Args:
        samples: ``(image, depth, mask)`` paths (see :func:`list_diode_samples`).
        size: output ``(H, W)``.
        hflip: flip each sample left-right with probability 0.5.
        source: where the files are (default: paths as they are; or an
            :class:`~lightning_depth.data.archive.ArchiveSet`).
    """

    def __init__(
        self,
        samples: Sequence[Sequence[PathLike]],
        size: Sequence[int] = (256, 256),
        hflip: bool = False,
        source: Optional[Source] = None,
    ) -> None:
        super().__init__(DIODELayout(), samples, DIODETransform(size, hflip), source)

    @classmethod
    def from_root(
        cls,
        root: PathLike,
        splits: Sequence[str] = ("val",),
        scene_types: Sequence[str] = SCENE_TYPES,
        size: Sequence[int] = (256, 256),
        hflip: bool = False,
    ) -> DIODEDataset:
        return cls(list_diode_samples(root, splits, scene_types), size=size, hflip=hflip)


class DIODEDataModule(DepthDataModule):
    """DIODE monocular depth: a seeded train/val/test split of the samples under ``root``.

    Batches (all loaders) are dicts with ``image`` (B, 3, H, W) float32 in [0, 1],
    ``target`` (B, 1, H, W) float32 log-depth (see :func:`preprocess_depth`), ``mask``
    (B, 1, H, W) bool (valid depth) and ``name`` (list of B sample ids), with
    ``(H, W) = size``: every split is resized to it, as the reference does.

    Args:
        root: DIODE root folder (holding ``val/`` and/or ``train/``); only read. ``None``
            with ``synth_samples > 0``: generated data (see below).
        splits: split folders to read samples from.
        scene_types: scene types to read (``indoors``, ``outdoor``).
        val_fraction, test_fraction: shares held out (the paper's 80/10/10 by default).
        size: network input ``[H, W]``; samples are resized to it.
        hflip: random horizontal flips on the train split.
        batch_size: train batch size.
        synth_samples: with no ``root``: that many generated samples (written to
            ``synth_dir`` on first use, in the first of ``splits``) are the data. Ignored
            (with a log line) when ``root`` is given.
        synth_size: generated image size ``[H, W]`` (the real data's is 768x1024).
        synth_seed: seed of the generator.
        synth_style: ``"procedural"`` (patterned rooms and streets: the demo) or ``"photo"``
            (the same scenes with scikit-image's photographs on most surfaces).
        **kwargs: the other arguments of :class:`~lightning_depth.data.base.DepthDataModule`
            (``synth_dir``, ``on_bad_samples``, ``seed``, ``eval_batch_size``,
            ``num_workers``, ``pin_memory``, ``persistent_workers``, ``source``, ``archives``,
            ``shards``, ``cache_dir``, ``endpoint_url``). Shards hold samples already
            resized: ``size`` must be the one given to ``prepare`` (checked per item).
    """

    def __init__(
        self,
        root: Optional[str] = None,
        splits: tuple[str, ...] = ("val",),
        scene_types: tuple[str, ...] = SCENE_TYPES,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        size: tuple[int, int] = (256, 256),
        hflip: bool = True,
        batch_size: int = 8,
        synth_samples: int = 0,
        synth_size: tuple[int, int] = (192, 256),
        synth_seed: int = 0,
        synth_style: str = "procedural",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            size=size,
            hflip=hflip,
            batch_size=batch_size,
            **kwargs,
        )
        self.layout = DIODELayout(splits, scene_types)
        self.synth_samples = synth_samples
        self.synth_size = check_size(synth_size, "synth_size")
        self.synth_seed = synth_seed
        if synth_style not in DIODE_STYLES:
            raise ValueError(f"synth_style must be one of {DIODE_STYLES}, got {synth_style!r}")
        self.synth_style = synth_style

    def make_transform(self, training: bool) -> DIODETransform:
        return DIODETransform(self.size, hflip=self.hflip and training)

    def generated(self) -> Optional[Generated]:
        if self.synth_samples <= 0:
            return None
        return diode_generated(
            self.synth_samples,
            self.synth_size,
            self.synth_seed,
            split=self.layout.splits[0],
            scene_types=self.layout.scene_types,
            style=self.synth_style,
        )


def diode_generated(
    n: int,
    size: Sequence[int] = (192, 256),
    seed: int = 0,
    split: str = "val",
    scene_types: Sequence[str] = SCENE_TYPES,
    style: str = "procedural",
) -> Generated:
    """The set :func:`synthesize_diode` writes with these arguments, named
    ``diode_<n>_<H>x<W>_seed<seed>`` (plus the split, scene types and style when not the
    defaults).
    """
    if n < 1:
        raise ValueError(f"the number of generated samples must be >= 1, got {n}")
    size = check_size(size, "size")
    name = f"diode_{n}_{format_size(size)}_seed{seed}"
    if split != "val":
        name += f"_{split}"
    if tuple(scene_types) != SCENE_TYPES:
        name += "_" + "-".join(scene_types)
    settings = {}
    if style != "procedural":  # procedural sets keep the names and markers they had
        name += f"_{style}"
        settings["style"] = style
    return Generated(
        name=name,
        description=f"{n} DIODE-layout samples ({format_size(size)}, seed {seed})",
        settings={
            "dataset": "diode",
            "n": n,
            "size": list(size),
            "seed": seed,
            "split": split,
            "scene_types": list(scene_types),
            **settings,
        },
        write=partial(
            synthesize_diode,
            n=n,
            size=size,
            seed=seed,
            split=split,
            scene_types=scene_types,
            style=style,
        ),
    )


def synthesize_diode(
    out: PathLike,
    n: int,
    size: Sequence[int] = (192, 256),
    seed: int = 0,
    split: str = "val",
    scene_types: Sequence[str] = SCENE_TYPES,
    scenes_per_type: int = 2,
    scans_per_scene: int = 2,
    style: str = "procedural",
) -> list[Path]:
    """Write ``n`` rendered samples (:func:`~lightning_depth.data.synth_diode.diode_samples`)
    in DIODE's layout, named as the real data:
    ``<out>/<split>/<type>/scene_<SSSSS>/scan_<CCCCC>/<SSSSS>_<CCCCC>_<type>_<VVV>_<KKK>.png``
    with ``<id>_depth.npy`` (float32 (H, W, 1) metres, 0 where invalid) and
    ``<id>_depth_mask.npy`` (float32 (H, W), 1 valid / 0 invalid).

    Args:
        out: root folder (created if missing).
        n: number of samples (>= 1).
        size: image size ``(H, W)``.
        seed: base seed; sample ``i`` depends only on ``(seed, i)``.
        split: split folder name (``train`` or ``val`` in the real data).
        scene_types, scenes_per_type, scans_per_scene, style: as ``diode_samples``.

    Returns:
        The written image paths, in sample order.
    """
    samples = diode_samples(
        n, size, seed, scene_types, scenes_per_type, scans_per_scene, style=style
    )
    layout = DIODELayout((split,), scene_types)
    return [layout.write(out, split, **sample) for sample in samples]
