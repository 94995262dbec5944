"""Exact resume: a run stopped after epoch k, or by SIGTERM mid-epoch, and resumed ends with
the same weights as an uninterrupted run, without reading the batches it skips; checkpoints
live in the run's folder whatever the logger; SIGUSR1 is left to Lightning under SLURM's
auto-requeue. (Real processes and signals: ``test_signals.py``.)"""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.loggers import CSVLogger

from lightning_depth import MonoDepthModule
from lightning_depth.callbacks import BestCheckpoint, CheckpointOnSigterm, LatestCheckpoint
from lightning_depth.data import DIODEDataModule
from lightning_depth.data.base import SampleDataset
from lightning_depth.data.streaming import ShardDataset
from lightning_depth.models import DepthAutoencoder
from tests.helpers import quiet_trainer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diode")
    from lightning_depth.data import synthesize_diode
    from lightning_depth.data.prepare import main as prepare

    synthesize_diode(root, n=12, size=(32, 48), seed=3)
    argv = ["diode", "--src", str(root), "--out", str(root.parent / "shards"), "--size", "32x32"]
    assert prepare([*argv, "--chunk-bytes", "4kb"]) == 0
    return root


def _run(
    root: Path,
    out: Path,
    max_epochs: int,
    ckpt_path=None,
    callbacks=(),
    data_seed: int = 42,
    source: str = "folder",
    **trainer_args,
) -> L.Trainer:
    L.seed_everything(7, workers=True)
    model = MonoDepthModule(net=DepthAutoencoder(depth=2))
    # shuffled, flipped training data: resume must reproduce both
    shards = {"source": "shards", "shards": str(root.parent / "shards")}
    data = DIODEDataModule(
        str(root), size=(32, 32), batch_size=3, hflip=True, seed=data_seed, num_workers=0,
        **(shards if source == "shards" else {}),
    )  # fmt: skip
    settings = dict(
        max_epochs=max_epochs,
        deterministic=True,
        default_root_dir=out,
        num_sanity_val_steps=1,
        enable_checkpointing=True,
        # The CLI's default checkpoints: last.ckpt every epoch and on SIGTERM.
        callbacks=[LatestCheckpoint(), CheckpointOnSigterm(), *callbacks],
    )
    trainer = quiet_trainer(**{**settings, **trainer_args})
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return trainer


def _weights(trainer: L.Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.lightning_module.state_dict().items()}


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_resume_after_epoch_k_matches_uninterrupted_run(data_root: Path, tmp_path: Path) -> None:
    straight = _weights(_run(data_root, tmp_path / "a", max_epochs=3))
    _run(data_root, tmp_path / "b", max_epochs=2)
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    resumed = _run(data_root, tmp_path / "b", max_epochs=3, ckpt_path=str(last))
    assert resumed.current_epoch == 3
    _assert_equal(straight, _weights(resumed))


def test_resumed_weights_depend_on_the_data_order(data_root: Path, tmp_path: Path) -> None:
    """Guards the tests here: a resume that saw other batches would end elsewhere."""
    straight = _weights(_run(data_root, tmp_path / "a", max_epochs=3))
    _run(data_root, tmp_path / "b", max_epochs=2)
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    other = _weights(
        _run(data_root, tmp_path / "b", max_epochs=3, ckpt_path=str(last), data_seed=1)
    )
    assert any(not torch.equal(straight[k], other[k]) for k in straight)


class _SigtermAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class _Reads:
    """Records the samples the datasets read (``num_workers=0``: in this process)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        folder_get, shard_get = SampleDataset.__getitem__, ShardDataset.__getitem__

        def folder(dataset, item):
            out = folder_get(dataset, item)
            self.names.append(out["name"])
            return out

        def shard(dataset, index):
            out = shard_get(dataset, index)
            self.names.append(out["name"])
            return out

        monkeypatch.setattr(SampleDataset, "__getitem__", folder)
        monkeypatch.setattr(ShardDataset, "__getitem__", shard)


class _Trained(L.Callback):
    def __init__(self) -> None:
        self.names: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.names.extend(batch["name"])


@pytest.mark.parametrize("source", ["folder", "shards"])
def test_sigterm_mid_epoch_resumes_exactly_without_reading_skipped_batches(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    # 10 training samples at batch 3: 4 steps per epoch; step 5 is inside the second epoch
    whole = _Trained()
    straight = _weights(_run(data_root, tmp_path / "a", 3, callbacks=[whole], source=source))
    usr1 = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(SystemExit) as stopped:
        _run(data_root, tmp_path / "b", 3, callbacks=[_SigtermAt(5)], source=source)
    assert stopped.value.code == 143
    assert signal.getsignal(signal.SIGUSR1) == usr1  # handed back
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    assert not last.is_symlink()
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["global_step"] == 5 and checkpoint["epoch"] == 1
    assert checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches"] == 1

    reads, trained = _Reads(monkeypatch), _Trained()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        resumed = _run(data_root, tmp_path / "b", 3, str(last), [trained], source=source)
    assert not [w for w in warned if "not resumable" in str(w.message)]
    assert resumed.current_epoch == 3 and resumed.global_step == 12
    # the rest of epoch 1 (epoch 0 and one batch of it were 10 + 3 samples) and epoch 2, as
    # the uninterrupted run had them, and nothing else read for training (the validation
    # split is read too)
    assert trained.names == whole.names[13:]
    validation = [n for n in reads.names if n not in whole.names]
    assert sorted(n for n in reads.names if n not in validation) == sorted(trained.names)
    _assert_equal(straight, _weights(resumed))


def test_checkpoints_live_in_the_run_folder_whatever_the_logger(
    data_root: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    best, latest = BestCheckpoint(), LatestCheckpoint()
    explicit = BestCheckpoint(str(mine), monitor="val/abs_rel")
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        logger=CSVLogger(tmp_path, name="csv"),
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[best, latest, explicit],
    )
    data = DIODEDataModule(str(data_root), size=(32, 32), batch_size=3, num_workers=0)
    trainer.fit(MonoDepthModule(net=DepthAutoencoder(depth=2)), data)
    assert Path(trainer.log_dir) == tmp_path / "csv" / "version_0"
    run = tmp_path / "checkpoints"  # not csv/version_0/checkpoints
    assert Path(best.dirpath) == run and Path(latest.dirpath) == run
    assert Path(explicit.dirpath) == mine  # an explicit folder wins
    assert len(list(run.glob("best-*.ckpt"))) == 1 and (run / "last.ckpt").is_symlink()
    assert len(list(mine.glob("best-*.ckpt"))) == 1
    assert not list((tmp_path / "csv").rglob("*.ckpt"))


class _SignalHandler(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.usr1 = signal.getsignal(signal.SIGUSR1)


@pytest.mark.parametrize("slurm", [False, True])
def test_sigusr1_is_ours_unless_slurm_auto_requeue(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slurm: bool
) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    probe = _SignalHandler()
    plugins = []
    if slurm:
        for key, value in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "1",
                           "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
                           "SLURM_NODELIST": "node1"}.items():  # fmt: skip
            monkeypatch.setenv(key, value)
        plugins = [SLURMEnvironment(auto_requeue=True)]
    _run(data_root, tmp_path, 1, callbacks=[probe], limit_train_batches=1, plugins=plugins)
    handler = probe.usr1
    ours = getattr(handler, "__func__", None) is CheckpointOnSigterm._as_sigterm
    assert ours is not slurm
    if slurm:  # Lightning's: an hpc checkpoint and `scontrol requeue`
        assert "_HandlersCompose" in type(handler).__name__
    assert signal.getsignal(signal.SIGUSR1) == before  # restored afterwards
