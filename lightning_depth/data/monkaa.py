"""SceneFlow Monkaa: sample listing, the stereo dataset, its DataModule, and a generator of
synthetic data in Monkaa's exact on-disk layout (for tests and demos, which never download).

Layout (as unpacked from SceneFlow's ``monkaa__frames_cleanpass`` and ``monkaa__disparity``)::

    <root>/frames_cleanpass/<scene>/left/NNNN.png     RGB, 960x540 in the real data
    <root>/frames_cleanpass/<scene>/right/NNNN.png
    <root>/disparity/<scene>/left/NNNN.pfm            Pf float32, disparity in px (positive)

Scene names look like ``a_rain_of_stones_x2``, ``eating_camera2_x2``, ``family_x2``.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import kornia
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lightning_depth.data.base import SourceDataModule
from lightning_depth.data.loaders import Item, split_item
from lightning_depth.data.synth import render_scene
from lightning_depth.io.errors import DataError
from lightning_depth.io.images import read_rgb
from lightning_depth.io.pfm import read_pfm, write_pfm

PathLike = Union[str, os.PathLike]
Sample = tuple[Path, Path, Path]

FRAMES_DIR = "frames_cleanpass"
DISPARITY_DIR = "disparity"
LAYOUT = (
    "<root>/frames_cleanpass/<scene>/{left,right}/NNNN.png and "
    "<root>/disparity/<scene>/left/NNNN.pfm"
)
# AnyNet (as most stereo networks) normalises inputs with ImageNet statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# AnyNet works at 1/16 resolution, so evaluation sizes are multiples of 16.
SIZE_MULTIPLE = 16


class MonkaaError(DataError):
    """Monkaa data on disk is missing, inconsistent or unreadable."""


def list_monkaa_samples(root: PathLike, frames_dir: str = FRAMES_DIR) -> list[Sample]:
    """List the ``(left, right, disparity)`` files of a Monkaa folder, sorted.

    Args:
        root: folder holding ``frames_cleanpass/`` and ``disparity/``.
        frames_dir: image folder name; ``"frames_finalpass"`` for the final pass.

    Returns:
        Sorted list of ``(left_png, right_png, left_disparity_pfm)`` paths.

    Raises:
        MonkaaError: if ``root`` holds no left images (naming the path and the expected layout)
            or a left image lacks its right image or disparity (naming the missing file).
    """
    root = Path(root)
    lefts = sorted(root.glob(f"{frames_dir}/*/left/*.png"))
    if not lefts:
        state = "does not exist" if not root.exists() else "holds no Monkaa left images"
        raise MonkaaError(f"{root} {state}; expected the layout {LAYOUT}")
    samples = []
    for left in lefts:
        scene = left.parent.parent.name
        right = root / frames_dir / scene / "right" / left.name
        disparity = root / DISPARITY_DIR / scene / "left" / f"{left.stem}.pfm"
        for path, what in ((right, "right image"), (disparity, "disparity")):
            if not path.is_file():
                raise MonkaaError(f"missing {what} {path} for left image {left}")
        samples.append((left, right, disparity))
    return samples


def scene_of(sample: Sample) -> str:
    """The scene name of a sample, e.g. ``family_x2``."""
    return sample[0].parent.parent.name


def sample_name(sample: Sample) -> str:
    """The sample's name ``<scene>/NNNN``."""
    return f"{scene_of(sample)}/{sample[0].stem}"


def _round_down(x: int) -> int:
    return x // SIZE_MULTIPLE * SIZE_MULTIPLE


def _round_up(x: int) -> int:
    return -(-x // SIZE_MULTIPLE) * SIZE_MULTIPLE


def read_monkaa_files(
    left_path: PathLike, right_path: PathLike, disp_path: PathLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read and check one Monkaa sample.

    Returns:
        uint8 ``(H, W, 3)`` left and right images, float32 ``(H, W)`` disparity.

    Raises:
        MonkaaError: unreadable files, or sizes that disagree (naming the files).
    """
    left = read_rgb(left_path)
    right = read_rgb(right_path)
    if left.shape != right.shape:
        raise MonkaaError(
            f"left image {left_path} is {left.shape[1]}x{left.shape[0]} but right image "
            f"{right_path} is {right.shape[1]}x{right.shape[0]}"
        )
    disparity, _ = read_pfm(disp_path, check_finite=True)
    if disparity.ndim != 2:
        raise MonkaaError(f"{disp_path}: disparity must be a single-channel (Pf) PFM")
    if disparity.shape != left.shape[:2]:
        raise MonkaaError(
            f"disparity {disp_path} is {disparity.shape[1]}x{disparity.shape[0]} but left "
            f"image {left_path} is {left.shape[1]}x{left.shape[0]}"
        )
    return left, right, disparity


class MonkaaDataset(Dataset):
    """Stereo pairs with left disparity from Monkaa-layout files.

    Training items are random crops (offsets drawn from torch's RNG, so ``seed_everything`` and
    DataLoader worker seeding make them reproducible). Evaluation items are either a fixed centre
    crop (``eval_mode="crop"``, default size: the image rounded down to multiples of 16) or the
    whole image padded at the bottom and right (``eval_mode="pad"``, default size: rounded up to
    multiples of 16); padded disparity is 0, i.e. invalid, and padded image pixels are 0 after
    normalisation (the mean colour).

    Items are dicts:
        ``left``, ``right``: float32 ``(3, H, W)``, ImageNet-normalised.
        ``disparity``: float32 ``(1, H, W)`` in pixels; 0 where unknown (padding).
        ``name``: ``"<scene>/NNNN"``.

    Args:
        samples: ``(left, right, disparity)`` paths, e.g. from :func:`list_monkaa_samples`.
        training: random crops if true, else the evaluation transform.
        crop_size: training crop ``(H, W)``.
        eval_mode: ``"crop"`` or ``"pad"``.
        eval_size: evaluation ``(H, W)``, multiples of 16; at most the image size for
            ``"crop"``, at least the image size for ``"pad"``. Default: derived per image.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        training: bool = False,
        crop_size: tuple[int, int] = (256, 512),
        eval_mode: str = "crop",
        eval_size: Optional[tuple[int, int]] = None,
    ) -> None:
        super().__init__()
        if eval_mode not in ("crop", "pad"):
            raise ValueError(f"eval_mode must be 'crop' or 'pad', got {eval_mode!r}")
        crop_size = tuple(int(s) for s in crop_size)
        if len(crop_size) != 2 or min(crop_size) <= 0:
            raise ValueError(f"crop_size must be a positive (H, W), got {crop_size}")
        if eval_size is not None:
            eval_size = tuple(int(s) for s in eval_size)
            if (
                len(eval_size) != 2
                or min(eval_size) <= 0
                or any(s % SIZE_MULTIPLE for s in eval_size)
            ):
                raise ValueError(
                    f"eval_size must be a positive (H, W) of multiples of {SIZE_MULTIPLE}, "
                    f"got {eval_size}"
                )
        self.samples = [tuple(Path(p) for p in s) for s in samples]
        self.training = training
        self.crop_size = crop_size
        self.eval_mode = eval_mode
        self.eval_size = eval_size

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Read and check one sample: uint8 ``(H, W, 3)`` left and right, float32 ``(H, W)``
        disparity."""
        return read_monkaa_files(*self.samples[index])

    def _window(
        self, source: PathLike, height: int, width: int, generator: Optional[torch.Generator] = None
    ) -> tuple[int, int, int, int]:
        """Crop window ``(top, left, h, w)`` for this item."""
        if self.training:
            ch, cw = self.crop_size
            if ch > height or cw > width:
                raise MonkaaError(
                    f"crop_size {self.crop_size} is larger than the {height}x{width} (HxW) image "
                    f"{source}; lower crop_size"
                )
            top = int(torch.randint(0, height - ch + 1, (), generator=generator).item())
            left = int(torch.randint(0, width - cw + 1, (), generator=generator).item())
            return top, left, ch, cw
        if self.eval_mode == "crop":
            ch, cw = self.eval_size or (_round_down(height), _round_down(width))
            if ch > height or cw > width or ch == 0 or cw == 0:
                raise MonkaaError(
                    f"cannot centre-crop the {height}x{width} (HxW) image {source} to {ch}x{cw}"
                )
            return (height - ch) // 2, (width - cw) // 2, ch, cw
        return 0, 0, height, width

    def __getitem__(self, item: Item) -> dict:
        # (index, seed) from the training sampler makes the crop reproducible on resume
        index, generator = split_item(item)
        left, right, disparity = self.read(index)
        return self.make_item(
            left,
            right,
            disparity,
            sample_name(self.samples[index]),
            self.samples[index][0],
            generator,
        )

    def make_item(
        self,
        left: np.ndarray,
        right: np.ndarray,
        disparity: np.ndarray,
        name: str,
        source: PathLike = "left image",
        generator: Optional[torch.Generator] = None,
    ) -> dict:
        """Crop or pad and normalise one read sample into an item (see the class docstring).

        Args:
            left, right: uint8 ``(H, W, 3)``.
            disparity: float32 ``(H, W)``.
            name: the item's ``name``.
            source: the left image's file, for messages.
            generator: RNG of the training crop (``None``: torch's global RNG).
        """
        height, width = disparity.shape
        top, x0, h, w = self._window(source, height, width, generator)
        window = (slice(top, top + h), slice(x0, x0 + w))
        mean = torch.tensor(IMAGENET_MEAN)
        std = torch.tensor(IMAGENET_STD)
        # contiguous while still uint8: the float ops below run ~20% faster on NCHW memory
        images = torch.from_numpy(np.stack([left[window], right[window]]))
        images = images.permute(0, 3, 1, 2).contiguous()
        images = kornia.enhance.normalize(images.float() / 255.0, mean, std)
        disp = torch.from_numpy(np.ascontiguousarray(disparity[window]))[None]

        if not self.training and self.eval_mode == "pad":
            ph, pw = self.eval_size or (_round_up(height), _round_up(width))
            if ph < height or pw < width:
                raise MonkaaError(
                    f"cannot pad the {height}x{width} (HxW) image {source} to {ph}x{pw}"
                )
            padding = (0, pw - width, 0, ph - height)
            images = torch.nn.functional.pad(images, padding)
            disp = torch.nn.functional.pad(disp, padding)

        return {
            "left": images[0].contiguous(),
            "right": images[1].contiguous(),
            "disparity": disp.contiguous(),
            "name": name,
        }


def split_samples(
    samples: Sequence[Sample],
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    split_by: str = "frame",
    seed: int = 42,
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Seeded disjoint train/val/test split, by frame or by whole scene.

    Fractions count frames for ``split_by="frame"`` and scenes for ``"scene"``; each requested
    split gets at least one unit and train keeps at least one.

    Args:
        samples: ``(left, right, disparity)`` paths.
        val_fraction: share of units for validation.
        test_fraction: share of units for test (0: no test split).
        split_by: ``"frame"`` or ``"scene"``.
        seed: seed of the permutation.

    Returns:
        ``(train, val, test)`` lists, each sorted; ``test`` is empty if ``test_fraction == 0``.
    """
    if split_by not in ("frame", "scene"):
        raise ValueError(f"split_by must be 'frame' or 'scene', got {split_by!r}")
    if split_by == "frame":
        groups = [[s] for s in samples]
    else:
        by_scene: dict[str, list[Sample]] = {}
        for s in samples:
            by_scene.setdefault(scene_of(s), []).append(s)
        groups = [by_scene[k] for k in sorted(by_scene)]
    n = len(groups)
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    if n_test + n_val >= n:
        raise ValueError(
            f"{n} {split_by}s are too few for val_fraction={val_fraction} and "
            f"test_fraction={test_fraction}: need at least {n_test + n_val + 1}"
        )
    order = np.random.default_rng(seed).permutation(n)

    def gather(indices: np.ndarray) -> list[Sample]:
        return sorted(s for i in indices for s in groups[i])

    return (
        gather(order[n_test + n_val :]),
        gather(order[n_test : n_test + n_val]),
        gather(order[:n_test]),
    )


class MonkaaDataModule(SourceDataModule):
    """SceneFlow Monkaa for stereo training (AnyNet), with seeded train/val/test splits.

    Batches are dicts:
        ``left``, ``right``: float32 ``(B, 3, H, W)``, ImageNet-normalised
        (mean ``(0.485, 0.456, 0.406)``, std ``(0.229, 0.224, 0.225)``).
        ``disparity``: float32 ``(B, 1, H, W)`` in pixels; 0 where unknown (eval padding).
        ``name``: list of ``B`` strings ``"<scene>/NNNN"``.

    ``(H, W)`` is ``crop_size`` for training and, for evaluation, a centre crop
    (``eval_mode="crop"``) or a zero padding (``"pad"``) to multiples of 16 (or ``eval_size``).

    Args:
        root: Monkaa folder (``frames_cleanpass/`` and ``disparity/``).
        val_fraction: share of frames (or scenes) held out for validation.
        test_fraction: share held out for test; if 0, test uses the validation split.
        split_by: ``"frame"`` or ``"scene"``; a scene split keeps every scene in one split, so
            near-identical consecutive frames cannot leak between train and val.
        seed: split seed.
        crop_size: training random crop ``(H, W)`` (the original's 256x512).
        eval_mode: ``"crop"`` or ``"pad"``.
        eval_size: evaluation ``(H, W)`` (multiples of 16); default derived from the image.
        batch_size: training batch size (the original's 6).
        eval_batch_size: val/test/predict batch size; default ``batch_size``.
        num_workers, pin_memory, persistent_workers: DataLoader settings; persistent workers
            only apply when ``num_workers > 0``.
        synth_scenes: if > 0 and ``root`` holds no Monkaa data, ``prepare_data`` generates that
            many synthetic scenes there with :func:`synthesize_monkaa`.
        synth_frames: frames per synthetic scene.
        synth_size: synthetic image size ``(W, H)``.
        synth_seed: seed of the synthetic data.
        source: where samples come from: ``"folder"`` (``root``), ``"archive"`` (the original
            ``frames_cleanpass.tar`` and ``disparity.tar.bz2`` read in place, see
            :mod:`~lightning_depth.data.archive`) or ``"shards"`` (written by
            ``lightning_depth prepare monkaa``, see :mod:`~lightning_depth.data.streaming`).
            Each gives the same samples in the same split.
        archives: the archive files, for ``source="archive"``.
        shards: shard folder or ``s3://bucket/prefix`` holding ``train/``, ``val/`` (and
            ``test/``), for ``source="shards"``; the split (``val_fraction``,
            ``test_fraction``, ``split_by``, split ``seed``) is the one given to ``prepare``.
        cache_dir: download cache for remote shards (default: a fresh temporary folder per
            run, as a stale litdata cache can hang); for archives, where their member indexes
            are kept (default: indexed again in every run).
        endpoint_url: S3-compatible endpoint for ``s3://`` shards.
    """

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.1,
        test_fraction: float = 0.0,
        split_by: str = "frame",
        seed: int = 42,
        crop_size: tuple[int, int] = (256, 512),
        eval_mode: str = "crop",
        eval_size: Optional[tuple[int, int]] = None,
        batch_size: int = 6,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        synth_scenes: int = 0,
        synth_frames: int = 8,
        synth_size: tuple[int, int] = (320, 192),
        synth_seed: int = 0,
        source: str = "folder",
        archives: Optional[list[str]] = None,
        shards: Optional[str] = None,
        cache_dir: Optional[str] = None,
        endpoint_url: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.check_source(source, archives, shards, batch_size, eval_batch_size)
        if split_by not in ("frame", "scene"):
            raise ValueError(f"split_by must be 'frame' or 'scene', got {split_by!r}")
        if eval_mode not in ("crop", "pad"):
            raise ValueError(f"eval_mode must be 'crop' or 'pad', got {eval_mode!r}")
        if not (0 < val_fraction < 1 and 0 <= test_fraction < 1):
            raise ValueError(
                f"need 0 < val_fraction < 1 and 0 <= test_fraction < 1, got {val_fraction} and "
                f"{test_fraction}"
            )
        if val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must leave training data, got "
                f"{val_fraction} + {test_fraction}"
            )
        self.save_hyperparameters()
        self.root = Path(root)
        self.eval_batch_size = eval_batch_size or batch_size
        self.train_samples: list[Sample] = []
        self.val_samples: list[Sample] = []
        self.test_samples: list[Sample] = []

    def prepare_data(self) -> None:
        self.index_archives()
        hp = self.hparams
        if hp.source != "folder":
            return
        has_data = any(self.root.glob(f"{FRAMES_DIR}/*/left/*.png"))
        if hp.synth_scenes > 0 and not has_data:
            synthesize_monkaa(
                self.root,
                scenes=hp.synth_scenes,
                frames=hp.synth_frames,
                size=tuple(hp.synth_size),
                seed=hp.synth_seed,
            )

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        hp = self.hparams
        if hp.source == "shards":
            self._setup_shards()
            return
        if hp.source == "archive":
            from lightning_depth.data.archive import (
                ArchiveSet,
                MonkaaArchiveDataset,
                list_monkaa_archive,
            )

            archives = ArchiveSet(hp.archives, index_dir=hp.cache_dir)
            samples = list_monkaa_archive(archives)
            dataset_class = functools.partial(MonkaaArchiveDataset, archives)
        else:
            samples = list_monkaa_samples(self.root)
            dataset_class = MonkaaDataset
        self.train_samples, self.val_samples, self.test_samples = split_samples(
            samples, hp.val_fraction, hp.test_fraction, hp.split_by, hp.seed
        )
        # Fail at setup, not at the first training batch, when the crop cannot fit.
        first = self.train_samples[0][0]
        if hp.source == "archive":
            height, width = dataset_class(self.train_samples[:1]).read(0)[0].shape[:2]
        else:
            height, width = read_rgb(first).shape[:2]
        if hp.crop_size[0] > height or hp.crop_size[1] > width:
            raise ValueError(
                f"crop_size {tuple(hp.crop_size)} (H, W) is larger than the {height}x{width} "
                f"images in {self.root} (e.g. {first}); pass a smaller crop_size"
            )
        evaluation = dict(eval_mode=hp.eval_mode, eval_size=hp.eval_size)
        self.train_set = dataset_class(self.train_samples, training=True, crop_size=hp.crop_size)
        self.val_set = dataset_class(self.val_samples, **evaluation)
        self.test_set = dataset_class(self.test_samples or self.val_samples, **evaluation)

    def _setup_shards(self) -> None:
        # Built here, not in __init__: litdata reads the DDP rank when the dataset is made.
        from lightning_depth.data.streaming import MonkaaStreamingDataset

        hp = self.hparams
        base = hp.shards.rstrip("/")
        common = dict(seed=hp.seed, cache_dir=hp.cache_dir, endpoint_url=hp.endpoint_url)
        evaluation = dict(eval_mode=hp.eval_mode, eval_size=hp.eval_size, drop_last=False)
        self.train_set = MonkaaStreamingDataset(
            f"{base}/train", training=True, crop_size=hp.crop_size, shuffle=True, **common
        )
        self.val_set = MonkaaStreamingDataset(f"{base}/val", **evaluation, **common)
        # prepare writes no test/ when test_fraction is 0; test then uses val, as for folders
        test = f"{base}/test" if hp.test_fraction > 0 else f"{base}/val"
        self.test_set = MonkaaStreamingDataset(test, **evaluation, **common)


def synthesize_monkaa(
    out: PathLike,
    scenes: int = 2,
    frames: int = 8,
    size: tuple[int, int] = (320, 192),
    seed: int = 0,
    baseline: Optional[float] = None,
    max_disparity: Optional[float] = None,
    zoom_per_frame: float = 0.015,
) -> list[Path]:
    """Render synthetic stereo scenes and write them in Monkaa's layout with exact disparity.

    Each scene is a textured room from :func:`~lightning_depth.data.synth.render_scene` seen by
    two rectified cameras ``baseline`` apart. The frames of a scene show the same room while the
    camera zooms in a little from frame to frame (the renderer takes no camera pose, and a zoom is
    what a short dolly forward looks like), so consecutive frames are near-duplicates as in the
    real data, which is what ``split_by="scene"`` guards against.

    Written per frame ``NNNN`` of scene ``scene_SSS_x2``: ``frames_cleanpass/<scene>/left/NNNN.png``
    and ``right/NNNN.png`` (RGB uint8), ``disparity/<scene>/left/NNNN.pfm`` and
    ``right/NNNN.pfm`` (Pf float32, little-endian, px).

    Args:
        out: root folder (created if missing).
        scenes: number of scenes.
        frames: frames per scene.
        size: image size ``(W, H)``.
        seed: base seed; scene ``s`` depends only on ``(seed, s)``.
        baseline: stereo baseline in scene metres. Default: chosen per scene so that its nearest
            surface has a disparity drawn from ``[0.5, 0.9] * max_disparity``. An explicit value
            is lowered where it would exceed ``max_disparity``.
        max_disparity: largest disparity allowed, in px; default ``min(W / 4, 191)`` (AnyNet's
            first stage covers 12 disparities at 1/16 resolution, i.e. under 192 px).
        zoom_per_frame: relative focal-length increase from one frame to the next.

    Returns:
        The written left image paths, sorted.
    """
    width, height = (int(s) for s in size)
    if width < 1 or height < 1:
        raise ValueError(f"size must be (W, H) with W, H >= 1, got {size}")
    if scenes < 1 or frames < 1:
        raise ValueError(f"scenes and frames must be >= 1, got {scenes} and {frames}")
    if max_disparity is None:
        max_disparity = min(width / 4.0, 191.0)
    if max_disparity <= 0:
        raise ValueError(f"max_disparity must be > 0, got {max_disparity}")
    if baseline is not None and baseline <= 0:
        raise ValueError(f"baseline must be > 0, got {baseline}")
    if zoom_per_frame < 0:
        raise ValueError(f"zoom_per_frame must be >= 0, got {zoom_per_frame}")

    root = Path(out)
    lefts = []
    for s in range(scenes):
        scene = f"scene_{s:03d}_x2"
        # The renderer draws the room first from its generator, so a fresh generator with the
        # scene's seed gives the same room in every frame.
        scene_seed = [seed, s]
        own = np.random.default_rng([seed, s, 1])
        focal0 = 0.5 * width / math.tan(math.radians(own.uniform(55.0, 75.0)) / 2)
        focals = [focal0 * (1 + zoom_per_frame) ** k for k in range(frames)]
        # Zooming in only narrows the view, so the widest frame sees the nearest surface.
        probe = render_scene(
            np.random.default_rng(scene_seed), width, height, focal=focal0, kind="indoors"
        )
        hits = probe["depth"][probe["depth"] > 0]
        z_min = float(hits.min()) if hits.size else 1.0
        cap = max_disparity * z_min / focals[-1]
        target = own.uniform(0.5, 0.9) * max_disparity * z_min / focals[-1]
        b = target if baseline is None else min(baseline, cap)

        dirs = {
            key: root / top / scene / side
            for key, top, side in (
                ("left", FRAMES_DIR, "left"),
                ("right", FRAMES_DIR, "right"),
                ("disp_left", DISPARITY_DIR, "left"),
                ("disp_right", DISPARITY_DIR, "right"),
            )
        }
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for k, focal in enumerate(focals):
            view = render_scene(
                np.random.default_rng(scene_seed),
                width,
                height,
                baseline=b,
                focal=focal,
                kind="indoors",
            )
            stem = f"{k:04d}"
            Image.fromarray(view["image"]).save(dirs["left"] / f"{stem}.png")
            Image.fromarray(view["right"]).save(dirs["right"] / f"{stem}.png")
            write_pfm(dirs["disp_left"] / f"{stem}.pfm", view["disparity"])
            write_pfm(dirs["disp_right"] / f"{stem}.pfm", view["right_disparity"])
            lefts.append(dirs["left"] / f"{stem}.png")
    return sorted(lefts)
