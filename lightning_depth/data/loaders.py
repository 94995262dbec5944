"""DataLoader construction shared by the DataModules."""

from __future__ import annotations

from typing import Optional

import lightning as L
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    trainer: Optional[L.Trainer] = None,
) -> DataLoader:
    """A DataLoader that keeps every sample exactly once in evaluation under DDP.

    Training loaders are left to Lightning, which adds a seeded ``DistributedSampler``.
    Evaluation loaders (``shuffle=False``) get an ``UnrepeatedDistributedSampler`` when the
    trainer runs more than one process: the default ``DistributedSampler`` pads the dataset
    with repeated samples so that every process has as many, and those repeats would count
    twice in the synced validation metrics. Lightning keeps a sampler that is already
    distributed.

    The last partial batch is kept (tiny demo sets would otherwise lose samples), and
    ``persistent_workers`` only applies with ``num_workers > 0``.
    """
    sampler = None
    if not shuffle and trainer is not None and trainer.world_size > 1:
        sampler = UnrepeatedDistributedSampler(
            dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        drop_last=False,
    )
