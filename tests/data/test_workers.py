"""The DataModules' automatic DataLoader workers and pinned memory."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from lightning.fabric.utilities.data import suggested_max_num_workers

from lightning_depth.data import DIODEDataModule


def _trainer(devices: int, device: str) -> SimpleNamespace:
    return SimpleNamespace(
        num_devices=devices, strategy=SimpleNamespace(root_device=torch.device(device))
    )


@pytest.mark.parametrize(
    ("cpus", "devices", "workers", "alone"),
    [(1, 1, 0, 0), (2, 1, 0, 0), (2, 2, 0, 0), (3, 1, 2, 2), (4, 2, 0, 3), (6, 2, 2, 4),
     (8, 2, 3, 4), (64, 1, 4, 4)],
)  # fmt: skip
def test_workers_follow_the_cpus_each_process_has(
    monkeypatch, cpus: int, devices: int, workers: int, alone: int
) -> None:
    """Never a count Lightning warns about: fewer than 2 only where its own suggested
    maximum (``cpus // devices - 1``, at least 1) is 1."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    dm = DIODEDataModule(root="unused")
    assert dm.loader_workers() == alone  # no trainer: one process
    dm.trainer = _trainer(devices, "cpu")
    assert dm.loader_workers() == workers
    # Lightning's "does not have many workers" condition
    assert not (workers < 2 and suggested_max_num_workers(devices) > 1)
    assert DIODEDataModule(root="unused", num_workers=7).loader_workers() == 7


def test_memory_is_pinned_only_for_cuda() -> None:
    dm = DIODEDataModule(root="unused")
    assert dm.loader_pin_memory() is False  # no trainer
    dm.trainer = _trainer(1, "cpu")
    assert dm.loader_pin_memory() is False
    dm.trainer = _trainer(1, "cuda")
    assert dm.loader_pin_memory() is True
    dm.pin_memory = False
    assert dm.loader_pin_memory() is False


def test_negative_workers_are_refused() -> None:
    with pytest.raises(ValueError, match="num_workers must be >= 0"):
        DIODEDataModule(root="unused", num_workers=-1)
