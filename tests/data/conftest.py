"""The data tests keep the pre-flight check's cache (``~/.cache/lightning_depth/checks``) in a
home folder of their own, so no test sees another's (or a user's) cached outcomes."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    return home
