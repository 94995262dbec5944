"""DDP on CPU (gloo, 2 processes) through the real command line: every sample once per
epoch across processes, and validation metrics equal to a single process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

TASKS = {
    "mono": [
        "--config",
        str(REPO / "configs/demo/mono.yaml"),
        "--data.init_args.synth_samples=13",
        "--data.init_args.synth_size=[32, 48]",
        "--data.init_args.size=[32, 32]",
        "--data.init_args.val_fraction=0.4",
        "--data.init_args.test_fraction=0.0",
        "--data.init_args.batch_size=2",
        "--data.init_args.eval_batch_size=2",
        "--model.init_args.net.init_args.depth=2",
    ],
    "stereo": [
        "--config",
        str(REPO / "configs/demo/stereo.yaml"),
        "--data.init_args.synth_scenes=1",
        "--data.init_args.synth_frames=11",
        "--data.init_args.synth_size=[64, 128]",
        "--data.init_args.split_by=frame",
        "--data.init_args.val_fraction=0.25",
        "--data.init_args.size=[64, 128]",
        "--data.init_args.batch_size=2",
        "--data.init_args.eval_batch_size=2",
        "--model.init_args.net.init_args.spn_channels=2",
    ],
}


def _cli(
    task: str, command: str, root: Path, out: Path, devices: int, *extra: str
) -> dict[int, dict]:
    args = [
        sys.executable,
        "-m",
        "lightning_depth.cli",
        command,
        *TASKS[task],
        f"--data.init_args.root={root}",
        "--trainer.accelerator=cpu",
        f"--trainer.devices={devices}",
        f"--trainer.strategy={'ddp' if devices > 1 else 'auto'}",
        f"--trainer.default_root_dir={out}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.callbacks=[lightning_depth.callbacks.LatestCheckpoint]",
        "--trainer.callbacks+=tests.helpers.SampleRecorder",
        f"--trainer.callbacks.out={out / 'record'}",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return {
        int(p.stem[4:]): json.loads(p.read_text())
        for p in sorted((out / "record").glob("rank*.json"))
    }


@pytest.mark.parametrize("task", ["mono", "stereo"])
def test_ddp_sees_every_sample_once_and_syncs_metrics(task: str, tmp_path: Path) -> None:
    root = tmp_path / "data"
    fit = _cli(task, "fit", root, tmp_path / "fit", 2, "--trainer.max_epochs=2")
    assert set(fit) == {0, 1}
    for epoch in ("0", "1"):
        shares = [fit[r]["train"][epoch] for r in (0, 1)]
        assert not set(shares[0]) & set(shares[1])
        assert len(shares[0]) + len(shares[1]) == len(set(shares[0]) | set(shares[1]))
        val_shares = [fit[r]["val"][epoch] for r in (0, 1)]
        assert not set(val_shares[0]) & set(val_shares[1])
    # the training set is covered (an even count: nothing padded), validation exactly once
    train_all = set(fit[0]["train"]["0"]) | set(fit[1]["train"]["0"])
    assert train_all == set(fit[0]["train"]["1"]) | set(fit[1]["train"]["1"])
    val_all = fit[0]["val"]["0"] + fit[1]["val"]["0"]
    assert len(val_all) % 2 == 1, "an odd validation set exercises the sampler's padding"

    checkpoint = next((tmp_path / "fit").rglob("last.ckpt"))
    two = _cli(task, "validate", root, tmp_path / "v2", 2, f"--ckpt_path={checkpoint}")
    one = _cli(task, "validate", root, tmp_path / "v1", 1, f"--ckpt_path={checkpoint}")
    assert sorted(two[0]["val"]["0"] + two[1]["val"]["0"]) == sorted(one[0]["val"]["0"])
    assert len(one[0]["val"]["0"]) == len(val_all)
    metric = "val/ssim" if task == "mono" else "val/3px"
    assert metric in one[0]["metrics"]
    # torchmetrics sync their states, so metrics are exact; the loss is a per-process mean of
    # batch means (and the faithful mono loss depends on the batch's composition), so not.
    metrics = {k: v for k, v in one[0]["metrics"].items() if "loss" not in k}
    assert len(metrics) >= 4
    for key, value in metrics.items():
        assert two[0]["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
