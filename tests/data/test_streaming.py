"""DataModules on litdata shards: every sample once per epoch, seeded shuffling, mid-epoch
resume from the loader state and from a Lightning checkpoint, DDP shares, and S3 streaming
from a local S3-compatible server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lightning_depth.data.diode import DIODEDataModule, synthesize_diode
from lightning_depth.data.prepare import main as prepare
from lightning_depth.io.errors import DataError
from lightning_depth.models.autoencoder import DepthAutoencoder
from lightning_depth.tasks.mono import MonoDepthModule
from tests.helpers import quiet_trainer

REPO = Path(__file__).resolve().parents[2]
SIZE = (16, 16)
N_SAMPLES = 20  # val_fraction 0.1, test_fraction 0.1: 16 train, 2 val, 2 test


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diode")
    synthesize_diode(root / "folder", n=N_SAMPLES, size=(16, 24), seed=1)
    # small chunks, so that processes and workers get several each
    argv = ["diode", "--src", str(root / "folder"), "--out", str(root / "shards")]
    assert prepare([*argv, "--size", "x".join(map(str, SIZE)), "--chunk-bytes", "4kb"]) == 0
    return root


def _datamodule(root: Path, **kwargs) -> DIODEDataModule:
    kwargs = {"size": SIZE, "batch_size": 2, "seed": 7, **kwargs}
    return DIODEDataModule(
        str(root / "folder"), source="shards", shards=str(root / "shards"), **kwargs
    )


def _names(loader) -> list[str]:
    return [name for batch in loader for name in batch["name"]]


def test_train_epoch_covers_the_split_once_in_a_seeded_order(shards):
    folder = DIODEDataModule(str(shards / "folder"), size=SIZE)
    folder.setup()
    expected = sorted(f[0].stem for f in folder.train_samples)
    dm = _datamodule(shards)
    dm.setup()
    loader = dm.train_dataloader()
    first, second = _names(loader), _names(loader)
    assert sorted(first) == expected and sorted(second) == expected
    assert first != second  # reshuffled each epoch
    again = _datamodule(shards)
    again.setup()
    assert _names(again.train_dataloader()) == first  # same seed, same order
    other = _datamodule(shards, seed=8)
    other.setup()
    assert _names(other.train_dataloader()) != first
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (2, 3, *SIZE) and batch["mask"].dtype == torch.bool


def test_evaluation_loaders_and_size_check(shards):
    dm = _datamodule(shards)
    dm.setup()
    folder = DIODEDataModule(str(shards / "folder"), size=SIZE)
    folder.setup()
    for loader, files in (
        (dm.val_dataloader(), folder.val_samples),
        (dm.test_dataloader(), folder.test_samples),
    ):
        assert _names(loader) == [f[0].stem for f in files]  # in order, each once
    assert _names(dm.predict_dataloader()) == [f[0].stem for f in folder.test_samples]
    wrong = _datamodule(shards, size=(32, 32))
    wrong.setup()
    with pytest.raises(
        DataError, match=r"holds 16x16 .* size is 32x32; run `lightning_depth prepare"
    ):
        next(iter(wrong.val_dataloader()))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_state_resumes_mid_epoch_without_repeats_or_gaps(shards, num_workers):
    dm = _datamodule(shards, num_workers=num_workers)
    dm.setup()
    loader = dm.train_dataloader()
    full = _names(loader)  # epoch 1, uninterrupted
    loader = _datamodule(shards, num_workers=num_workers)
    loader.setup()
    loader = loader.train_dataloader()
    seen = []
    for i, batch in enumerate(loader):
        seen.extend(batch["name"])
        if i == 2:
            state = loader.state_dict()
            break
    resumed = _datamodule(shards, num_workers=num_workers)
    resumed.setup()
    loader = resumed.train_dataloader()
    loader.load_state_dict(state)
    rest = _names(loader)
    assert len(seen) == 6
    assert seen + rest == full


class _Names(Callback):
    def __init__(self) -> None:
        self.names: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.names.extend(batch["name"])


class _SaveAfter(Callback):
    """Saves a checkpoint after training step ``step``, mid-epoch."""

    def __init__(self, step: int, path: Path) -> None:
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)


def _trainer(root: Path, callbacks: list, **kwargs) -> L.Trainer:
    return quiet_trainer(
        devices=1,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=root,
        callbacks=callbacks,
        **kwargs,
    )


@pytest.mark.slow
def test_lightning_checkpoint_resumes_mid_epoch(shards, tmp_path):
    def module() -> MonoDepthModule:
        return MonoDepthModule(net=DepthAutoencoder(depth=2))

    full = _Names()
    _trainer(tmp_path / "full", [full], max_epochs=1).fit(module(), _datamodule(shards))
    assert len(full.names) == 16

    first = _Names()
    checkpoint = tmp_path / "step3.ckpt"
    _trainer(tmp_path / "a", [first, _SaveAfter(3, checkpoint)], max_epochs=1, max_steps=4).fit(
        module(), _datamodule(shards)
    )
    first.names = first.names[:6]  # what the checkpoint has seen
    second = _Names()
    _trainer(tmp_path / "b", [second], max_epochs=1).fit(
        module(), _datamodule(shards), ckpt_path=checkpoint
    )
    assert first.names + second.names == full.names


# -- DDP and object storage (subprocesses) -----------------------------------------------------


def _run(args: list[str], env: dict, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **env}
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _fit_args(root: Path, shards_url: str, out: Path, devices: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lightning_depth.cli",
        "fit",
        "--config",
        str(REPO / "configs/demo/mono.yaml"),
        f"--data.init_args.root={root / 'folder'}",
        "--data.init_args.source=shards",
        f"--data.init_args.shards={shards_url}",
        f"--data.init_args.size=[{SIZE[0]}, {SIZE[1]}]",
        "--data.init_args.batch_size=2",
        "--data.init_args.eval_batch_size=1",
        "--model.init_args.net.init_args.depth=2",
        "--trainer.accelerator=cpu",
        f"--trainer.devices={devices}",
        f"--trainer.strategy={'ddp' if devices > 1 else 'auto'}",
        "--trainer.max_epochs=2",
        f"--trainer.default_root_dir={out}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.callbacks=tests.helpers.SampleRecorder",
        f"--trainer.callbacks.out={out / 'record'}",
        *extra,
    ]


def _records(out: Path) -> dict[int, dict]:
    import json

    return {
        int(p.stem[4:]): json.loads(p.read_text())
        for p in sorted((out / "record").glob("rank*.json"))
    }


@pytest.mark.slow
def test_ddp_processes_get_disjoint_shares(shards, tmp_path):
    _run(_fit_args(shards, str(shards / "shards"), tmp_path, 2), {})
    fit = _records(tmp_path)
    assert set(fit) == {0, 1}
    for epoch in ("0", "1"):
        a, b = (fit[r]["train"][epoch] for r in (0, 1))
        assert a and b and not set(a) & set(b)
        assert len(a) == len(b)  # litdata's drop_last under DDP: equal steps, no hang
        # 16 samples, 2 processes x batch 2: nothing is dropped, nothing repeated
        assert len(set(a) | set(b)) == 16
        va, vb = (fit[r]["val"][epoch] for r in (0, 1))
        assert sorted(va + vb) == sorted(set(va + vb)) and len(va + vb) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server():
    """moto's S3-compatible server on a loopback port, started and stopped here."""
    pytest.importorskip("moto.server")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.mark.slow
def test_fit_streams_shards_from_s3(shards, s3_server, tmp_path, monkeypatch):
    import boto3

    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket="depth")
    argv = ["diode", "--src", str(shards / "folder"), "--out", "s3://depth/diode"]
    assert prepare([*argv, "--size", "x".join(map(str, SIZE)), "--endpoint-url", s3_server]) == 0
    listed = boto3.client("s3", endpoint_url=s3_server).list_objects_v2(Bucket="depth")
    keys = {obj["Key"] for obj in listed["Contents"]}
    assert {"diode/train/index.json", "diode/val/index.json"} <= keys
    args = _fit_args(
        shards,
        "s3://depth/diode",
        tmp_path,
        1,
        f"--data.init_args.endpoint_url={s3_server}",
        f"--data.init_args.cache_dir={tmp_path / 'cache'}",
    )
    _run(args, S3_ENV)
    fit = _records(tmp_path)
    assert sorted(fit[0]["train"]["0"]) == sorted(fit[0]["train"]["1"])
    assert len(set(fit[0]["train"]["0"])) == 16
