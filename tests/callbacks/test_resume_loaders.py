"""The training loaders' part of exact resume (``data/loaders.py`` ``ResumableLoader`` and
``data/streaming.py`` ``ShardLoader``), without a Trainer: the state after some batches makes
a new loader go on with exactly the rest of that epoch, without reading what it skips; other
epochs start from their beginning; a mismatch that would skip other samples is an error."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import Dataset

from lightning_depth.data import DIODEDataModule, synthesize_diode
from lightning_depth.data.loaders import Item, ResumableLoader, make_loader, split_item
from lightning_depth.data.prepare import main as prepare


class _Indices(Dataset):
    """Items are their index; ``reads`` records what was read (in this process)."""

    def __init__(self, n: int) -> None:
        self.n, self.reads = n, []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item: Item) -> int:
        index, _ = split_item(item)
        self.reads.append(index)
        return index


def _loader(data: Dataset, batch_size: int = 3, seed: int = 1, workers: int = 0):
    return make_loader(data, batch_size=batch_size, shuffle=True, num_workers=workers, seed=seed)


def _epoch(loader, epoch: int) -> list[list[int]]:
    iterator = iter(loader)  # made before set_epoch, as Lightning does when it resumes
    loader.sampler.set_epoch(epoch)
    return [batch.tolist() for batch in iterator]


@pytest.mark.parametrize("workers", [0, 2])
def test_state_after_some_batches_resumes_with_the_rest_of_the_epoch(workers: int) -> None:
    full = _epoch(_loader(_Indices(11), workers=workers), 2)
    assert len(full) == 4
    interrupted = _loader(_Indices(11), workers=workers)
    interrupted.sampler.set_epoch(2)
    for i, _ in enumerate(interrupted):
        if i == 1:
            state = interrupted.state_dict()
            break
    assert (state["epoch"], state["batches"], state["length"]) == (2, 2, 4)

    data = _Indices(11)
    resumed = _loader(data, workers=workers)
    assert isinstance(resumed, ResumableLoader)
    resumed.load_state_dict(state)
    assert _epoch(resumed, 2) == full[2:]
    if workers == 0:  # the skipped batches were not read
        assert sorted(data.reads) == sorted(i for batch in full[2:] for i in batch)
    assert resumed.state_dict()["batches"] == 4  # the whole epoch, counted on
    assert _epoch(resumed, 3) == _epoch(_loader(_Indices(11)), 3)  # then whole epochs


def test_a_state_of_another_epoch_starts_from_the_beginning() -> None:
    loader = _loader(_Indices(11))
    loader.load_state_dict({**_loader(_Indices(11)).state_dict(), "epoch": 1, "batches": 2})
    assert _epoch(loader, 2) == _epoch(_loader(_Indices(11)), 2)


@pytest.mark.parametrize("change", [{"batch_size": 2}, {"seed": 2}], ids=["batch_size", "seed"])
def test_resuming_mid_epoch_with_other_batches_is_an_error(change: dict) -> None:
    state = {**_loader(_Indices(11)).state_dict(), "batches": 2}
    other = _loader(_Indices(11), **change)
    with pytest.raises(ValueError, match="Resuming mid-epoch needs the same batch size, seed"):
        other.load_state_dict(state)
    # at an epoch's end (or before it began) nothing is skipped: any setting will do
    other.load_state_dict({**state, "batches": 4})


def test_a_foreign_state_is_an_error() -> None:
    with pytest.raises(ValueError, match="not saved by a ResumableLoader"):
        _loader(_Indices(11)).load_state_dict({"current_epoch": 1, "num_samples_yielded": 3})


# -- shards -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diode")
    synthesize_diode(root / "folder", n=12, size=(16, 24), seed=1)
    argv = ["diode", "--src", str(root / "folder"), "--out", str(root / "shards")]
    assert prepare([*argv, "--size", "16x16", "--chunk-bytes", "4kb"]) == 0
    return root


def _shard_loader(root: Path, trainer=None):
    data = DIODEDataModule(
        str(root / "folder"), source="shards", shards=str(root / "shards"), size=(16, 16),
        batch_size=2, seed=7, num_workers=0, hflip=True,
    )  # fmt: skip
    data.setup()
    loader = data.train_dataloader()
    loader.trainer = trainer  # what it reads: trainer.current_epoch
    return loader


def _shard_epoch(loader) -> list[tuple[list[str], torch.Tensor]]:
    return [(batch["name"], batch["image"]) for batch in loader]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and torch.equal(x[1], y[1]) for x, y in zip(a, b))


def test_shard_loader_takes_its_epoch_from_the_trainer(shards: Path) -> None:
    counting = _shard_loader(shards)
    epochs = [_shard_epoch(counting) for _ in range(3)]
    assert not _same(epochs[0], epochs[2])
    trainer = SimpleNamespace(current_epoch=2)
    # a new process at epoch 2 (a resume at an epoch boundary) gets epoch 2's order and flips
    assert _same(_shard_epoch(_shard_loader(shards, trainer)), epochs[2])


def test_shard_loader_state_resumes_mid_epoch_and_then_whole_epochs(shards: Path) -> None:
    trainer = SimpleNamespace(current_epoch=1)
    full = _shard_epoch(_shard_loader(shards, trainer))
    interrupted = _shard_loader(shards, trainer)
    for i, _ in enumerate(interrupted):
        if i == 1:
            state = interrupted.state_dict()
            break
    assert (state["epoch"], state["batches"]) == (1, 2) and "litdata" in state
    resumed = _shard_loader(shards, trainer)
    resumed.load_state_dict(state)
    assert _same(_shard_epoch(resumed), full[2:])
    trainer.current_epoch = 2
    assert _same(_shard_epoch(resumed), _shard_epoch(_shard_loader(shards, trainer)))


def test_shard_loader_reads_litdata_states_of_older_checkpoints(shards: Path) -> None:
    trainer = SimpleNamespace(current_epoch=0)
    full = _shard_epoch(_shard_loader(shards, trainer))
    interrupted = _shard_loader(shards, trainer)
    for i, _ in enumerate(interrupted):
        if i == 1:
            state = interrupted.state_dict()["litdata"]  # what litdata's loader saved
            break
    resumed = _shard_loader(shards, trainer)
    resumed.load_state_dict(state)
    assert _same(_shard_epoch(resumed), full[2:])
