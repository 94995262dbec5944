"""One pair of tiny demo checkpoints for the export and compression tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import demo_checkpoints


@pytest.fixture(scope="package")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the demos' generated data and runs (see ``tests.helpers.demo_data_args``)."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="package")
def checkpoints(demo_root: Path) -> dict[str, Path]:
    return demo_checkpoints(demo_root)
