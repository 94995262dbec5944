"""What every dataset's DataModule shares: the map-style dataset over a layout and a source,
and :class:`DepthDataModule`, the typed base of ``DIODEDataModule`` and ``MonkaaDataModule``
(arguments, sources, the split, the loaders).
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Callable, Optional, Sequence

import lightning as L
from torch.utils.data import DataLoader, Dataset

from lightning_depth.data.archive import ArchiveSet
from lightning_depth.data.layout import Folder, Layout, Sample, SampleTransform, Source
from lightning_depth.data.loaders import Item, make_loader, split_item
from lightning_depth.data.splits import check_fractions, split_samples
from lightning_depth.data.transforms import check_size

__all__ = ["SOURCES", "DepthDataModule", "SampleDataset"]

#: where samples come from: an extracted folder, the original archives, litdata shards
SOURCES = ("folder", "archive", "shards")


class SampleDataset(Dataset):
    """Samples of a layout read from a source through a transform.

    Args:
        layout: the dataset's layout (reads and checks a sample).
        samples: samples of ``source`` (e.g. from ``layout.list(source)``); plain strings are
            taken as file paths.
        transform: the dataset's transform (record, then tensors).
        source: where the files are (default: a :class:`~lightning_depth.data.layout.Folder`,
            paths taken as they are).

    Items are ``transform(record)`` plus ``name`` (``layout.name_of``). An item may be asked
    for as ``index`` or ``(index, seed)`` (see :class:`~lightning_depth.data.loaders.
    SeededShuffleSampler`): the seed then drives the random augmentation.
    """

    def __init__(
        self,
        layout: Layout,
        samples: Sequence[Sequence],
        transform: SampleTransform,
        source: Optional[Source] = None,
    ) -> None:
        self.layout = layout
        self.transform = transform
        self.source = source if source is not None else Folder()
        self.samples = [
            tuple(p if isinstance(p, PurePath) else Path(p) for p in s) for s in samples
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def record(self, index: int) -> dict:
        """The record of sample ``index`` (what ``lightning_depth prepare`` stores) and its
        ``name``."""
        sample = self.samples[index]
        with self.source.local(sample) as files:
            arrays = self.layout.read(files)
            record = self.transform.record(arrays, [str(f) for f in files])
        return {"name": self.layout.name_of(sample), **record}

    def __getitem__(self, item: Item) -> dict:
        index, generator = split_item(item)
        record = self.record(index)
        where = self.source.where(self.samples[index][0])
        out = self.transform(record, generator=generator, where=where)
        out["name"] = record["name"]
        return out


class DepthDataModule(L.LightningDataModule):
    """Base of the dataset DataModules: one set of arguments, the same meaning everywhere.

    A subclass sets :attr:`layout` and implements :meth:`make_transform` (and, to generate
    demo data, :attr:`synth_requested` and :meth:`synthesize`); it passes the arguments below
    on (as ``**kwargs``, so LightningCLI and ``--help`` see them).

    Every listed sample falls in exactly one of train/val/test (see
    :mod:`~lightning_depth.data.splits`); the split is drawn from ``seed`` over the sorted
    sample list, so it is the same on every machine, rank and source. Only train is shuffled
    and augmented; with ``test_fraction=0`` test (and predict) use the validation split.

    Args:
        root: the dataset's folder (``source="folder"``).
        val_fraction: share held out for validation.
        test_fraction: share held out for test (0: test uses validation).
        size: training network input ``[H, W]``.
        hflip: random horizontal flips of the training split (where the dataset has them).
        seed: seed of the split, of the shuffle and of the augmentation.
        batch_size: training batch size.
        eval_batch_size: val/test/predict batch size (default ``batch_size``).
        num_workers: DataLoader workers.
        pin_memory: pin batches (for GPU training).
        persistent_workers: keep workers between epochs (only used with ``num_workers > 0``).
        source: where samples come from: ``"folder"`` (``root``), ``"archive"`` (the
            original archives read in place, see :mod:`~lightning_depth.data.archive`) or
            ``"shards"`` (written by ``lightning_depth prepare``, see
            :mod:`~lightning_depth.data.streaming`). Each gives the same samples in the same
            split.
        archives: the archive files, for ``source="archive"``.
        shards: shard folder or ``s3://bucket/prefix`` holding ``train/``, ``val/`` (and
            ``test/``), for ``source="shards"``; its samples are already split (the
            fractions, split ``seed`` and listing options are ``prepare``'s; ``seed`` still
            seeds the shuffle and augmentation).
        cache_dir: download cache for remote shards (default: a fresh temporary folder per
            run, as a stale litdata cache can hang); for archives, where their member indexes
            are kept (default: indexed again in every run).
        endpoint_url: S3-compatible endpoint for ``s3://`` shards.
    """

    layout: Layout

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        size: tuple[int, int] = (256, 256),
        hflip: bool = False,
        seed: int = 42,
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        source: str = "folder",
        archives: Optional[list[str]] = None,
        shards: Optional[str] = None,
        cache_dir: Optional[str] = None,
        endpoint_url: Optional[str] = None,
    ) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if source == "archive" and not archives:
            raise ValueError('source="archive" needs archives=[<archive file>, ...]')
        if source == "shards" and not shards:
            raise ValueError('source="shards" needs shards=<folder or s3://bucket/prefix>')
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError(
                f"batch_size and eval_batch_size must be >= 1, got {batch_size} and "
                f"{eval_batch_size}"
            )
        check_fractions(val_fraction, test_fraction)
        # saves the subclass's arguments too (Lightning collects every __init__ frame)
        self.save_hyperparameters()
        self.root = Path(root)
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.size = check_size(size, "size")
        self.hflip = hflip
        self.seed = seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers
        self.source = source
        self.archives, self.shards = archives, shards
        self.cache_dir, self.endpoint_url = cache_dir, endpoint_url
        self.train_samples: list[Sample] = []
        self.val_samples: list[Sample] = []
        self.test_samples: list[Sample] = []
        self.train_set: Optional[Dataset] = None
        self.val_set: Optional[Dataset] = None
        self.test_set: Optional[Dataset] = None

    # -- what a dataset provides -------------------------------------------------------------

    def make_transform(self, training: bool) -> SampleTransform:
        """The dataset's transform for the training split or for evaluation."""
        raise NotImplementedError

    @property
    def synth_requested(self) -> bool:
        """Whether ``prepare_data`` should generate data into an empty ``root``."""
        return False

    def synthesize(self) -> None:
        """Generate demo data into ``root`` (called when :attr:`synth_requested` and
        ``root`` holds no samples)."""
        raise NotImplementedError

    def split_unit(self) -> tuple[Optional[Callable], str]:
        """What the fractions count: ``(group_by, unit name)`` for
        :func:`~lightning_depth.data.splits.split_samples` (default: single samples)."""
        return None, "sample"

    def check_samples(self, source: Source, train: list[Sample]) -> None:
        """Fail at ``setup`` rather than at the first batch (default: nothing to check)."""

    # -- listing and splitting ---------------------------------------------------------------

    def open_source(self) -> Source:
        """The folder or the archive set (not for ``source="shards"``)."""
        if self.source == "archive":
            return ArchiveSet(self.archives, index_dir=self.cache_dir)
        if self.source == "folder":
            return Folder(self.root)
        raise ValueError("shards are already split; list_splits() reads a folder or archives")

    def list_splits(self) -> tuple[Source, tuple[list[Sample], list[Sample], list[Sample]]]:
        """The source and its samples split into ``(train, val, test)``; ``lightning_depth
        prepare`` writes these."""
        source = self.open_source()
        group_by, unit = self.split_unit()
        parts = split_samples(
            self.layout.list(source),
            self.val_fraction,
            self.test_fraction,
            self.seed,
            group_by=group_by,
            unit=unit,
        )
        return source, parts

    # -- LightningDataModule -----------------------------------------------------------------

    def prepare_data(self) -> None:
        if self.source == "archive" and self.cache_dir:
            # index once, on one process; setup on every process then loads the saved index
            ArchiveSet(self.archives, index_dir=self.cache_dir)
        if self.source == "folder" and self.synth_requested:
            if not self.layout.has_samples(Folder(self.root)):
                self.synthesize()

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        if self.source == "shards":
            self._setup_shards()
            return
        source, (train, val, test) = self.list_splits()
        self.train_samples, self.val_samples, self.test_samples = train, val, test
        self.check_samples(source, train)
        evaluation = self.make_transform(training=False)
        self.train_set = SampleDataset(self.layout, train, self.make_transform(True), source)
        self.val_set = SampleDataset(self.layout, val, evaluation, source)
        self.test_set = SampleDataset(self.layout, test or val, evaluation, source)

    def _setup_shards(self) -> None:
        # Built here, not in __init__: litdata reads the DDP rank when the dataset is made.
        from lightning_depth.data.streaming import ShardDataset

        base = self.shards.rstrip("/")
        common = dict(seed=self.seed, cache_dir=self.cache_dir, endpoint_url=self.endpoint_url)
        evaluation = self.make_transform(training=False)

        def split(name: str) -> Dataset:
            if name == "val" and self.val_fraction == 0:  # prepare wrote no val/
                return SampleDataset(self.layout, [], evaluation)
            return ShardDataset(f"{base}/{name}", evaluation, drop_last=False, **common)

        self.train_set = ShardDataset(
            f"{base}/train", self.make_transform(training=True), shuffle=True, **common
        )
        self.val_set = split("val")
        # prepare writes no test/ when test_fraction is 0; test then uses val, as for folders
        self.test_set = split("test" if self.test_fraction > 0 else "val")

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        if self.source == "shards" and not isinstance(dataset, SampleDataset):
            from lightning_depth.data.streaming import StreamingDataLoader

            # litdata splits the chunks between processes and workers itself, shuffles by
            # (seed, epoch), and its state_dict goes into Lightning checkpoints.
            return StreamingDataLoader(
                dataset,
                batch_size=batch_size,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                persistent_workers=self.persistent_workers and self.num_workers > 0,
            )
        return make_loader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            trainer=self.trainer,
            seed=self.seed,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)
