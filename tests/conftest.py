"""Shared fixtures: device and dtype (CPU float32 by default), quiet offline W&B."""

from __future__ import annotations

import os

import pytest
import torch

# Tests never reach the network: W&B writes its run files locally.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        action="store",
        default="cpu",
        help="device for the `device` fixture (cpu, cuda)",
    )
    parser.addoption(
        "--dtype",
        action="store",
        default="float32",
        help="comma separated dtypes for the `dtype` fixture (float32,float64,bfloat16)",
    )


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.config.getoption("--device"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dtype" in metafunc.fixturenames:
        names = metafunc.config.getoption("--dtype").split(",")
        metafunc.parametrize("dtype", [getattr(torch, n) for n in names], ids=names)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
