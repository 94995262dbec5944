"""W&B offline: the run holds the resolved config, the loss terms, the metrics, the image
panel and the per-sample table; other loggers get the panels as PNG files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightning_depth.cli import main
from lightning_depth.config import DepthCLI, build_cli

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

TINY = [
    "--data.init_args.synth_samples=20",
    "--data.init_args.synth_size=[32, 48]",
    "--data.init_args.size=[32, 32]",
    "--data.init_args.batch_size=4",
    "--model.init_args.net.init_args.depth=2",
    "--trainer.max_epochs=2",
    "--trainer.enable_progress_bar=false",
    # Only the callbacks under test (no checkpoints, no demo report).
    "--trainer.callbacks=[{class_path: lightning.pytorch.callbacks.LearningRateMonitor, "
    "init_args: {logging_interval: epoch}}, {class_path: lightning_depth.callbacks.PredictionPanels}]",
]


def _flushed_log(run_dir: Path, last_key: bytes, timeout: float = 60.0) -> bytes:
    """The run's transaction log, once W&B's service process has written it out (it does so
    asynchronously, even after ``wandb.finish()``)."""
    deadline = time.monotonic() + timeout
    while True:
        log = next(run_dir.glob("*.wandb")).read_bytes()
        if last_key in log or time.monotonic() > deadline:
            return log
        time.sleep(0.5)


def _cli(*args: str) -> DepthCLI:
    return build_cli(["--config", str(REPO / "configs/demo/mono.yaml"), *args], run=False)


def test_wandb_offline_run_holds_config_metrics_panels_and_table(
    tmp_path: Path, monkeypatch
) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    probe = tmp_path / "run_config.json"
    main(
        [
            "fit",
            "--config",
            str(REPO / "configs/demo/mono.yaml"),
            "--config",
            str(REPO / "configs/logger/wandb.yaml"),
            *TINY,
            f"--data.init_args.synth_dir={tmp_path / 'data'}",
            f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.callbacks+=tests.helpers.RunConfigProbe",
            f"--trainer.callbacks.out={probe}",
        ]
    )
    wandb.finish()
    config = json.loads(probe.read_text())
    run_dir = next(tmp_path.glob("wandb/offline-run-*"))

    # the full resolved LightningCLI config, not only the module's hyperparameters
    assert config["config"]["model"]["init_args"]["net"]["init_args"]["depth"] == 2
    assert config["config"]["data"]["init_args"]["size"] == [32, 32]
    assert config["config"]["trainer"]["max_epochs"] == 2
    assert config["num_parameters"] > 0

    log = _flushed_log(run_dir, b"val/delta1")
    for key in (
        "train/loss",
        "train/loss_ssim",
        "train/loss_l1",
        "train/loss_smoothness",
        "val/ssim",
        "val/abs_rel",
        "val/delta1",
        "lr-Adam",
    ):
        assert key.encode() in log, key

    panels = sorted(run_dir.glob("files/media/images/val/panel_*.png"))
    assert len(panels) == 2 * 2  # two samples (the validation set), two epochs
    with Image.open(panels[0]) as picture:
        width, height = picture.size
    assert (width, height) == (3 * 32, 32)  # input | target | prediction

    tables = sorted(run_dir.glob("files/media/table/val/per_sample_*.table.json"))
    assert len(tables) == 2
    table = json.loads(tables[-1].read_text())
    assert table["columns"][:2] == ["sample", "ssim"] and "abs_rel" in table["columns"]
    assert len(table["data"]) == 2


def test_csv_logger_gets_panel_pngs(tmp_path: Path) -> None:
    cli = _cli(
        *TINY,
        f"--data.init_args.synth_dir={tmp_path / 'data'}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    )
    cli.trainer.fit(cli.model, cli.datamodule)
    pngs = sorted(tmp_path.rglob("panels/step*/sample*.png"))
    assert len(pngs) == 2 * 2
    picture = np.asarray(Image.open(pngs[-1]))
    assert picture.shape == (32, 96, 3) and picture.max() > 0
