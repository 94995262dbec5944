"""What the DIODE and Monkaa DataModules share: the sample source (a folder, the original
archives read in place, or litdata shards), archive indexing, and the loaders."""

from __future__ import annotations

from typing import Optional, Sequence

import lightning as L
from torch.utils.data import DataLoader, Dataset

from lightning_depth.data.loaders import make_loader

__all__ = ["SOURCES", "SourceDataModule"]

SOURCES = ("folder", "archive", "shards")


class SourceDataModule(L.LightningDataModule):
    """Base of :class:`~lightning_depth.data.DIODEDataModule` and
    :class:`~lightning_depth.data.MonkaaDataModule`.

    A subclass saves its init arguments with ``save_hyperparameters()`` (these names are read:
    ``source``, ``archives``, ``shards``, ``cache_dir``, ``seed``, ``batch_size``,
    ``num_workers``, ``pin_memory``, ``persistent_workers``), sets ``eval_batch_size``, and
    builds ``train_set``, ``val_set`` and ``test_set`` in ``setup``.
    """

    train_set: Optional[Dataset] = None
    val_set: Optional[Dataset] = None
    test_set: Optional[Dataset] = None
    eval_batch_size: int

    @staticmethod
    def check_source(
        source: str,
        archives: Optional[Sequence[str]],
        shards: Optional[str],
        batch_size: int,
        eval_batch_size: Optional[int],
    ) -> None:
        """Raise ``ValueError`` for an unknown source, a source without what it needs, or a
        batch size below 1."""
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

    def index_archives(self) -> None:
        """``prepare_data``'s part for archives: index them once, on one process, into
        ``cache_dir``; ``setup`` on every process then loads the saved index."""
        hp = self.hparams
        if hp.source == "archive" and hp.cache_dir:
            from lightning_depth.data.archive import ArchiveSet

            ArchiveSet(hp.archives, index_dir=hp.cache_dir)

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        hp = self.hparams
        if hp.source == "shards":
            from lightning_depth.data.streaming import StreamingDataLoader

            # litdata splits the chunks between processes and workers itself, shuffles by
            # (seed, epoch), and its state_dict goes into Lightning checkpoints.
            return StreamingDataLoader(
                dataset,
                batch_size=batch_size,
                num_workers=hp.num_workers,
                pin_memory=hp.pin_memory,
                persistent_workers=hp.persistent_workers and hp.num_workers > 0,
            )
        return make_loader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            persistent_workers=hp.persistent_workers,
            trainer=self.trainer,
            seed=hp.seed,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)
