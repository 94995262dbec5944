"""DIODE and Monkaa from litdata shards (``lightning_depth prepare``), local or in object storage.

A shard folder holds one split (``<out>/train``, ``<out>/val``, ``<out>/test``) as litdata
chunks of already decoded samples:

- DIODE: ``image`` uint8 (H, W, 3) resized to the training size, ``target`` float32 (H, W)
  log-depth and ``mask`` uint8 (H, W), exactly what :func:`~lightning_depth.data.diode.
  load_diode_sample` computes, so only the random flip is left to do when reading;
- Monkaa: ``left``/``right`` uint8 (H, W, 3) and ``disparity`` float32 (H, W) at full
  resolution, cropped or padded when reading (training crops are random).

The datasets are litdata ``StreamingDataset`` s: under DDP (detected when they are built,
which is why the DataModules build them in ``setup()``) each process and worker reads its own
chunks; shuffling is seeded by ``(seed, epoch)`` and a ``StreamingDataLoader`` has a
``state_dict`` that Lightning stores in checkpoints, so a resumed run continues mid-epoch.
Augmentation (flip, crop) is seeded by ``(seed, epoch, sample index)``, as with
:class:`~lightning_depth.data.loaders.SeededShuffleSampler`.

Known litdata traps handled here: a fresh cache folder per run (``cache_dir=None`` makes one
for remote shards; a stale cache of other shards can hang), and ``drop_last``. For training it
is litdata's default, on under DDP, so every process runs as many steps (an extra step on one
process would hang DDP's gradient all-reduce): when the training split does not share out
evenly, the few samples left over are skipped in that epoch, different ones each epoch as the
order is reshuffled (none are repeated).
Evaluation datasets set it off, so every sample is evaluated exactly once (processes may then
run different numbers of validation steps, which is safe: metrics sync once per epoch).
"""

from __future__ import annotations

import tempfile
from typing import Any, Optional

import numpy as np
import torch
from litdata import StreamingDataLoader, StreamingDataset

from lightning_depth.data.loaders import augmentation_seed
from lightning_depth.data.monkaa import MonkaaDataset
from lightning_depth.data.transforms import hflip as flip_lr
from lightning_depth.data.transforms import to_chw_tensor
from lightning_depth.io.errors import DataError

__all__ = [
    "DIODEStreamingDataset",
    "MonkaaStreamingDataset",
    "StreamingDataLoader",
    "storage_options",
]


def storage_options(endpoint_url: Optional[str] = None) -> dict[str, Any]:
    """litdata/boto3 storage options for an S3-compatible endpoint (``None``: AWS defaults).

    A plain ``http://`` endpoint (a local MinIO or moto server) also needs the workaround of
    :func:`_allow_plain_http`, applied here.
    """
    if not endpoint_url:
        return {}
    if endpoint_url.startswith("http://"):
        _allow_plain_http()
    return {"endpoint_url": endpoint_url}


def _allow_plain_http() -> None:
    """Let litdata's obstore transfers use ``http://`` endpoints.

    litdata 0.2.76 uploads (``optimize``) and prefetches chunks through obstore with fixed
    client options that lack ``allow_http``, and obstore then refuses any ``http://`` URL
    ("builder error: BadScheme"); boto3, used for the rest, accepts it. No litdata option
    reaches those client options, so they are extended in place, once per process; a later
    litdata that renames them is left alone.
    """
    from litdata.streaming import downloader

    options = getattr(downloader, "_OBSTORE_CLIENT_OPTIONS", None)
    if isinstance(options, dict) and "allow_http" not in options:
        downloader._OBSTORE_CLIENT_OPTIONS = {**options, "allow_http": True}


class _ShardDataset(StreamingDataset):
    """Reads a sample, checks its fields, and names the shard chunk when it cannot."""

    fields: dict[str, tuple[type, int]] = {}

    def __init__(
        self,
        input_dir: str,
        shuffle: bool = False,
        seed: int = 42,
        cache_dir: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        drop_last: Optional[bool] = None,
    ) -> None:
        if cache_dir is None and "://" in str(input_dir):
            # A fresh folder per run: litdata can hang on a stale cache of other shards.
            cache_dir = tempfile.mkdtemp(prefix="lightning_depth_shards_")
        super().__init__(
            input_dir,
            cache_dir=cache_dir,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            storage_options=storage_options(endpoint_url),
        )
        self.input_dir_name = str(input_dir)
        self.aug_seed = seed

    def _chunk_name(self, index: Any) -> str:
        # litdata has no public lookup of an item's chunk file; this is best effort for the
        # message only.
        try:
            chunk_index = getattr(index, "chunk_index", None)
            if chunk_index is None:
                chunk_index = self.cache._get_chunk_index_from_index(int(index))[1]
            chunk = self.cache._reader.config._chunks[chunk_index]["filename"]
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            chunk = "(unknown chunk)"
        return f"{self.input_dir_name}/{chunk}"

    def read_sample(self, index: Any) -> tuple[dict, int]:
        try:
            data = super().__getitem__(index)
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - litdata raises anything on a corrupt chunk
            raise DataError(
                f"shard {self._chunk_name(index)} is corrupt or unreadable "
                f"({type(e).__name__}: {e})"
            ) from e
        number = int(getattr(index, "index", index))
        if not isinstance(data, dict) or any(k not in data for k in self.fields):
            raise DataError(
                f"shard {self._chunk_name(index)}: sample {number} lacks the fields "
                f"{sorted(self.fields)}; was it written by `lightning_depth prepare`?"
            )
        for key, (dtype, ndim) in self.fields.items():
            value = data[key]
            if not isinstance(value, np.ndarray) or value.dtype != dtype or value.ndim != ndim:
                got = f"{getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}"
                raise DataError(
                    f"shard {self._chunk_name(index)}: sample {number} field {key!r} is {got}; "
                    f"expected {np.dtype(dtype)} with {ndim} dimensions"
                )
        return data, number

    def generator(self, number: int) -> torch.Generator:
        seed = augmentation_seed(self.aug_seed, self.current_epoch, number)
        return torch.Generator().manual_seed(seed)


class DIODEStreamingDataset(_ShardDataset):
    """DIODE samples from shards written by ``lightning_depth prepare diode``.

    Items as :class:`~lightning_depth.data.diode.DIODEDataset`'s: ``image`` (3, H, W) float32
    in [0, 1], ``target`` (1, H, W) float32, ``mask`` (1, H, W) bool, ``name`` str.

    Args:
        input_dir: shard folder of one split, local or ``s3://bucket/prefix``.
        shuffle: seeded shuffling (training).
        seed: seed of the shuffle and of the flips.
        hflip: flip each sample left-right with probability 0.5.
        size: expected ``(H, W)``; an item of another size raises (``None``: no check).
        cache_dir: download cache for remote shards (default: a fresh temporary folder).
        endpoint_url: S3-compatible endpoint, e.g. ``http://127.0.0.1:9000``.
        drop_last: litdata's (``None``: on under DDP only).
    """

    fields = {"image": (np.uint8, 3), "target": (np.float32, 2), "mask": (np.uint8, 2)}

    def __init__(
        self,
        input_dir: str,
        hflip: bool = False,
        size: Optional[tuple[int, int]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(input_dir, **kwargs)
        self.hflip = hflip
        self.size = None if size is None else (int(size[0]), int(size[1]))

    def __getitem__(self, index: Any) -> dict:
        data, number = self.read_sample(index)
        got = data["image"].shape[:2]
        if self.size is not None and tuple(got) != self.size:
            raise DataError(
                f"shard {self._chunk_name(index)} holds {got[0]}x{got[1]} (H x W) samples but "
                f"size is {self.size[0]}x{self.size[1]}; run `lightning_depth prepare diode "
                f"--size {self.size[0]} {self.size[1]}` or set size to the shards' size"
            )
        # The folder path scales by float32(1/255), not / 255; keep the same bits.
        image = torch.from_numpy(data["image"].astype(np.float32) * np.float32(1 / 255))
        sample = {
            "image": image.permute(2, 0, 1).contiguous(),
            "target": to_chw_tensor(data["target"]),
            "mask": to_chw_tensor(data["mask"] > 0),
        }
        if self.hflip and bool(torch.rand((), generator=self.generator(number)) < 0.5):
            sample["image"], sample["target"], sample["mask"] = flip_lr(
                sample["image"], sample["target"], sample["mask"]
            )
        sample["name"] = str(data["name"])
        return sample


class MonkaaStreamingDataset(_ShardDataset):
    """Monkaa samples from shards written by ``lightning_depth prepare monkaa``.

    Items as :class:`~lightning_depth.data.monkaa.MonkaaDataset`'s (``left``, ``right``,
    ``disparity``, ``name``), cropped or padded by the same code.

    Args:
        input_dir: shard folder of one split, local or ``s3://bucket/prefix``.
        training: random crops (seeded per sample and epoch) if true, else the evaluation
            transform.
        crop_size, eval_mode, eval_size: as :class:`~lightning_depth.data.monkaa.MonkaaDataset`.
        **kwargs: ``shuffle``, ``seed``, ``cache_dir``, ``endpoint_url``, ``drop_last``.
    """

    fields = {"left": (np.uint8, 3), "right": (np.uint8, 3), "disparity": (np.float32, 2)}

    def __init__(
        self,
        input_dir: str,
        training: bool = False,
        crop_size: tuple[int, int] = (256, 512),
        eval_mode: str = "crop",
        eval_size: Optional[tuple[int, int]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(input_dir, **kwargs)
        self.training = training
        # The file dataset with no files does the cropping, padding and normalisation.
        self.transform_with = MonkaaDataset(
            [], training=training, crop_size=crop_size, eval_mode=eval_mode, eval_size=eval_size
        )

    def __getitem__(self, index: Any) -> dict:
        data, number = self.read_sample(index)
        generator = self.generator(number) if self.training else None
        return self.transform_with.make_item(
            data["left"],
            data["right"],
            data["disparity"],
            str(data["name"]),
            source=f"{self.input_dir_name} sample {number}",
            generator=generator,
        )
