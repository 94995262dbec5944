"""Samplers and DataLoader construction shared by the DataModules."""

from __future__ import annotations

from typing import Iterator, Optional, Union

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler

#: what a dataset's ``__getitem__`` receives: an index, or ``(index, augmentation seed)``
Item = Union[int, tuple[int, int]]


def augmentation_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch: a pure function of its inputs."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> 1)


def split_item(item: Item) -> tuple[int, Optional[torch.Generator]]:
    """``index`` or ``(index, seed)`` -> ``(index, generator)``; the generator is ``None``
    (global random state) when no seed came with the index."""
    if isinstance(item, tuple):
        index, seed = item
        return int(index), torch.Generator().manual_seed(int(seed))
    return int(item), None


class SeededShuffleSampler(DistributedSampler):
    """Training order and augmentation as pure functions of ``(seed, epoch)``.

    Shuffles like ``DistributedSampler`` (``seed + epoch``; Lightning calls ``set_epoch``),
    shares the samples out between ``num_replicas`` processes (padding to equal shares as
    usual), and yields ``(index, augmentation_seed)`` so each sample's random flip or crop
    does not depend on the global random state. Hence a run resumed from a checkpoint sees
    exactly the batches the uninterrupted run would have, with or without workers, and each
    process of a DDP run sees its own disjoint share. Being a ``DistributedSampler``,
    Lightning keeps it instead of injecting its own.
    """

    def __init__(
        self, dataset: Dataset, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False
        )

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in super().__iter__():
            yield index, augmentation_seed(self.seed, self.epoch, index)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    trainer: Optional[L.Trainer] = None,
    seed: int = 0,
) -> DataLoader:
    """The DataModules' DataLoaders.

    Training (``shuffle=True``): a :class:`SeededShuffleSampler`, split between the
    trainer's processes. Evaluation: sequential, and under DDP an
    ``UnrepeatedDistributedSampler``: the default ``DistributedSampler`` pads the dataset
    with repeated samples so that every process has as many, and those repeats would count
    twice in the synced validation metrics.

    The last partial batch is kept (tiny demo sets would otherwise lose samples), and
    ``persistent_workers`` only applies with ``num_workers > 0``.
    """
    world_size = trainer.world_size if trainer is not None else 1
    rank = trainer.global_rank if trainer is not None else 0
    sampler = None
    if shuffle:
        sampler = SeededShuffleSampler(dataset, seed=seed, num_replicas=world_size, rank=rank)
    elif world_size > 1:
        sampler = UnrepeatedDistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=False
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        drop_last=False,
    )
