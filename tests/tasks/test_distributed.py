"""DDP on CPU (gloo) through the real command line, as 2 processes on one node and as 2
nodes of 1 process (``configs/trainer/multinode.yaml``, one launch per node): every sample
once per epoch across processes, and validation metrics equal to a single process's."""

from __future__ import annotations

import json
import os
import socket
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


ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _command(task: str, command: str, root: Path, out: Path, *extra: str) -> list[str]:
    """``python -m lightning_depth.cli <command>`` on ``task``'s tiny data, recording each
    process's samples and metrics (:class:`tests.helpers.SampleRecorder`) under ``out``."""
    return [
        sys.executable,
        "-m",
        "lightning_depth.cli",
        command,
        *TASKS[task],
        f"--data.init_args.synth_dir={root}",
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={out}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.callbacks=[lightning_depth.callbacks.LatestCheckpoint]",
        "--trainer.callbacks+=tests.helpers.SampleRecorder",
        f"--trainer.callbacks.out={out / 'record'}",
        *extra,
    ]


def _records(out: Path) -> dict[int, dict]:
    """What :class:`tests.helpers.SampleRecorder` wrote, by global rank."""
    return {
        int(p.stem[4:]): json.loads(p.read_text())
        for p in sorted((out / "record").glob("rank*.json"))
    }


def _cli(
    task: str, command: str, root: Path, out: Path, devices: int, *extra: str
) -> dict[int, dict]:
    args = _command(
        task,
        command,
        root,
        out,
        f"--trainer.devices={devices}",
        f"--trainer.strategy={'ddp' if devices > 1 else 'auto'}",
        *extra,
    )
    done = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return _records(out)


def _check_shares(fit: dict[int, dict]) -> list[str]:
    """Two processes trained on disjoint shares covering the training set in both epochs,
    and validated on disjoint shares; returns the validation samples of epoch 0."""
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
    return val_all


def _check_synced(distributed: dict, single: dict, task: str) -> None:
    """Metrics logged by a distributed run equal a single process's on the same weights."""
    metric = "val/ssim" if task == "mono" else "val/3px"
    assert metric in single["metrics"]
    # torchmetrics sync their states, so metrics are exact; the loss is a per-process mean of
    # batch means (and the faithful mono loss depends on the batch's composition), so not.
    metrics = {k: v for k, v in single["metrics"].items() if "loss" not in k}
    assert len(metrics) >= 4
    for key, value in metrics.items():
        assert distributed["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("task", ["mono", "stereo"])
def test_ddp_sees_every_sample_once_and_syncs_metrics(task: str, tmp_path: Path) -> None:
    root = tmp_path / "data"
    fit = _cli(task, "fit", root, tmp_path / "fit", 2, "--trainer.max_epochs=2")
    val_all = _check_shares(fit)

    checkpoint = next((tmp_path / "fit").rglob("last.ckpt"))
    two = _cli(task, "validate", root, tmp_path / "v2", 2, f"--ckpt_path={checkpoint}")
    one = _cli(task, "validate", root, tmp_path / "v1", 1, f"--ckpt_path={checkpoint}")
    assert sorted(two[0]["val"]["0"] + two[1]["val"]["0"]) == sorted(one[0]["val"]["0"])
    assert len(one[0]["val"]["0"]) == len(val_all)
    _check_synced(two[0], one[0], task)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_see_every_sample_once_and_sync_metrics(tmp_path: Path) -> None:
    """``configs/trainer/multinode.yaml`` for real: 2 nodes x 1 process on this machine, one
    ``lightning_depth fit`` per node told its ``NODE_RANK`` and the master's address, as on a
    cluster without torchrun (Lightning's own environment variables)."""
    root, out = tmp_path / "data", tmp_path / "fit"
    # generated beforehand: each node's local rank 0 runs prepare_data, and the two "nodes"
    # share this file system
    synth = [sys.executable, "-m", "lightning_depth.cli", "synth", "diode", "--out", str(root),
             "--n", "13", "--size", "32x48", "--seed", "0"]  # fmt: skip
    subprocess.run(synth, cwd=REPO, env=ENV, check=True, capture_output=True, timeout=120)
    args = _command(
        "mono",
        "fit",
        root,
        out,
        "--config",
        str(REPO / "configs/trainer/multinode.yaml"),
        # CPU nodes: gloo (the default off CUDA), float32, no SyncBatchNorm (GPU only)
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.num_nodes=2",
        "--trainer.precision=32-true",
        "--trainer.sync_batchnorm=false",
        "--trainer.max_epochs=2",
    )
    port = str(_free_port())
    nodes = []
    for node in range(2):
        env = {**ENV, "NODE_RANK": str(node), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
               "WORLD_SIZE": "2"}  # fmt: skip
        log = (tmp_path / f"node{node}.log").open("w")
        nodes.append((subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=log), log))
    for process, log in nodes:
        try:
            process.wait(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
    logs = [(tmp_path / f"node{n}.log").read_text() for n in range(2)]
    for process, text in zip([p for p, _ in nodes], logs):
        assert process.returncode == 0, text[-4000:]
    assert "world_size: 2" in logs[0] or "GLOBAL_RANK: 0" in logs[0], logs[0][-2000:]

    fit = _records(out)
    val_all = _check_shares(fit)
    # every process logged the same (synced) metrics, equal to one process on the weights
    checkpoint = next(out.rglob("last.ckpt"))
    one = _cli("mono", "validate", root, tmp_path / "v1", 1, f"--ckpt_path={checkpoint}")
    assert sorted(val_all) == sorted(one[0]["val"]["0"])
    _check_synced(fit[0], one[0], "mono")
    _check_synced(fit[1], one[0], "mono")
    # one summary, from global rank 0 only
    assert logs[0].count("RESULT ") == 1 and "RESULT " not in logs[1]
