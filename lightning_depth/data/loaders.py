"""Samplers and DataLoader construction shared by the DataModules."""

from __future__ import annotations

from itertools import islice
from typing import Any, Iterator, Optional, Union

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

    :attr:`skip` (set by :class:`ResumableLoader`) leaves out the first ``skip`` indices of
    the next iteration's share, once; the length stays the full share.
    """

    def __init__(
        self, dataset: Dataset, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip, self.skip = self.skip, 0
        for index in islice(super().__iter__(), skip, None):
            yield index, augmentation_seed(self.seed, self.epoch, index)


class ResumableLoader(DataLoader):
    """A training DataLoader over a :class:`SeededShuffleSampler` that knows how far into its
    epoch it is, so that a run resumed mid-epoch trains exactly the batches not yet trained.

    ``state_dict()`` records the epoch and the batches yielded in it; after
    ``load_state_dict()``, the next iteration of that epoch starts after them (any other
    epoch starts from its beginning). Lightning saves the state of a training loader that has
    these two methods in its checkpoints and loads it when it resumes mid-epoch. The skipped
    batches are not read: the sampler starts after their indices, and as order and
    augmentation are functions of ``(seed, epoch, index)``, the rest of the epoch is what
    the uninterrupted run had. Resuming mid-epoch needs the same batch size, seed and number
    of processes (else the skipped positions would be other samples): otherwise
    ``load_state_dict`` raises.

    The epoch is read when the first batch is asked for (iterating is lazy), after Lightning
    has called ``set_epoch``, also with workers, which would otherwise draw indices as soon
    as the iterator is made.

    Arguments are ``DataLoader``'s; ``sampler`` must be a :class:`SeededShuffleSampler`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, SeededShuffleSampler):
            raise TypeError(
                "ResumableLoader needs sampler=SeededShuffleSampler(...), got "
                f"{type(self.sampler).__name__}"
            )
        self._epoch = self.sampler.epoch
        self._batches = 0
        self._resume: Optional[dict[str, int]] = None

    def __iter__(self) -> Iterator[Any]:
        sampler = self.sampler
        resume, self._resume = self._resume, None
        skip = resume["batches"] if resume is not None and resume["epoch"] == sampler.epoch else 0
        self._epoch, self._batches = sampler.epoch, skip
        sampler.skip = skip * self.batch_size
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def _setting(self) -> dict[str, int]:
        sampler = self.sampler
        return {
            "batch_size": int(self.batch_size),
            "seed": int(sampler.seed),
            "num_replicas": int(sampler.num_replicas),
        }

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "batches"}`` (batches yielded in that epoch), with what they depend
        on: ``batch_size``, ``seed``, ``num_replicas``, ``length`` (batches per epoch)."""
        return {
            "epoch": self._epoch,
            "batches": self._batches,
            "length": len(self),
            **self._setting(),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        missing = {"epoch", "batches", "length", *self._setting()} - set(state)
        if missing:
            raise ValueError(
                f"training loader state {state!r} lacks {sorted(missing)}; it was not saved by a "
                "ResumableLoader (a checkpoint of another data source?)"
            )
        if 0 < state["batches"] < state["length"]:
            now = self._setting()
            saved = {k: state[k] for k in now}
            if saved != now:
                raise ValueError(
                    f"the checkpoint stopped after {state['batches']} of {state['length']} "
                    f"batches of epoch {state['epoch']} with {saved}; this run has {now}. "
                    "Resuming mid-epoch needs the same batch size, seed and number of "
                    "processes; resume from an end-of-epoch checkpoint (latest-epoch*.ckpt) "
                    "to change them."
                )
        self._resume = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}


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

    Training (``shuffle=True``): a :class:`ResumableLoader` over a
    :class:`SeededShuffleSampler`, split between the trainer's processes. Evaluation:
    sequential, and under DDP an
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
        if len(dataset) < world_size:
            # UnrepeatedDistributedSampler would fail an assertion; a process with no sample
            # would also have no metric state to sync.
            raise ValueError(
                f"an evaluation split has {len(dataset)} sample(s) but the run has {world_size} "
                "processes, and each process needs at least one: run on fewer processes or "
                "hold out more data (val_fraction / test_fraction)"
            )
        sampler = UnrepeatedDistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=False
        )
    loader = ResumableLoader if shuffle else DataLoader
    return loader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        drop_last=False,
    )
