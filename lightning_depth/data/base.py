"""What every dataset's DataModule shares: the map-style dataset over a layout and a source,
and :class:`DepthDataModule`, the typed base of ``DIODEDataModule`` and ``MonkaaDataModule``
(arguments, sources, generated data, the split, the pre-flight check, the loaders).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Callable, Optional, Sequence

import lightning as L
from torch.utils.data import DataLoader, Dataset

from lightning_depth.data.archive import ArchiveSet
from lightning_depth.data.check import ON_BAD_SAMPLES, ScanResult, default_check_dir, scan
from lightning_depth.data.check import write_report as write_check_report
from lightning_depth.data.errors import worker_errors
from lightning_depth.data.generated import Generated, default_synth_dir, ensure_set
from lightning_depth.data.layout import Folder, Layout, Sample, SampleTransform, Source
from lightning_depth.data.loaders import Item, make_loader, split_item
from lightning_depth.data.log import announce
from lightning_depth.data.splits import check_fractions, split_samples
from lightning_depth.data.transforms import check_size
from lightning_depth.io.errors import DataError

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
        with worker_errors():  # from a DataLoader worker: the message, not its traceback
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

    Data come from ``root`` (only ever read), or, with no ``root``, from a generated set
    (:meth:`generated`: ``synth_*`` arguments of the subclass) written on first use into
    ``synth_dir``, a folder of its own named by the settings; a given ``root`` makes the
    ``synth_*`` arguments inapplicable (said in one log line). ``setup`` checks every listed
    sample first (:mod:`~lightning_depth.data.check`): bad samples stop the run with one error
    listing them all, or are left out (``on_bad_samples="exclude"``) with a written report.

    Args:
        root: the dataset's folder (``source="folder"``), only read; ``None``: the generated
            set (the subclass's ``synth_*`` arguments).
        synth_dir: where the generated set is written and read (default
            ``.cache/lightning_depth/<name of the settings>``, e.g.
            ``diode_240_96x128_seed0``). Must be new, empty, or hold that very set.
        on_bad_samples: ``"error"``: bad samples stop ``setup`` with one error naming them;
            ``"exclude"``: they are left out of their split, and a JSON report listing them is
            written next to the check cache (its path is logged).
        val_fraction: share held out for validation.
        test_fraction: share held out for test (0: test uses validation).
        size: training network input ``[H, W]``.
        hflip: random horizontal flips of the training split (where the dataset has them).
        seed: seed of the split, and of the shuffle and augmentation unless ``shuffle_seed``
            is given.
        shuffle_seed: seed of the training shuffle and augmentation only (``None``: ``seed``):
            other training runs on the same split, e.g. an ablation's seeds.
        batch_size: training batch size.
        eval_batch_size: val/test/predict batch size (default ``batch_size``).
        num_workers: DataLoader workers; ``None``: what the machine has to spare, decided
            when a loader is made from ``n = cpus // processes`` (the CPUs this process may
            use, shared by the trainer's processes on this node): ``min(4, n - 1)``, and 0
            when ``n < 3`` (on a 2-core share a lone worker competes with the training
            process's own threads: the mono demo measured slower with one than with none).
        pin_memory: pin batches in page-locked memory (faster copies to a GPU); ``None``:
            pin when the trainer runs on CUDA, not on CPU.
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
            are kept (default: indexed again in every run); for folders and archives, the
            pre-flight check keeps its outcomes in ``<cache_dir>/checks`` (default
            ``~/.cache/lightning_depth/checks``).
        endpoint_url: S3-compatible endpoint for ``s3://`` shards.
    """

    layout: Layout

    def __init__(
        self,
        root: Optional[str] = None,
        synth_dir: Optional[str] = None,
        on_bad_samples: str = "error",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        size: tuple[int, int] = (256, 256),
        hflip: bool = False,
        seed: int = 42,
        shuffle_seed: Optional[int] = None,
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        num_workers: Optional[int] = None,
        pin_memory: Optional[bool] = None,
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
        if num_workers is not None and num_workers < 0:
            raise ValueError(f"num_workers must be >= 0 or None (automatic), got {num_workers}")
        if on_bad_samples not in ON_BAD_SAMPLES:
            raise ValueError(
                f"on_bad_samples must be one of {ON_BAD_SAMPLES}, got {on_bad_samples!r}"
            )
        check_fractions(val_fraction, test_fraction)
        # saves the subclass's arguments too (Lightning collects every __init__ frame)
        self.save_hyperparameters()
        self.root = Path(root) if root is not None else None
        self.synth_dir = Path(synth_dir) if synth_dir is not None else None
        self.on_bad_samples = on_bad_samples
        self.check_result: Optional[ScanResult] = None
        self.excluded_report: Optional[Path] = None
        self._told_root = False
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.size = check_size(size, "size")
        self.hflip = hflip
        self.seed = seed
        self.shuffle_seed = seed if shuffle_seed is None else shuffle_seed
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

    def generated(self) -> Optional[Generated]:
        """The generated set the ``synth_*`` arguments ask for (``None``: none)."""
        return None

    def split_unit(self) -> tuple[Optional[Callable], str]:
        """What the fractions count: ``(group_by, unit name)`` for
        :func:`~lightning_depth.data.splits.split_samples` (default: single samples)."""
        return None, "sample"

    def check_samples(self, source: Source, train: list[Sample]) -> None:
        """Fail at ``setup`` rather than at the first batch (default: nothing to check)."""

    # -- listing and splitting ---------------------------------------------------------------

    @property
    def data_root(self) -> Path:
        """The folder read for ``source="folder"``: ``root``, else the generated set's folder.

        Raises:
            ValueError: neither ``root`` nor a generated set is configured.
        """
        if self.root is not None:
            if not self._told_root and self.generated() is not None:
                announce(
                    f"root {self.root} is given: it is only read, and the synth_* settings "
                    "(generated data) do not apply"
                )
            self._told_root = True
            return self.root
        generated = self.generated()
        if generated is None:
            raise ValueError(
                f"{type(self).__name__} has no data: pass root=<the dataset folder> (or "
                "source=archive/shards), or synth_* settings for a generated demo set"
            )
        return self.synth_dir if self.synth_dir is not None else default_synth_dir(generated)

    def _generate(self) -> None:
        """Write the generated set into its folder unless it is there already."""
        if self.source == "folder" and self.root is None and self.generated() is not None:
            ensure_set(self.generated(), self.data_root)

    def open_source(self) -> Source:
        """The folder or the archive set (not for ``source="shards"``)."""
        if self.source == "archive":
            return ArchiveSet(self.archives, index_dir=self.cache_dir)
        if self.source == "folder":
            return Folder(self.data_root)
        raise ValueError("shards are already split; list_splits() reads a folder or archives")

    def list_splits(
        self, missing: str = "error"
    ) -> tuple[Source, tuple[list[Sample], list[Sample], list[Sample]]]:
        """The source and its samples split into ``(train, val, test)`` (``missing``: as
        :meth:`~lightning_depth.data.layout.Layout.list`)."""
        source = self.open_source()
        group_by, unit = self.split_unit()
        parts = split_samples(
            self.layout.list(source, missing=missing),
            self.val_fraction,
            self.test_fraction,
            self.seed,
            group_by=group_by,
            unit=unit,
        )
        return source, parts

    def check_data(self, workers: Optional[int] = None) -> tuple[Source, ScanResult, tuple]:
        """List and split the samples and check every one (the pre-flight check; outcomes
        cached, see :mod:`~lightning_depth.data.check`); nothing is raised for bad samples.

        Returns:
            ``(source, result, (train, val, test))``, the splits as listed (bad samples
            included).
        """
        source, parts = self.list_splits(missing="keep")
        samples = [sample for part in parts for sample in part]
        result = scan(
            self.layout, source, samples, default_check_dir(self.cache_dir), workers=workers
        )
        self.check_result = result
        return source, result, parts

    def checked_splits(self) -> tuple[Source, tuple[list[Sample], list[Sample], list[Sample]]]:
        """:meth:`list_splits` after the pre-flight check: what ``setup`` and ``lightning_depth
        prepare`` use.

        Raises:
            DataError: bad samples, all listed (``on_bad_samples="error"``), or none left to
                train on.
        """
        source, result, parts = self.check_data()
        announce(result.summary())
        if not result.bad:
            return source, parts
        if self.on_bad_samples == "error":
            raise DataError(
                f"{result.message()}\nChecked before training; fix or remove these files, or "
                "pass on_bad_samples=exclude (--data.init_args.on_bad_samples=exclude) to "
                "leave them out with a written report."
            )
        report = default_check_dir(self.cache_dir) / f"{result.cache_file.stem}.excluded.json"
        named = dict(zip(("train", "val", "test"), parts))
        self.excluded_report = write_check_report(result, named, self.layout, source, report)
        kept = tuple([s for s in part if s not in result.bad] for part in parts)
        left_out = ", ".join(f"{len(a) - len(b)} {n}" for (n, a), b in zip(named.items(), kept))
        announce(
            f"excluded {len(result.bad)} bad samples of {result.what} ({left_out}); "
            f"report: {self.excluded_report}"
        )
        if not kept[0]:
            raise DataError(
                f"{result.message()}\nNo training sample is left once they are excluded."
            )
        return source, kept

    # -- LightningDataModule -----------------------------------------------------------------

    def prepare_data(self) -> None:
        if self.source == "archive" and self.cache_dir:
            # index once, on one process; setup on every process then loads the saved index
            ArchiveSet(self.archives, index_dir=self.cache_dir)
        self._generate()

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        if self.source == "shards":
            self._setup_shards()
            return
        self._generate()  # when prepare_data was not called (the Trainer calls it)
        source, (train, val, test) = self._checked_splits_once_per_node()
        self.train_samples, self.val_samples, self.test_samples = train, val, test
        self.check_samples(source, train)
        evaluation = self.make_transform(training=False)
        self.train_set = SampleDataset(self.layout, train, self.make_transform(True), source)
        self.val_set = SampleDataset(self.layout, val, evaluation, source)
        self.test_set = SampleDataset(self.layout, test or val, evaluation, source)

    def _checked_splits_once_per_node(self) -> tuple[Source, tuple]:
        # Under DDP the first process of each node checks (its worker pool uses the whole
        # machine) while the others wait, then they find its outcomes in the cache. Every
        # process passes the barrier once, errors included, so none is left waiting.
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return self.checked_splits()
        if trainer.local_rank != 0:
            trainer.strategy.barrier("lightning_depth data check")
            return self.checked_splits()
        try:
            return self.checked_splits()
        finally:
            trainer.strategy.barrier("lightning_depth data check")

    def _setup_shards(self) -> None:
        # Built here, not in __init__: litdata reads the DDP rank when the dataset is made.
        from lightning_depth.data.streaming import ShardDataset

        base = self.shards.rstrip("/")
        common = dict(
            seed=self.shuffle_seed, cache_dir=self.cache_dir, endpoint_url=self.endpoint_url
        )
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

    def loader_workers(self) -> int:
        """``num_workers``, or when ``None``, the automatic count (see the class)."""
        if self.num_workers is not None:
            return self.num_workers
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        processes = self.trainer.num_devices if self.trainer is not None else 1
        share = (cpus or 1) // max(1, processes)
        return min(4, share - 1) if share >= 3 else 0

    def loader_pin_memory(self) -> bool:
        """``pin_memory``, or when ``None``, whether the trainer runs on CUDA."""
        if self.pin_memory is not None:
            return self.pin_memory
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        workers, pin_memory = self.loader_workers(), self.loader_pin_memory()
        if self.source == "shards" and not isinstance(dataset, SampleDataset):
            from lightning_depth.data.streaming import ShardLoader, StreamingDataLoader

            # litdata splits the chunks between processes and workers itself and shuffles by
            # (seed, epoch); for training, the epoch is the trainer's and the loader's state
            # goes into Lightning checkpoints (exact mid-epoch resume).
            loader = ShardLoader if shuffle else StreamingDataLoader
            return loader(
                dataset,
                batch_size=batch_size,
                num_workers=workers,
                pin_memory=pin_memory,
                persistent_workers=self.persistent_workers and workers > 0,
                **({"trainer": self.trainer} if shuffle else {}),
            )
        return make_loader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=workers,
            pin_memory=pin_memory,
            persistent_workers=self.persistent_workers,
            trainer=self.trainer,
            seed=self.shuffle_seed,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)
