"""Shared fixtures: device and dtype (CPU float32 by default), quiet offline W&B."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import demo_checkpoints

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
        "--allow-skips",
        action="store_true",
        default=False,
        help="report skipped tests as skipped instead of failing them",
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A skipped test fails: on a machine set up with the README's set-up line every test
    runs, so a skip (a missing package behind ``importorskip``) is a missing install step.
    ``--allow-skips`` permits them (e.g. ``--device cuda`` on a GPU machine without
    TensorFlow)."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        if item.config.getoption("--allow-skips"):
            return
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"skipped ({reason}); a skip is a missing install step: set up with the README's "
            "set-up line (or pass --allow-skips)"
        )


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the demos' generated data and runs (see ``tests.helpers.demo_data_args``)."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="session")
def checkpoints(demo_root: Path) -> dict[str, Path]:
    """One pair of tiny trained demo checkpoints (``{"mono": path, "stereo": path}``) for
    every test that needs a trained model: export, compression, predict, pretrained."""
    return demo_checkpoints(demo_root)
