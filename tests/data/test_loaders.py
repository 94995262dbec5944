"""Samplers: seeded order and augmentation, disjoint DDP shares, unrepeated evaluation."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

from lightning_depth.data.loaders import (
    SeededShuffleSampler,
    augmentation_seed,
    make_loader,
    split_item,
)


class _Trainer:
    def __init__(self, world_size: int, global_rank: int) -> None:
        self.world_size, self.global_rank = world_size, global_rank


def _epoch(sampler: SeededShuffleSampler, epoch: int) -> list[tuple[int, int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_order_and_seeds_are_functions_of_seed_and_epoch() -> None:
    data = list(range(10))
    a, b = SeededShuffleSampler(data, seed=3), SeededShuffleSampler(data, seed=3)
    assert _epoch(a, 2) == _epoch(b, 2)
    assert [i for i, _ in _epoch(a, 0)] != [i for i, _ in _epoch(a, 1)]
    assert sorted(i for i, _ in _epoch(a, 5)) == data
    assert _epoch(SeededShuffleSampler(data, seed=4), 2) != _epoch(a, 2)
    # the global random state plays no part
    torch.manual_seed(0)
    first = _epoch(a, 7)
    torch.manual_seed(1)
    assert _epoch(a, 7) == first


def test_augmentation_seed_differs_per_sample_and_epoch() -> None:
    seeds = {augmentation_seed(0, e, i) for e in range(3) for i in range(20)}
    assert len(seeds) == 60
    assert augmentation_seed(1, 2, 3) == augmentation_seed(1, 2, 3)


def test_split_item_gives_a_reproducible_generator() -> None:
    index, gen = split_item((4, 123))
    assert index == 4
    assert torch.equal(
        torch.rand(3, generator=gen), torch.rand(3, generator=torch.Generator().manual_seed(123))
    )
    assert split_item(5) == (5, None)


def test_two_processes_share_an_epoch_disjointly() -> None:
    data = list(range(12))
    shares = [_epoch(SeededShuffleSampler(data, seed=0, num_replicas=2, rank=r), 1) for r in (0, 1)]
    indices = [i for share in shares for i, _ in share]
    assert sorted(indices) == data


@pytest.mark.parametrize("world_size", [1, 2])
def test_make_loader_samplers(world_size: int) -> None:
    data = list(range(5))
    trainer = _Trainer(world_size, 0)
    train = make_loader(data, batch_size=2, shuffle=True, trainer=trainer, seed=9)
    assert (
        isinstance(train.sampler, SeededShuffleSampler) and train.sampler.num_replicas == world_size
    )
    evaluation = make_loader(data, batch_size=2, shuffle=False, trainer=trainer)
    if world_size == 1:
        assert [int(x) for b in evaluation for x in b] == data
    else:
        assert isinstance(evaluation.sampler, UnrepeatedDistributedSampler)
        # 5 samples over 2 processes: 3 + 2, no sample repeated
        other = make_loader(data, batch_size=2, shuffle=False, trainer=_Trainer(2, 1))
        seen = [int(x) for b in evaluation for x in b] + [int(x) for b in other for x in b]
        assert sorted(seen) == data


def test_an_evaluation_split_smaller_than_the_world_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"has 1 sample\(s\) but the run has 2 processes"):
        make_loader(list(range(1)), batch_size=2, shuffle=False, trainer=_Trainer(2, 0))
    # enough samples: one per process at least
    assert (
        len(make_loader(list(range(2)), batch_size=2, shuffle=False, trainer=_Trainer(2, 1))) == 1
    )
