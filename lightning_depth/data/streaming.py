"""Samples from litdata shards (the source ``"shards"``, written by ``lightning_depth prepare``),
local or in object storage.

A shard folder holds one split (``<out>/train``, ``<out>/val``, ``<out>/test``) as litdata
chunks of *records*: a sample's name and the arrays its dataset's transform computes before
anything random (its ``record``; e.g. DIODE's resized image and log-depth target, Monkaa's
full-resolution pair and disparity). Reading applies the rest of the same transform (flip,
crop, normalise), so a sample from shards equals the same sample from the folder.

A :class:`ShardDataset` is a litdata ``StreamingDataset``: under DDP (detected when it is built,
which is why the DataModules build them in ``setup()``) each process and worker reads its own
chunks; shuffling is seeded by ``(seed, epoch)``. A :class:`ShardLoader` (a litdata
``StreamingDataLoader``) takes its epoch from the trainer and has a ``state_dict`` that
Lightning stores in checkpoints, so a resumed run continues mid-epoch with exactly the
batches not yet trained, and later epochs are the uninterrupted run's.
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
from typing import Any, Iterator, Optional

import numpy as np
import torch
from litdata import StreamingDataLoader, StreamingDataset

from lightning_depth.data.errors import worker_errors
from lightning_depth.data.layout import SampleTransform
from lightning_depth.data.loaders import augmentation_seed
from lightning_depth.io.errors import DataError

__all__ = ["ShardDataset", "ShardLoader", "StreamingDataLoader", "storage_options"]


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


class ShardDataset(StreamingDataset):
    """One split's shards, read through a dataset's transform.

    Items as the same dataset's folder items: ``transform(record)`` plus ``name``.

    Args:
        input_dir: shard folder of one split, local or ``s3://bucket/prefix``.
        transform: the dataset's transform (its ``fields`` are checked per record).
        shuffle: seeded shuffling (training).
        seed: seed of the shuffle and of the random augmentation.
        cache_dir: download cache for remote shards (default: a fresh temporary folder).
        endpoint_url: S3-compatible endpoint, e.g. ``http://127.0.0.1:9000``.
        drop_last: litdata's (``None``: on under DDP only).
    """

    def __init__(
        self,
        input_dir: str,
        transform: SampleTransform,
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
        # not ``transform``: litdata applies an attribute of that name to the raw record
        self.sample_transform = transform
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

    def read_record(self, index: Any) -> tuple[dict, int]:
        """The record at ``index`` with its fields checked, and the sample's number."""
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
        fields = self.sample_transform.fields
        if not isinstance(data, dict) or any(k not in data for k in ("name", *fields)):
            raise DataError(
                f"shard {self._chunk_name(index)}: sample {number} lacks the fields "
                f"{sorted(fields)}; was it written by `lightning_depth prepare`?"
            )
        for key, (dtype, ndim) in fields.items():
            value = data[key]
            if not isinstance(value, np.ndarray) or value.dtype != dtype or value.ndim != ndim:
                got = f"{getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}"
                raise DataError(
                    f"shard {self._chunk_name(index)}: sample {number} field {key!r} is {got}; "
                    f"expected {np.dtype(dtype)} with {ndim} dimensions"
                )
        return data, number

    def __getitem__(self, index: Any) -> dict:
        with worker_errors():  # from a DataLoader worker: the message, not its traceback
            record, number = self.read_record(index)
            # the augmentation of a sample is a function of (seed, epoch, sample), as in
            # loaders.SeededShuffleSampler
            seed = augmentation_seed(self.aug_seed, self.current_epoch, number)
            item = self.sample_transform(
                record,
                generator=torch.Generator().manual_seed(seed),
                where=f"shards {self.input_dir_name} (sample {number})",
            )
        item["name"] = str(record["name"])
        return item


class ShardLoader(StreamingDataLoader):
    """litdata's ``StreamingDataLoader`` with the epoch taken from the trainer and a state
    that resumes exactly through Lightning.

    litdata counts epochs itself, one per ``iter()``, and restores its count only from a
    loaded state; Lightning loads loader states only when it resumes mid-epoch, so a run
    resumed at an epoch boundary would replay epoch 1's order, and (as Lightning stops
    asking for batches after the last one instead of exhausting the iterator) a run resumed
    mid-epoch kept replaying from the loaded position in later epochs. Here each iteration
    is epoch ``trainer.current_epoch`` (litdata's ``current_epoch`` is that + 1, as in an
    uninterrupted run); without a trainer, epochs count up from 0.

    ``state_dict()`` is ``{"epoch", "batches"}`` (batches yielded in that epoch) and, mid-epoch,
    litdata's own state, which replays the shuffle and skips the consumed samples without
    reading them. After ``load_state_dict()`` the next iteration of that epoch goes on from
    there; any other epoch starts from its beginning.

    Args:
        dataset: the split's :class:`ShardDataset`.
        trainer: the trainer whose ``current_epoch`` each iteration is (``None``: count).
        **kwargs: ``StreamingDataLoader``'s.
    """

    def __init__(self, dataset: ShardDataset, trainer: Any = None, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.trainer = trainer
        self._epoch = -1
        self._batches = 0
        self._resume: Optional[dict[str, Any]] = None

    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, None
        if self.trainer is not None:
            epoch = int(self.trainer.current_epoch)
        else:
            epoch = resume["epoch"] if resume is not None else self._epoch + 1
        batches = resume["batches"] if resume is not None and resume["epoch"] == epoch else 0
        self._epoch, self._batches = epoch, batches
        if batches >= len(self):
            return  # that epoch was finished
        if batches > 0:
            if "litdata" not in resume:
                raise ValueError(
                    f"shard loader state stops after {batches} batches of epoch {epoch} but "
                    f"holds no litdata position (saved with {batches} batches or fewer per "
                    f"epoch; this run has {len(self)}: another batch size or process count?)"
                )
            # litdata replays to the saved position (its load sets `restore`)
            super().load_state_dict(resume["litdata"])
        else:
            self.restore = False  # left on if the last resumed epoch was not exhausted
            self.current_epoch = epoch  # litdata's __iter__ adds 1: its epochs start at 1
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epoch": self._epoch, "batches": self._batches}
        if 0 < self._batches < len(self):
            state["litdata"] = super().state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "epoch" not in state and {"current_epoch", "num_samples_yielded"} <= set(state):
            # saved by litdata's own loader (checkpoints from before ShardLoader), whose
            # epochs start at 1 and which counts samples
            yielded, size = int(state["num_samples_yielded"]), int(self.batch_size or 1)
            state = {
                "epoch": int(state["current_epoch"]) - 1,
                "batches": -(-yielded // size),
                "litdata": state,
            }
        if "epoch" not in state or "batches" not in state:
            raise ValueError(
                f"shard loader state with keys {sorted(state)} lacks 'epoch' and 'batches'; it "
                "was not saved by a ShardLoader (a checkpoint of another data source, or of "
                "litdata's own loader?)"
            )
        self._resume = dict(state)
