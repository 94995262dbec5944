"""SceneFlow Monkaa (stereo): its layout, the stereo transform, dataset and DataModule.

Layout (as unpacked from SceneFlow's ``monkaa__frames_cleanpass`` and ``monkaa__disparity``,
and as :func:`synthesize_monkaa` writes it)::

    <root>/frames_cleanpass/<scene>/left/NNNN.png     RGB, 540x960 (HxW) in the real data
    <root>/frames_cleanpass/<scene>/right/NNNN.png
    <root>/disparity/<scene>/left/NNNN.pfm            Pf float32, disparity in px (positive)

Scene names look like ``a_rain_of_stones_x2``, ``eating_camera2_x2``, ``family_x2``. The same
:class:`MonkaaTransform` serves the folder, archive and shard sources, and ``lightning_depth
predict`` uses its :func:`normalize_pair`.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path, PurePath
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from lightning_depth.data.augment import (
    AUGMENT_KEY,
    StereoAugment,
    augment_batch,
    make_augment,
)
from lightning_depth.data.base import DepthDataModule, SampleDataset
from lightning_depth.data.check import probe_rgb
from lightning_depth.data.generated import Generated
from lightning_depth.data.layout import Folder, Layout, Sample, Source, check_pair_sizes
from lightning_depth.data.synth_monkaa import STYLES, scene_job
from lightning_depth.data.synth_things import map_scenes
from lightning_depth.data.transforms import (
    centre_crop_window,
    check_size,
    format_size,
    pad_bottom_right,
    random_crop_window,
    round_to_multiple,
)
from lightning_depth.encoding import normalize, to_unit
from lightning_depth.io.errors import DataError
from lightning_depth.io.images import read_rgb
from lightning_depth.io.pfm import read_pfm, write_pfm

__all__ = [
    "MonkaaDataModule",
    "MonkaaDataset",
    "MonkaaError",
    "MonkaaLayout",
    "MonkaaTransform",
    "augment_views",
    "list_monkaa_samples",
    "monkaa_generated",
    "normalize_pair",
    "sample_name",
    "scene_of",
    "synthesize_monkaa",
]

PathLike = Union[str, os.PathLike]

FRAMES_DIR = "frames_cleanpass"
DISPARITY_DIR = "disparity"
LAYOUT = (
    "<root>/frames_cleanpass/<scene>/{left,right}/NNNN.png and "
    "<root>/disparity/<scene>/left/NNNN.pfm"
)
# AnyNet works at 1/16 resolution, so evaluation sizes are multiples of 16.
SIZE_MULTIPLE = 16
EVAL_MODES = ("crop", "pad")


class MonkaaError(DataError):
    """Monkaa data on disk is missing, inconsistent or unreadable."""


# -- layout --------------------------------------------------------------------------------


def scene_of(sample: Sample) -> str:
    """The scene name of a sample, e.g. ``family_x2``."""
    return PurePath(sample[0]).parent.parent.name


def sample_name(sample: Sample) -> str:
    """The sample's name ``<scene>/NNNN``."""
    return f"{scene_of(sample)}/{PurePath(sample[0]).stem}"


def _read_disparity(
    disp_path: PathLike, left_path: PathLike, left_size: Sequence[int]
) -> np.ndarray:
    """The checked (H, W) disparity of a left image of size ``left_size``."""
    disparity, _ = read_pfm(disp_path, check_finite=True)
    if disparity.ndim != 2:
        raise MonkaaError(f"{disp_path}: disparity must be a single-channel (Pf) PFM")
    if disparity.shape != tuple(left_size):
        raise MonkaaError(
            f"disparity {disp_path} is {format_size(disparity.shape)} but left image "
            f"{left_path} is {format_size(left_size)} (HxW)"
        )
    return disparity


class MonkaaLayout(Layout):
    """Monkaa's layout (see the module docstring); a sample is ``(left, right, disparity)``.

    Args:
        frames_dir: image folder name; ``"frames_finalpass"`` for the final pass.
    """

    name = "Monkaa"
    description = LAYOUT
    files = ("left image", "right image", "disparity")
    empty = "Monkaa left images"

    def __init__(self, frames_dir: str = FRAMES_DIR) -> None:
        self.frames_dir = frames_dir

    def patterns(self) -> list[str]:
        return [f"{self.frames_dir}/*/left/*.png"]

    def companions(self, left: PurePath) -> tuple[PurePath, PurePath]:
        scene = left.parent.parent.name
        disparity = left.parents[3] / DISPARITY_DIR / scene / "left" / f"{left.stem}.pfm"
        return left.parent.parent / "right" / left.name, disparity

    def read(self, paths: Sequence[PathLike]) -> dict[str, np.ndarray]:
        """``left``, ``right`` uint8 (H, W, 3) and ``disparity`` float32 (H, W), checked.

        Raises:
            MonkaaError: unreadable files, or sizes that disagree (naming the files).
        """
        left_path, right_path, disp_path = paths
        left, right = read_rgb(left_path), read_rgb(right_path)
        check_pair_sizes(left_path, left.shape[:2], right_path, right.shape[:2], MonkaaError)
        disparity = _read_disparity(disp_path, left_path, left.shape[:2])
        return {"left": left, "right": right, "disparity": disparity}

    def check(self, paths: Sequence[PathLike]) -> None:
        """What :meth:`read` checks, with the images' headers and checksums verified instead
        of decoding them (:func:`~lightning_depth.data.check.probe_rgb`)."""
        left_path, right_path, disp_path = paths
        left = probe_rgb(left_path)
        check_pair_sizes(left_path, left, right_path, probe_rgb(right_path), MonkaaError)
        _read_disparity(disp_path, left_path, left)

    def name_of(self, sample: Sample) -> str:
        return sample_name(sample)

    def write(
        self,
        root: PathLike,
        scene: str,
        frame: int,
        left: np.ndarray,
        right: np.ndarray,
        disparity: np.ndarray,
        right_disparity: np.ndarray,
    ) -> Path:
        """Write one frame as SceneFlow stores it (PNGs, little-endian Pf disparity of both
        views); returns the left image's path."""

        def path(top: str, side: str, suffix: str) -> Path:
            folder = Path(root) / top / scene / side
            folder.mkdir(parents=True, exist_ok=True)
            return folder / f"{frame:04d}.{suffix}"

        left_path = path(self.frames_dir, "left", "png")
        Image.fromarray(left).save(left_path)
        Image.fromarray(right).save(path(self.frames_dir, "right", "png"))
        write_pfm(path(DISPARITY_DIR, "left", "pfm"), disparity)
        write_pfm(path(DISPARITY_DIR, "right", "pfm"), right_disparity)
        return left_path


def list_monkaa_samples(
    root: Union[PathLike, Source], frames_dir: str = FRAMES_DIR
) -> list[Sample]:
    """``(left, right, disparity)`` paths of a Monkaa folder (or archives), sorted.

    Raises:
        DataError: no left image (naming where it looked and the expected layout), or a left
            image lacks its right image or disparity (naming the missing file).
    """
    source = Folder(root) if isinstance(root, (str, os.PathLike)) else root
    return MonkaaLayout(frames_dir).list(source)


# -- transform -----------------------------------------------------------------------------


def normalize_pair(left: np.ndarray, right: np.ndarray) -> torch.Tensor:
    """The stereo networks' input: uint8 ``(H, W, 3)`` left and right -> float32
    ``(2, 3, H, W)``, scaled by :func:`~lightning_depth.encoding.to_unit` and
    ImageNet-normalised (:func:`~lightning_depth.encoding.normalize`)."""
    # contiguous while still uint8: the float ops below run ~20% faster on NCHW memory
    images = torch.from_numpy(np.stack([left, right])).permute(0, 3, 1, 2).contiguous()
    return normalize(to_unit(images))


class MonkaaTransform:
    """Monkaa's transform: a crop or padding of full-resolution pairs, then normalisation.

    Training items are random ``size`` crops (offsets drawn from the generator, else torch's
    RNG). Evaluation items are either a fixed centre crop (``eval_mode="crop"``, default
    size: the image rounded down to multiples of 16) or the whole image padded at the bottom
    and right (``eval_mode="pad"``, default size: rounded up to multiples of 16); padded
    disparity is 0, i.e. invalid, and padded image pixels are 0 after normalisation (the
    mean colour).

    Record (what shards store): ``left``, ``right`` uint8 (H, W, 3), ``disparity`` float32
    (H, W). Item: ``left``, ``right`` float32 (3, h, w) (:func:`normalize_pair`),
    ``disparity`` float32 (1, h, w) in pixels, 0 where unknown (padding).

    Args:
        training: random crops if true, else the evaluation transform.
        size: training crop ``(H, W)``.
        eval_mode: ``"crop"`` or ``"pad"``.
        eval_size: evaluation ``(H, W)``, multiples of 16; at most the image size for
            ``"crop"``, at least the image size for ``"pad"``. Default: derived per image.
        augment: photometric augmentation of training items
            (:class:`~lightning_depth.data.augment.StereoAugment`, drawn from the item's
            generator after its crop); ``None``: none. Never applied at evaluation.
        augment_on_device: with ``augment``, training items carry the uint8 crops
            ``left``, ``right`` ``(3, h, w)`` and their packed draw under ``"augment"``
            (:meth:`~lightning_depth.data.augment.StereoAugment.sample_packed`) instead of
            augmented, normalised views: :meth:`MonkaaDataModule.transfer_batch_to_device`
            augments and normalises the batch on the training device.
    """

    fields = {"left": (np.uint8, 3), "right": (np.uint8, 3), "disparity": (np.float32, 2)}

    def __init__(
        self,
        training: bool = False,
        size: Sequence[int] = (256, 512),
        eval_mode: str = "crop",
        eval_size: Optional[Sequence[int]] = None,
        augment: Optional[StereoAugment] = None,
        augment_on_device: bool = False,
    ) -> None:
        if eval_mode not in EVAL_MODES:
            raise ValueError(f"eval_mode must be one of {EVAL_MODES}, got {eval_mode!r}")
        self.training = training
        self.size = check_size(size, "size")
        self.eval_mode = eval_mode
        self.eval_size = None
        if eval_size is not None:
            self.eval_size = check_size(eval_size, "eval_size", multiple=SIZE_MULTIPLE)
        self.augment = augment
        self.augment_on_device = augment_on_device

    def record(self, arrays: dict[str, np.ndarray], files: Sequence[str]) -> dict[str, np.ndarray]:
        return {
            "left": np.ascontiguousarray(arrays["left"]),
            "right": np.ascontiguousarray(arrays["right"]),
            "disparity": np.ascontiguousarray(arrays["disparity"], dtype=np.float32),
        }

    def _window(
        self, height: int, width: int, where: str, generator: Optional[torch.Generator]
    ) -> tuple[int, int, int, int]:
        """Crop window ``(top, left, h, w)`` of this item."""
        image = f"the {height}x{width} (HxW) image {where}"
        if self.training:
            if self.size[0] > height or self.size[1] > width:
                raise MonkaaError(
                    f"size {format_size(self.size)} (HxW) is larger than {image}; lower size"
                )
            return (*random_crop_window(height, width, self.size, generator), *self.size)
        if self.eval_mode == "crop":
            size = self.eval_size or (
                round_to_multiple(height, SIZE_MULTIPLE),
                round_to_multiple(width, SIZE_MULTIPLE),
            )
            if size[0] > height or size[1] > width or min(size) == 0:
                raise MonkaaError(f"cannot centre-crop {image} to {format_size(size)}")
            return (*centre_crop_window(height, width, size), *size)
        return 0, 0, height, width

    def __call__(
        self,
        record: dict[str, np.ndarray],
        generator: Optional[torch.Generator] = None,
        where: str = "sample",
    ) -> dict[str, torch.Tensor]:
        height, width = record["disparity"].shape
        top, x0, h, w = self._window(height, width, where, generator)
        window = (slice(top, top + h), slice(x0, x0 + w))
        disp = torch.from_numpy(np.ascontiguousarray(record["disparity"][window]))[None]
        if self.training and self.augment is not None and self.augment_on_device:
            left, right = (
                torch.from_numpy(np.ascontiguousarray(record[k][window].transpose(2, 0, 1)))
                for k in ("left", "right")
            )
            packed = self.augment.sample_packed(h, w, generator)
            return {"left": left, "right": right, "disparity": disp, AUGMENT_KEY: packed}
        if self.training and self.augment is not None:
            pair = np.stack([record["left"][window], record["right"][window]])
            unit = to_unit(torch.from_numpy(pair).permute(0, 3, 1, 2).contiguous())
            left, right = self.augment(unit[0], unit[1], generator)
            images = normalize(torch.stack([left, right]))
        else:
            images = normalize_pair(record["left"][window], record["right"][window])
        if not self.training and self.eval_mode == "pad":
            size = self.eval_size or (
                round_to_multiple(height, SIZE_MULTIPLE, up=True),
                round_to_multiple(width, SIZE_MULTIPLE, up=True),
            )
            if size[0] < height or size[1] < width:
                raise MonkaaError(
                    f"cannot pad the {height}x{width} (HxW) image {where} to {format_size(size)}"
                )
            images, disp = pad_bottom_right(images, size), pad_bottom_right(disp, size)
        return {
            "left": images[0].contiguous(),
            "right": images[1].contiguous(),
            "disparity": disp.contiguous(),
        }


# -- dataset and DataModule ----------------------------------------------------------------


class MonkaaDataset(SampleDataset):
    """Stereo pairs with left disparity from Monkaa-layout files (or archives).

    Items: ``left``, ``right`` float32 ``(3, H, W)`` ImageNet-normalised, ``disparity``
    float32 ``(1, H, W)`` in pixels (0 where unknown), ``name`` ``"<scene>/NNNN"``.

    Args:
        samples: ``(left, right, disparity)`` paths, e.g. from :func:`list_monkaa_samples`.
        training, size, eval_mode, eval_size, augment: as :class:`MonkaaTransform`.
        source: where the files are (default: paths as they are; or an
            :class:`~lightning_depth.data.archive.ArchiveSet`).
    """

    def __init__(
        self,
        samples: Sequence[Sequence[PathLike]],
        training: bool = False,
        size: Sequence[int] = (256, 512),
        eval_mode: str = "crop",
        eval_size: Optional[Sequence[int]] = None,
        source: Optional[Source] = None,
        augment: Optional[StereoAugment] = None,
    ) -> None:
        transform = MonkaaTransform(training, size, eval_mode, eval_size, augment)
        super().__init__(MonkaaLayout(), samples, transform, source)


def augment_views(
    left: torch.Tensor, right: torch.Tensor, params: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """What :meth:`MonkaaDataModule.transfer_batch_to_device` does to an ``augment_on_device``
    batch on its device: uint8 ``(B, 3, h, w)`` views to [0, 1], the packed draws ``params``
    applied (:func:`~lightning_depth.data.augment.augment_batch`), then normalised as the
    network takes them."""
    left, right = augment_batch(to_unit(left), to_unit(right), params)
    return normalize(left), normalize(right)


class MonkaaDataModule(DepthDataModule):
    """SceneFlow Monkaa for stereo training (AnyNet), with seeded train/val/test splits.

    Batches are dicts:
        ``left``, ``right``: float32 ``(B, 3, H, W)``, ImageNet-normalised
        (:func:`normalize_pair`).
        ``disparity``: float32 ``(B, 1, H, W)`` in pixels; 0 where unknown (eval padding).
        ``name``: list of ``B`` strings ``"<scene>/NNNN"``.

    ``(H, W)`` is ``size`` for training (random crops) and, for evaluation, a centre crop
    (``eval_mode="crop"``) or a zero padding (``"pad"``) to multiples of 16 (or ``eval_size``).

    Args:
        root: Monkaa folder (``frames_cleanpass/`` and ``disparity/``); only read. ``None``
            with ``synth_scenes > 0``: generated data (see below).
        val_fraction: share of frames (or scenes) held out for validation.
        test_fraction: share held out for test; if 0, test uses the validation split.
        split_by: ``"frame"`` or ``"scene"``; a scene split keeps every scene in one split, so
            near-identical consecutive frames cannot leak between train and val.
        size: training random crop ``[H, W]`` (the original's 256x512).
        eval_mode: ``"crop"`` or ``"pad"``.
        eval_size: evaluation ``[H, W]`` (multiples of 16); default derived from the image.
        batch_size: training batch size (the original's 6).
        synth_scenes: with no ``root``: that many generated scenes
            (:func:`synthesize_monkaa`, written to ``synth_dir`` on first use) are the data.
            Ignored (with a log line) when ``root`` is given.
        synth_frames: frames per generated scene.
        synth_size: generated image size ``[H, W]``.
        synth_seed: seed of the generated data.
        synth_style: ``"rooms"`` (textured rooms, a short zoom per scene: the demo) or
            ``"things"`` (FlyingThings-style photo-textured clutter,
            :mod:`~lightning_depth.data.synth_things`: the data that transfers to real
            pairs; use ``synth_frames=1``).
        augment: photometric augmentation of the training split
            (:class:`~lightning_depth.data.augment.StereoAugment`): ``false`` (default),
            ``true`` (its defaults) or a dict of its arguments, e.g. ``{"eraser_p": 0}``.
            Drawn from each item's seed, so runs and resumed runs see the same batches.
        augment_on_device: apply ``augment`` to each training batch on the training device
            (:meth:`transfer_batch_to_device`; the loader workers only crop, and the views
            travel as uint8), so a GPU's loader keeps up. The draws are the same as in the
            workers (seeded per item), the noise values are not (a device generator seeded
            per item), so a recipe trained one way is not reproduced the other way.
        **kwargs: the other arguments of :class:`~lightning_depth.data.base.DepthDataModule`
            (``synth_dir``, ``on_bad_samples``, ``seed``, ``eval_batch_size``,
            ``num_workers``, ``pin_memory``,
            ``persistent_workers``, ``source``, ``archives``, ``shards``, ``cache_dir``,
            ``endpoint_url``; ``hflip`` must stay false: a mirrored pair swaps the cameras
            and needs the right view's disparity, which is not read).
    """

    def __init__(
        self,
        root: Optional[str] = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.0,
        split_by: str = "frame",
        size: tuple[int, int] = (256, 512),
        eval_mode: str = "crop",
        eval_size: Optional[tuple[int, int]] = None,
        batch_size: int = 6,
        synth_scenes: int = 0,
        synth_frames: int = 8,
        synth_size: tuple[int, int] = (192, 320),
        synth_seed: int = 0,
        synth_style: str = "rooms",
        augment: Union[bool, dict[str, Any]] = False,
        augment_on_device: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            size=size,
            batch_size=batch_size,
            **kwargs,
        )
        if split_by not in ("frame", "scene"):
            raise ValueError(f"split_by must be 'frame' or 'scene', got {split_by!r}")
        if self.hflip:
            raise ValueError(
                "hflip is not supported for Monkaa: a mirrored stereo pair swaps the cameras "
                "and needs the right view's disparity, which is not read; set hflip=False"
            )
        self.layout = MonkaaLayout()
        self.split_by = split_by
        self.eval_mode, self.eval_size = eval_mode, eval_size
        self.augment_on_device = bool(augment_on_device)
        self.make_transform(training=False)  # checks eval_mode and eval_size now, not at setup
        self.synth_scenes, self.synth_frames = synth_scenes, synth_frames
        self.synth_size = check_size(synth_size, "synth_size")
        self.synth_seed = synth_seed
        if synth_style not in STYLES:
            raise ValueError(f"synth_style must be one of {STYLES}, got {synth_style!r}")
        self.synth_style = synth_style
        self.augment = make_augment(augment)
        if self.augment_on_device and self.augment is None:
            raise ValueError(
                "augment_on_device=True applies the training augmentation on the device, but "
                "augment is off; set augment (true or a dict of its settings) or drop "
                "augment_on_device"
            )

    def make_transform(self, training: bool) -> MonkaaTransform:
        augment = self.augment if training else None
        return MonkaaTransform(
            training, self.size, self.eval_mode, self.eval_size, augment, self.augment_on_device
        )

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Lightning's transfer, then (for ``augment_on_device`` training batches) the
        augmentation and normalisation of the views on ``device``.

        Here rather than in ``on_after_batch_transfer`` so that the packed draws stay on the
        host: reading them on the device would synchronise it once per value.
        """
        params = batch.pop(AUGMENT_KEY, None) if isinstance(batch, dict) else None
        batch = super().transfer_batch_to_device(batch, device, dataloader_idx)
        if params is not None:
            batch["left"], batch["right"] = augment_views(batch["left"], batch["right"], params)
        return batch

    def split_unit(self) -> tuple[Optional[Callable], str]:
        return (scene_of, "scene") if self.split_by == "scene" else (None, "frame")

    def check_samples(self, source: Source, train: list[Sample]) -> None:
        # Fail at setup, not at the first training batch, when the crop cannot fit.
        with source.local(train[0]) as files:
            height, width = self.layout.read(files)["disparity"].shape
        if self.size[0] > height or self.size[1] > width:
            raise ValueError(
                f"size {format_size(self.size)} (HxW) is larger than the {height}x{width} "
                f"(HxW) images in {source.describe()} (e.g. {source.where(train[0][0])}); pass "
                "a smaller size"
            )

    def generated(self) -> Optional[Generated]:
        if self.synth_scenes <= 0:
            return None
        return monkaa_generated(
            self.synth_scenes,
            self.synth_frames,
            self.synth_size,
            self.synth_seed,
            style=self.synth_style,
        )


def monkaa_generated(
    scenes: int,
    frames: int = 8,
    size: Sequence[int] = (192, 320),
    seed: int = 0,
    style: str = "rooms",
    workers: Optional[int] = None,
) -> Generated:
    """The set :func:`synthesize_monkaa` writes with these arguments, named
    ``monkaa_<scenes>x<frames>_<H>x<W>_seed<seed>`` (``monkaa_things_...`` for the things
    style). ``workers`` (processes) does not change the content."""
    if scenes < 1 or frames < 1:
        raise ValueError(f"generated scenes and frames must be >= 1, got {scenes} and {frames}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    size = check_size(size, "size")
    settings: dict[str, Any] = {
        "dataset": "monkaa",
        "scenes": scenes,
        "frames": frames,
        "size": list(size),
        "seed": seed,
    }
    kind = "scenes"
    if style != "rooms":  # rooms sets keep the names and markers they had before styles
        settings["style"] = style
        kind = f"{style}-style scenes"
    prefix = "monkaa" if style == "rooms" else f"monkaa_{style}"
    return Generated(
        name=f"{prefix}_{scenes}x{frames}_{format_size(size)}_seed{seed}",
        description=(
            f"{scenes} Monkaa-layout {kind} of {frames} frames ({format_size(size)}, seed {seed})"
        ),
        settings=settings,
        write=partial(
            synthesize_monkaa,
            scenes=scenes,
            frames=frames,
            size=size,
            seed=seed,
            style=style,
            workers=workers,
        ),
    )


def _write_scene(
    scene: int, job: Callable[[int], list[dict]], layout: MonkaaLayout, out: Path
) -> list[Path]:
    # in a worker process: render one scene and write its frames
    return [layout.write(out, **frame) for frame in job(scene)]


def synthesize_monkaa(
    out: PathLike,
    scenes: int = 2,
    frames: int = 8,
    size: Sequence[int] = (192, 320),
    seed: int = 0,
    baseline: Optional[float] = None,
    max_disparity: Optional[float] = None,
    zoom_per_frame: Optional[float] = None,
    style: str = "rooms",
    workers: Optional[int] = None,
    photos: Optional[bool] = None,
) -> list[Path]:
    """Write rendered stereo scenes in Monkaa's layout with exact disparity: per frame
    ``NNNN`` of a scene, ``frames_cleanpass/<scene>/{left,right}/NNNN.png`` (RGB uint8) and
    ``disparity/<scene>/{left,right}/NNNN.pfm`` (Pf float32, little-endian, px).

    ``style="rooms"``: :func:`~lightning_depth.data.synth_monkaa.monkaa_frames` (scenes
    ``scene_SSS_x2``; ``baseline`` and ``zoom_per_frame``, default 0.015, are its);
    ``style="things"``: :func:`~lightning_depth.data.synth_things.things_frames` (scenes
    ``things_SSSS_x2``; ``photos``, default true, is its). ``size`` is ``(H, W)``. Scenes are
    rendered and written by ``workers`` processes (default: the CPUs available); the files
    do not depend on it.

    Returns:
        The written left image paths, sorted.

    Raises:
        ValueError: an unknown style, or an argument of the other style.
    """
    options = {
        name: value
        for name, value in (
            ("baseline", baseline),
            ("zoom_per_frame", zoom_per_frame),
            ("photos", photos),
        )
        if value is not None
    }
    job = scene_job(style, scenes, frames, size, seed, max_disparity, **options)
    write = partial(_write_scene, job=job, layout=MonkaaLayout(), out=Path(out))
    return sorted(path for paths in map_scenes(write, scenes, workers) for path in paths)
