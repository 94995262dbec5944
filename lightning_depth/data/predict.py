"""Predict-only DataModules: folders or lists of images (mono) and of stereo pairs.

Used by ``lightning_depth predict --config configs/predict/{mono,stereo}.yaml``; batches
carry no targets. Images keep their own size and the model decides how to run on them
(``DepthTask.predict_map``: a mono checkpoint resizes to its training size and resizes the
map back, see the writer's ``resolution``), returning maps at the images' size; so the
default batch size is 1. ``size`` (mono) resizes the images themselves before the model, and
the maps then come at that size.

Inputs go through the very functions training uses (:func:`~lightning_depth.data.diode.
image_to_tensor` after the same OpenCV-exact resize; :func:`~lightning_depth.data.monkaa.
normalize_pair`), so a network sees at predict time what it saw in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import lightning as L
from torch.utils.data import DataLoader, Dataset

from lightning_depth.data.diode import image_to_tensor
from lightning_depth.data.monkaa import normalize_pair
from lightning_depth.data.transforms import check_size, format_size, resize_like_cv2
from lightning_depth.io.errors import DataError
from lightning_depth.io.images import read_rgb

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageFilesDataset",
    "MonoPredictDataModule",
    "StereoPairsDataset",
    "StereoPredictDataModule",
    "list_images",
    "list_stereo_pairs",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")

#: a mono input: an image file or a folder of images.
MonoInputs = Union[str, list[str]]
#: a stereo input: a folder with ``left/`` and ``right/``, or a ``[left, right]`` file pair.
StereoInputs = Union[str, list[Union[str, list[str]]]]


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _check_unique(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(
                f"two inputs would both write outputs named {name!r}; give them different "
                "file names or put them in separate runs"
            )
        seen.add(name)


def list_images(inputs: MonoInputs) -> list[tuple[Path, str]]:
    """Image files of ``inputs`` with their output names.

    Args:
        inputs: an image file, a folder (searched recursively for image files) or a list of
            both.

    Returns:
        ``(path, name)`` pairs; ``name`` is the file stem, or for files found in a folder
        the path below that folder without suffix (so outputs mirror the folder tree).

    Raises:
        DataError: an input does not exist, a folder holds no images, or names collide.
    """
    entries = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not entries:
        raise DataError("no inputs given: pass image files or folders")
    out: list[tuple[Path, str]] = []
    for entry in entries:
        path = Path(entry)
        if path.is_dir():
            found = _images_in(path)
            if not found:
                raise DataError(
                    f"input folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})"
                )
            out += [(p, p.relative_to(path).with_suffix("").as_posix()) for p in found]
        elif path.is_file():
            out.append((path, path.stem))
        else:
            raise DataError(f"input {path} does not exist")
    _check_unique([name for _, name in out])
    return out


def list_stereo_pairs(inputs: StereoInputs) -> list[tuple[Path, Path, str]]:
    """Stereo pairs of ``inputs`` with their output names.

    Args:
        inputs: a folder with ``left/`` and ``right/`` subfolders of same-named images, a
            ``[left, right]`` pair of files, or a list of both.

    Returns:
        ``(left, right, name)`` triples; ``name`` is the left file's stem (for folders: its
        path below ``left/`` without suffix).

    Raises:
        DataError: a folder lacks ``left/`` or ``right/``, a left image has no right image,
            a file does not exist, or names collide.
    """
    if isinstance(inputs, (str, Path)):
        entries: list = [inputs]
    elif (
        len(inputs) == 2
        and all(isinstance(e, (str, Path)) for e in inputs)
        and all(Path(e).is_file() for e in inputs)
    ):
        entries = [list(inputs)]  # one explicit pair
    else:
        entries = list(inputs)
    if not entries:
        raise DataError("no inputs given: pass folders with left/ and right/, or [left, right]")
    out: list[tuple[Path, Path, str]] = []
    for entry in entries:
        if isinstance(entry, (str, Path)):
            folder = Path(entry)
            if not folder.is_dir():
                raise DataError(
                    f"stereo input {folder} is not a folder; give a folder with left/ and "
                    "right/ subfolders or a [left, right] pair of files"
                )
            left_dir, right_dir = folder / "left", folder / "right"
            for d in (left_dir, right_dir):
                if not d.is_dir():
                    raise DataError(f"stereo input folder {folder} has no {d.name}/ subfolder")
            lefts = _images_in(left_dir)
            if not lefts:
                raise DataError(f"stereo input folder {left_dir} holds no images")
            for left in lefts:
                rel = left.relative_to(left_dir)
                right = right_dir / rel
                if not right.is_file():
                    raise DataError(f"left image {left} has no right image: {right} is missing")
                out.append((left, right, rel.with_suffix("").as_posix()))
        else:
            pair = list(entry)
            if len(pair) != 2:
                raise DataError(f"a stereo pair must be [left, right], got {pair}")
            left, right = Path(pair[0]), Path(pair[1])
            for side, p in (("left", left), ("right", right)):
                if not p.is_file():
                    raise DataError(f"{side} image {p} does not exist")
            out.append((left, right, left.stem))
    _check_unique([name for _, _, name in out])
    return out


class ImageFilesDataset(Dataset):
    """Images for mono prediction.

    Items: ``image`` (3, H, W) float32 in [0, 1] (as the DIODE training data), ``name``.

    Args:
        files: ``(path, name)`` pairs (see :func:`list_images`).
        size: optional ``(H, W)`` to resize to (OpenCV-exact bilinear, as training); ``None``
            keeps each image's size.
    """

    def __init__(self, files: Sequence[tuple[Path, str]], size: Optional[tuple[int, int]] = None):
        self.files = [(Path(p), n) for p, n in files]
        self.size = None if size is None else check_size(size, "size")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path, name = self.files[index]
        image = read_rgb(path)
        if self.size is not None:
            image = resize_like_cv2(image, self.size)
        return {"image": image_to_tensor(image), "name": name}


class StereoPairsDataset(Dataset):
    """Stereo pairs for prediction.

    Items: ``left``, ``right`` (3, H, W) float32 ImageNet-normalised (as the Monkaa training
    data), ``name``.

    Args:
        pairs: ``(left, right, name)`` triples (see :func:`list_stereo_pairs`).
    """

    def __init__(self, pairs: Sequence[tuple[Path, Path, str]]):
        self.pairs = [(Path(a), Path(b), n) for a, b, n in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        left_path, right_path, name = self.pairs[index]
        left, right = read_rgb(left_path), read_rgb(right_path)
        if left.shape != right.shape:
            raise DataError(
                f"left image {left_path} is {format_size(left.shape)} but right image "
                f"{right_path} is {format_size(right.shape)} (HxW); they must match"
            )
        images = normalize_pair(left, right)
        return {"left": images[0].contiguous(), "right": images[1].contiguous(), "name": name}


class _PredictDataModule(L.LightningDataModule):
    def __init__(self, batch_size: int, num_workers: int) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.dataset: Optional[Dataset] = None

    def predict_dataloader(self) -> DataLoader:
        if self.dataset is None:
            self.setup("predict")
        return DataLoader(
            self.dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers
        )


class MonoPredictDataModule(_PredictDataModule):
    """Images to predict depth for.

    Args:
        inputs: an image file, a folder of images (recursive) or a list of both.
        size: optional ``[H, W]`` to resize every image to before the model (the maps then
            come at this size, not the images'); default ``None``: each image at its own size,
            and the model decides (a checkpoint that records its training size predicts at it
            and resizes the map back to the image's size; see ``DepthPredictionWriter``'s
            ``resolution``). With ``size=None`` and ``batch_size > 1`` all images must share
            one size.
        batch_size: images per batch.
        num_workers: DataLoader workers.
    """

    input_keys = ("image",)

    def __init__(
        self,
        inputs: MonoInputs,
        size: Optional[tuple[int, int]] = None,
        batch_size: int = 1,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.inputs = inputs
        self.size = None if size is None else check_size(size, "size")

    def setup(self, stage: Optional[str] = None) -> None:
        self.dataset = ImageFilesDataset(list_images(self.inputs), size=self.size)


class StereoPredictDataModule(_PredictDataModule):
    """Stereo pairs to predict disparity for.

    Args:
        inputs: a folder with ``left/`` and ``right/`` subfolders of same-named images, a
            ``[left, right]`` pair of files, or a list of both. Pairs keep their size (the
            task pads to a multiple of 16 and crops back).
        batch_size: pairs per batch (with ``> 1`` all pairs must share one size).
        num_workers: DataLoader workers.
    """

    input_keys = ("left", "right")

    def __init__(self, inputs: StereoInputs, batch_size: int = 1, num_workers: int = 0) -> None:
        super().__init__(batch_size, num_workers)
        self.inputs = inputs

    def setup(self, stage: Optional[str] = None) -> None:
        self.dataset = StereoPairsDataset(list_stereo_pairs(self.inputs))
