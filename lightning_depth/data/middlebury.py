"""Middlebury 2014 stereo (real images): its layout, the transform and DataModule base shared
with KITTI (:mod:`lightning_depth.data.kitti`), and the Motorcycle pair that scikit-image ships.

Layout (MiddEval3's ``trainingQ``/``trainingH``/``trainingF`` folders, any resolution: the
files tell it, and each scene's ``calib.txt`` must agree with its images)::

    <root>/<scene>/im0.png          left image, RGB
    <root>/<scene>/im1.png          right image
    <root>/<scene>/disp0GT.pfm      left disparity in px (Pf float32); inf where unknown
    <root>/<scene>/calib.txt        cam0=[f 0 cx; ...], doffs=, baseline= (mm), width=, height=
    <root>/<scene>/mask0nocc.png    optional: 255 non-occluded, 128 occluded, 0 unknown

Scene names look like ``Adirondack``, ``Motorcycle``. Batches hold the disparity (0 where
unknown, as the stereo task expects) and the non-occlusion mask (``nonoccluded``: all False
for a scene without ``mask0nocc.png``), so ``lightning_depth test`` reports Middlebury's
bad-2.0 and bad-4.0 over all pixels and over the non-occluded ones (see
:mod:`lightning_depth.metrics.benchmark`).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from lightning_depth.data.base import DepthDataModule, SampleDataset
from lightning_depth.data.check import probe_rgb
from lightning_depth.data.generated import Generated
from lightning_depth.data.layout import Layout, Sample, Source, check_pair_sizes
from lightning_depth.data.monkaa import normalize_pair
from lightning_depth.data.transforms import check_size, format_size, random_crop_window
from lightning_depth.geometry import Camera
from lightning_depth.io.calib import read_middlebury_calib, write_middlebury_calib
from lightning_depth.io.errors import DataError
from lightning_depth.io.images import read_rgb
from lightning_depth.io.pfm import read_pfm, write_pfm
from lightning_depth.metrics.benchmark import NONOCCLUDED_KEY

__all__ = [
    "MIDDLEBURY_METRICS",
    "MOTORCYCLE_CAMERA",
    "MiddleburyDataModule",
    "MiddleburyError",
    "MiddleburyLayout",
    "StereoBenchmarkDataModule",
    "StereoBenchmarkTransform",
    "read_middlebury_disparity",
    "read_occlusion_mask",
    "write_motorcycle",
]

PathLike = Union[str, os.PathLike]

LEFT, RIGHT, DISPARITY, CALIB, MASK = (
    "im0.png",
    "im1.png",
    "disp0GT.pfm",
    "calib.txt",
    "mask0nocc.png",
)
LAYOUT = (
    "<root>/<scene>/im0.png, im1.png, disp0GT.pfm (inf where unknown), calib.txt, and "
    "optionally mask0nocc.png"
)
#: what ``lightning_depth test`` reports on Middlebury (``*_noc`` where masks exist)
MIDDLEBURY_METRICS = ("bad2", "bad4", "bad2_noc", "bad4_noc")
#: mask0nocc.png values
NONOCCLUDED, OCCLUDED, UNKNOWN = 255, 128, 0

#: the calibration of scikit-image's Motorcycle pair (Middlebury 2014 at quarter size,
#: ``skimage.data.stereo_motorcycle``'s docstring): f, cx, cy, doffs in px, baseline 193.001 mm
MOTORCYCLE_CAMERA = Camera(
    fx=994.978, fy=994.978, cx=311.193, cy=254.877, baseline=0.193001, doffs=31.086
)
MOTORCYCLE_SCENE = "Motorcycle"


class MiddleburyError(DataError):
    """Middlebury data on disk is missing, inconsistent or unreadable."""


# -- reading -------------------------------------------------------------------------------


def read_middlebury_disparity(
    path: PathLike, size: Optional[Sequence[int]] = None, image: PathLike = "the left image"
) -> np.ndarray:
    """A Middlebury ground-truth disparity (``disp0GT.pfm``), unknown pixels as 0.

    Args:
        path: the ``Pf`` PFM; ``+inf`` marks pixels without ground truth.
        size: the left image's ``(H, W)`` it must have (``None``: not checked).
        image: the left image's path, for messages.

    Returns:
        float32 ``(H, W)`` disparity in pixels, 0 where unknown.

    Raises:
        DataError: not a single-channel PFM, the wrong size, or NaN or negative values
            (Middlebury marks unknown pixels with inf, and its disparities are positive).
    """
    disparity, _ = read_pfm(path)
    if disparity.ndim != 2:
        raise MiddleburyError(f"{path}: disparity must be a single-channel (Pf) PFM")
    if size is not None and disparity.shape != tuple(size):
        raise MiddleburyError(
            f"disparity {path} is {format_size(disparity.shape)} but {image} is "
            f"{format_size(size)} (HxW)"
        )
    nan = int(np.isnan(disparity).sum())
    negative = int((disparity < 0).sum())
    if nan or negative:
        raise MiddleburyError(
            f"disparity {path} holds {nan} NaN and {negative} negative values; Middlebury "
            "disparities are positive, with inf where unknown"
        )
    return np.where(np.isfinite(disparity), disparity, 0.0).astype(np.float32)


def read_occlusion_mask(path: PathLike, size: Optional[Sequence[int]] = None) -> np.ndarray:
    """A Middlebury ``mask0nocc.png`` as a bool ``(H, W)`` map of the non-occluded pixels.

    Raises:
        DataError: unreadable, not one 8-bit channel, the wrong size, or values other than
            255 (non-occluded), 128 (occluded) and 0 (unknown).
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            mode = img.mode
            mask = np.asarray(img)
    except FileNotFoundError:
        raise MiddleburyError(f"occlusion mask {path} does not exist") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise MiddleburyError(
            f"occlusion mask {path} is corrupt or truncated: cannot decode it ({e})"
        ) from e
    if mode not in ("L", "P") or mask.ndim != 2:
        raise MiddleburyError(
            f"occlusion mask {path} has pillow mode {mode!r}; expected one 8-bit channel "
            "(255 non-occluded, 128 occluded, 0 unknown)"
        )
    if size is not None and mask.shape != tuple(size):
        raise MiddleburyError(
            f"occlusion mask {path} is {format_size(mask.shape)} but the left image is "
            f"{format_size(size)} (HxW)"
        )
    other = ~np.isin(mask, (NONOCCLUDED, OCCLUDED, UNKNOWN))
    if other.any():
        raise MiddleburyError(
            f"occlusion mask {path} holds {int(other.sum())} pixels that are not 255 "
            f"(non-occluded), 128 (occluded) or 0 (unknown), e.g. {int(mask[other][0])}"
        )
    return mask == NONOCCLUDED


def _check_calib(path: PathLike, size: Sequence[int], image: PathLike) -> Camera:
    camera = read_middlebury_calib(path)
    if camera.size is not None and tuple(camera.size) != tuple(size):
        raise MiddleburyError(
            f"calibration {path} is for {format_size(camera.size)} images (its height and "
            f"width) but {image} is {format_size(size)} (HxW): a calib.txt of another "
            "resolution (full, half and quarter each have their own)"
        )
    return camera


class MiddleburyLayout(Layout):
    """Middlebury 2014's layout (see the module docstring); a sample is ``(im0, im1,
    disp0GT, calib)`` plus ``mask0nocc`` where the scene has one."""

    name = "Middlebury"
    description = LAYOUT
    files = ("left image", "right image", "disparity", "calibration", "occlusion mask")
    empty = "Middlebury scenes"

    def patterns(self) -> list[str]:
        return [f"*/{LEFT}"]

    def companions(self, left: PurePath) -> tuple[PurePath, PurePath, PurePath]:
        return left.parent / RIGHT, left.parent / DISPARITY, left.parent / CALIB

    def list(self, source: Source, missing: str = "error") -> list[Sample]:
        """The scenes of ``source`` (see :meth:`Layout.list`), each with its occlusion mask
        where it has one."""
        samples = super().list(source, missing)
        with_mask = []
        for sample in samples:
            mask = sample[0].parent / MASK
            with_mask.append((*sample, mask) if source.exists(mask) else sample)
        return with_mask

    def read(self, paths: Sequence[PathLike]) -> dict[str, np.ndarray]:
        """``left``, ``right`` uint8 (H, W, 3), ``disparity`` float32 (H, W) (0 where
        unknown) and ``nonoccluded`` uint8 (H, W) (1 where non-occluded with ground truth;
        all 0 without a mask), checked against each other and the calibration.

        Raises:
            DataError: unreadable files, or files that disagree (naming them).
        """
        left_path, right_path, disp_path, calib_path, *mask_path = paths
        left, right = read_rgb(left_path), read_rgb(right_path)
        size = left.shape[:2]
        check_pair_sizes(left_path, size, right_path, right.shape[:2])
        disparity = read_middlebury_disparity(disp_path, size, left_path)
        _check_calib(calib_path, size, left_path)
        if mask_path:
            nonoccluded = read_occlusion_mask(mask_path[0], size) & (disparity > 0)
        else:
            nonoccluded = np.zeros(size, dtype=bool)
        return {
            "left": left,
            "right": right,
            "disparity": disparity,
            NONOCCLUDED_KEY: nonoccluded.astype(np.uint8),
        }

    def check(self, paths: Sequence[PathLike]) -> None:
        """What :meth:`read` checks, the images' headers and checksums verified instead of
        decoding them."""
        left_path, right_path, disp_path, calib_path, *mask_path = paths
        size = probe_rgb(left_path)
        check_pair_sizes(left_path, size, right_path, probe_rgb(right_path))
        read_middlebury_disparity(disp_path, size, left_path)
        _check_calib(calib_path, size, left_path)
        if mask_path:
            read_occlusion_mask(mask_path[0], size)

    def name_of(self, sample: Sample) -> str:
        """The scene's name (its folder)."""
        return sample[0].parent.name


# -- transform -----------------------------------------------------------------------------


class StereoBenchmarkTransform:
    """The transform of real stereo benchmarks (Middlebury, KITTI): random crops for
    training, the whole pair for evaluation (the stereo task pads it to its multiple and
    crops back), ImageNet-normalised.

    Record: ``left``, ``right`` uint8 (H, W, 3), ``disparity`` float32 (H, W) (0 where
    unknown), ``nonoccluded`` uint8 (H, W). Item: ``left``, ``right`` float32 (3, h, w)
    (:func:`~lightning_depth.data.monkaa.normalize_pair`), ``disparity`` float32
    (1, h, w) in pixels, ``nonoccluded`` bool (1, h, w).

    Args:
        training: random ``size`` crops (offsets from the generator, else torch's RNG) if
            true, else the whole image.
        size: training crop ``(H, W)``.
    """

    fields = {
        "left": (np.uint8, 3),
        "right": (np.uint8, 3),
        "disparity": (np.float32, 2),
        NONOCCLUDED_KEY: (np.uint8, 2),
    }

    def __init__(self, training: bool = False, size: Sequence[int] = (256, 512)) -> None:
        self.training = training
        self.size = check_size(size, "size")

    def record(self, arrays: dict[str, np.ndarray], files: Sequence[str]) -> dict[str, np.ndarray]:
        return {
            name: np.ascontiguousarray(arrays[name], dtype=dtype)
            for name, (dtype, _) in self.fields.items()
        }

    def __call__(
        self,
        record: dict[str, np.ndarray],
        generator: Optional[torch.Generator] = None,
        where: str = "sample",
    ) -> dict[str, torch.Tensor]:
        height, width = record["disparity"].shape
        window = (slice(None), slice(None))
        if self.training:
            if self.size[0] > height or self.size[1] > width:
                raise DataError(
                    f"size {format_size(self.size)} (HxW) is larger than the {height}x{width} "
                    f"(HxW) image {where}; lower size"
                )
            top, x0 = random_crop_window(height, width, self.size, generator)
            window = (slice(top, top + self.size[0]), slice(x0, x0 + self.size[1]))
        images = normalize_pair(record["left"][window], record["right"][window])
        disparity = torch.from_numpy(np.ascontiguousarray(record["disparity"][window]))[None]
        nonoccluded = torch.from_numpy(np.ascontiguousarray(record[NONOCCLUDED_KEY][window]))
        return {
            "left": images[0].contiguous(),
            "right": images[1].contiguous(),
            "disparity": disparity.contiguous(),
            NONOCCLUDED_KEY: nonoccluded[None].bool(),
        }


# -- DataModules ---------------------------------------------------------------------------


class StereoBenchmarkDataModule(DepthDataModule):
    """The base of the real stereo benchmarks' DataModules (:class:`MiddleburyDataModule`,
    :class:`~lightning_depth.data.kitti.KittiDataModule`).

    Batches are dicts:
        ``left``, ``right``: float32 ``(B, 3, H, W)``, ImageNet-normalised.
        ``disparity``: float32 ``(B, 1, H, W)`` in pixels; 0 where unknown.
        ``nonoccluded``: bool ``(B, 1, H, W)``: non-occluded pixels with ground truth.
        ``name``: list of ``B`` sample names.

    Evaluation batches hold whole images at their own size (images of a benchmark differ in
    size, hence ``eval_batch_size`` 1); training batches random ``size`` crops.

    :attr:`benchmark_metrics` names the metrics the stereo task reports besides its own.

    Args:
        root: the benchmark's folder (only read).
        evaluate_all: ``True`` (the benchmark): every sample is in the validation and test
            sets (and the training set, for fine-tuning), ``val_fraction`` and
            ``test_fraction`` must be 0; ``False``: the seeded split of the other datasets.
        val_fraction, test_fraction: held-out shares for ``evaluate_all=False``.
        size: training crop ``[H, W]``.
        batch_size: training batch size.
        eval_batch_size: must be 1 (whole images of different sizes).
        **kwargs: the other arguments of :class:`~lightning_depth.data.base.DepthDataModule`
            (``seed``, ``on_bad_samples``, ``num_workers``, ``source`` ``"folder"`` or
            ``"archive"``, ...; ``hflip`` must stay false: a mirrored pair swaps the
            cameras).
    """

    #: the metrics of this benchmark (keys of ``metrics.benchmark.BENCHMARK_METRICS``)
    declared_metrics: tuple[str, ...] = ()

    def __init__(
        self,
        root: Optional[str] = None,
        evaluate_all: bool = True,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
        size: tuple[int, int] = (256, 512),
        batch_size: int = 6,
        eval_batch_size: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            size=size,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            **kwargs,
        )
        name = type(self).__name__
        if eval_batch_size != 1:
            raise ValueError(
                f"{name}: eval_batch_size must be 1 (whole images, whose sizes differ between "
                f"samples), got {eval_batch_size}"
            )
        if self.hflip:
            raise ValueError(
                f"{name}: hflip is not supported: a mirrored stereo pair swaps the cameras and "
                "needs the right view's disparity; set hflip=False"
            )
        if evaluate_all and (val_fraction or test_fraction):
            raise ValueError(
                f"{name}: evaluate_all=True evaluates every sample, so val_fraction and "
                f"test_fraction must be 0 (got {val_fraction} and {test_fraction}); pass "
                "evaluate_all=False for a held-out split"
            )
        if evaluate_all and self.source == "shards":
            raise ValueError(
                f"{name}: shards are already split; evaluate_all=True reads a folder or "
                "archives (source='folder' or 'archive')"
            )
        self.evaluate_all = evaluate_all
        self._stage: Optional[str] = None  # what setup was called for
        self.layout = self.make_layout()

    def make_layout(self) -> Layout:
        """The benchmark's layout."""
        raise NotImplementedError

    @property
    def benchmark_metrics(self) -> tuple[str, ...]:
        """The metrics the stereo task reports on these data (keys of
        :data:`~lightning_depth.metrics.benchmark.BENCHMARK_METRICS`)."""
        return self.declared_metrics

    def make_transform(self, training: bool) -> StereoBenchmarkTransform:
        return StereoBenchmarkTransform(training, self.size)

    def check_samples(self, source: Source, train: list[Sample]) -> None:
        # Training crops must fit every image: fail at setup, not at the first batch.
        if self._stage not in (None, "fit"):
            return
        for sample in train:
            with source.local(sample[:1]) as (left,):
                height, width = probe_rgb(left)
            if self.size[0] > height or self.size[1] > width:
                raise ValueError(
                    f"size {format_size(self.size)} (HxW) is larger than the {height}x{width} "
                    f"(HxW) image {source.where(sample[0])} of {source.describe()}; pass a "
                    "smaller size"
                )

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        self._stage = stage
        super().setup(stage)
        if self.evaluate_all:  # the split kept everything in train: evaluate on it all
            evaluation = self.make_transform(training=False)
            everything = list(self.train_samples)
            self.val_samples, self.test_samples = everything, everything
            self.val_set = SampleDataset(self.layout, everything, evaluation, self.train_set.source)
            self.test_set = self.val_set


class MiddleburyDataModule(StereoBenchmarkDataModule):
    """Middlebury 2014 stereo (see the module docstring and
    :class:`StereoBenchmarkDataModule`): by default every scene is evaluated (the benchmark).

    ``lightning_depth test`` reports bad-2.0 and bad-4.0 over all pixels with ground truth
    (``test/bad2``, ``test/bad4``) and, where scenes have ``mask0nocc.png``, over the
    non-occluded ones (``test/bad2_noc``, ``test/bad4_noc``), each the mean over scenes.

    Args:
        root: a folder of scene folders, e.g. MiddEval3's ``trainingQ``; only read. ``None``:
            scikit-image's Motorcycle pair (:func:`write_motorcycle`), written on first use
            to ``synth_dir`` (default ``.cache/lightning_depth/middlebury_motorcycle``).
        **kwargs: as :class:`StereoBenchmarkDataModule`.
    """

    declared_metrics = MIDDLEBURY_METRICS

    def make_layout(self) -> MiddleburyLayout:
        return MiddleburyLayout()

    @property
    def benchmark_metrics(self) -> tuple[str, ...]:
        """bad-2.0 and bad-4.0, and their non-occluded versions unless the evaluated scenes
        are known (after ``setup``) to have no occlusion mask."""
        evaluated = self.test_samples or self.val_samples
        if evaluated and not any(len(s) == len(MiddleburyLayout.files) for s in evaluated):
            return tuple(k for k in MIDDLEBURY_METRICS if not k.endswith("_noc"))
        return MIDDLEBURY_METRICS

    def generated(self) -> Optional[Generated]:
        if self.root is not None:
            return None
        return Generated(
            name="middlebury_motorcycle",
            description="the Middlebury 2014 Motorcycle pair of scikit-image",
            settings={"dataset": "middlebury", "scene": MOTORCYCLE_SCENE},
            write=_write_motorcycle_set,
        )


def _write_motorcycle_set(out: Path) -> list[Path]:
    return [write_motorcycle(out) / LEFT]


def write_motorcycle(root: PathLike) -> Path:
    """Write scikit-image's Middlebury 2014 Motorcycle pair (quarter size, 500x741) into the
    Middlebury layout: ``<root>/Motorcycle/{im0.png, im1.png, disp0GT.pfm, calib.txt}``, the
    disparity inf where scikit-image has none (NaN or inf), the calibration
    :data:`MOTORCYCLE_CAMERA` (from ``skimage.data.stereo_motorcycle``'s docstring).

    Returns:
        The scene folder ``<root>/Motorcycle``.

    Raises:
        DataError: ``<root>/Motorcycle`` exists and is not empty (nothing is overwritten).
        ImportError: scikit-image is not installed (it is in the ``test`` extra).
    """
    try:
        from skimage.data import stereo_motorcycle
    except ImportError as e:
        raise ImportError(
            "the Motorcycle pair comes with scikit-image: pip install scikit-image"
        ) from e
    scene = Path(root) / MOTORCYCLE_SCENE
    if scene.exists() and (not scene.is_dir() or any(scene.iterdir())):
        raise DataError(f"{scene} exists and is not empty; write the Motorcycle pair elsewhere")
    left, right, disparity = stereo_motorcycle()
    disparity = np.asarray(disparity, dtype=np.float32)
    disparity = np.where(np.isfinite(disparity), disparity, np.float32(np.inf))
    height, width = disparity.shape
    scene.mkdir(parents=True, exist_ok=True)
    Image.fromarray(left).save(scene / LEFT)
    Image.fromarray(right).save(scene / RIGHT)
    write_pfm(scene / DISPARITY, disparity)
    write_middlebury_calib(scene / CALIB, MOTORCYCLE_CAMERA, width=width, height=height, ndisp=64)
    return scene
