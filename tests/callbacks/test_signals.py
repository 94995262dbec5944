"""Real processes, real signals: ``lightning_depth fit`` killed (``kill -9``) or signalled
(SIGTERM, SIGUSR1) mid-epoch, then resumed in a new process with ``--ckpt_path last``, ends
with the weights of an uninterrupted run, bit for bit, for the folder, archive and shard
sources; ``validate``/``test`` with ``--ckpt_path last|best`` in a new process evaluate the
run's checkpoints; ``last`` with no checkpoint is an error naming the folder.

Every run of a source uses the same tiny config (depth-2 autoencoder, 32x32, 10 training
samples in batches of 2: 5 steps per epoch, 3 epochs) in a run folder of its own with a CSV
logger, so that each process also gets a new logger version (the checkpoints must not
depend on it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from lightning_depth.config import build_cli
from lightning_depth.data import synthesize_diode
from lightning_depth.data.prepare import main as prepare

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STEPS_PER_EPOCH = 5
EPOCHS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The same 12 generated samples as a folder, a ``val.tar.gz`` and litdata shards."""
    root = tmp_path_factory.mktemp("data")
    synthesize_diode(root / "folder", n=12, size=(32, 48), seed=3)
    with tarfile.open(root / "val.tar.gz", "w:gz") as tar:
        tar.add(root / "folder" / "val", arcname="val")
    argv = ["diode", "--src", str(root / "folder"), "--out", str(root / "shards")]
    assert prepare([*argv, "--size", "32x32", "--chunk-bytes", "4kb"]) == 0
    return root


def _config(data: Path, source: str, run: Path) -> Path:
    init = {"root": str(data / "folder"), "size": [32, 32], "batch_size": 2, "hflip": True,
            "seed": 5, "num_workers": 0, "val_fraction": 0.1, "test_fraction": 0.1}  # fmt: skip
    if source == "archive":
        init.update(source="archive", archives=[str(data / "val.tar.gz")])
    if source == "shards":
        init.update(source="shards", shards=str(data / "shards"))
    config = {
        "seed_everything": 7,
        "model": {
            "class_path": "lightning_depth.MonoDepthModule",
            "init_args": {
                "net": {
                    "class_path": "lightning_depth.models.DepthAutoencoder",
                    "init_args": {"depth": 2},
                }
            },
        },
        "data": {"class_path": "lightning_depth.data.DIODEDataModule", "init_args": init},
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": EPOCHS,
            "deterministic": True,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "log_every_n_steps": 1,
            "default_root_dir": str(run),
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(run), "name": "csv"},
            },
        },
    }
    path = run / "config.yaml"
    run.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def _command(command: str, config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lightning_depth", command, "--config", str(config), *extra]


def _batch_log(path: Path, seconds: float = 0.0) -> str:
    return (
        "--trainer.callbacks+={class_path: tests.helpers.BatchLog, init_args: "
        f"{{path: {path}, seconds: {seconds}}}}}"
    )


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}


def _run(args: list[str], expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == expect, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _interrupt(args: list[str], log: Path, at_step: int, signum: int) -> tuple[int, str]:
    """Runs ``args`` and sends ``signum`` once the batch log shows step ``at_step`` (each
    batch then sleeps, so the signal lands before the next one); returns the exit status
    and stderr."""
    process = subprocess.Popen(
        args, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 150
    while not any(r["step"] >= at_step for r in _log(log)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"the run ended or stalled before step {at_step}:\n{err[-4000:]}")
        time.sleep(0.05)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    return process.returncode, err


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _assert_bit_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


_STRAIGHT: dict[str, Path] = {}


def _straight(data: Path, source: str, tmp_path_factory) -> Path:
    """The uninterrupted run of ``source`` (once per module): its run folder."""
    if source not in _STRAIGHT:
        run = tmp_path_factory.mktemp(f"straight_{source}")
        config = _config(data, source, run)
        _run(_command("fit", config, _batch_log(run / "batches.jsonl")))
        _STRAIGHT[source] = run
    return _STRAIGHT[source]


def _final(run: Path) -> tuple[dict, Path]:
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (
        EPOCHS - 1,
        EPOCHS * STEPS_PER_EPOCH,
    )
    return checkpoint, last


def test_kill_9_mid_epoch_then_resume_from_last(data: Path, tmp_path: Path, tmp_path_factory):
    straight = _straight(data, "folder", tmp_path_factory)
    config = _config(data, "folder", tmp_path)
    first = tmp_path / "first.jsonl"
    # killed in the second epoch: nothing is saved, last.ckpt is the end of epoch 0
    status, _ = _interrupt(
        _command("fit", config, _batch_log(first, 0.5)), first, STEPS_PER_EPOCH + 2, signal.SIGKILL
    )
    assert status == -signal.SIGKILL
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_symlink() and torch.load(last, weights_only=False)["global_step"] == 5

    second = tmp_path / "second.jsonl"
    done = _run(_command("fit", config, "--ckpt_path", "last", _batch_log(second)))
    assert f"--ckpt_path last: loading {last}" in done.stderr
    # it went on from the saved step, in a new logger version, with the same checkpoints
    assert [r["step"] for r in _log(second)] == list(range(6, EPOCHS * STEPS_PER_EPOCH + 1))
    assert (tmp_path / "csv" / "version_1").is_dir()
    checkpoint, _ = _final(tmp_path)
    _assert_bit_equal(checkpoint["state_dict"], _weights(straight / "checkpoints" / "last.ckpt"))


@pytest.mark.parametrize(
    "source, signum",
    [
        ("folder", signal.SIGTERM),
        ("shards", signal.SIGTERM),
        ("archive", signal.SIGTERM),
        ("folder", signal.SIGUSR1),
    ],  # fmt: skip
    ids=["folder-SIGTERM", "shards-SIGTERM", "archive-SIGTERM", "folder-SIGUSR1"],
)
def test_signal_mid_epoch_saves_exits_non_zero_and_resumes_exactly(
    data: Path, tmp_path: Path, tmp_path_factory, source: str, signum: int
) -> None:
    straight = _straight(data, source, tmp_path_factory)
    config = _config(data, source, tmp_path)
    first = tmp_path / "first.jsonl"
    at = STEPS_PER_EPOCH + 2  # the second batch of the second epoch
    status, err = _interrupt(_command("fit", config, _batch_log(first, 0.5)), first, at, signum)
    assert status == 128 + signum, err[-4000:]  # 143 for SIGTERM, 138 for SIGUSR1
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert not last.is_symlink()
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert (saved["epoch"], saved["global_step"]) == (1, at)
    trained = _log(first)
    assert [r["step"] for r in trained] == list(range(1, at + 1))

    second = tmp_path / "second.jsonl"
    done = _run(_command("fit", config, "--ckpt_path", "last", _batch_log(second)))
    assert "not resumable" not in done.stderr
    resumed = _log(second)
    # exactly the batches not yet trained, then the later epochs
    assert [r["step"] for r in resumed] == list(range(at + 1, EPOCHS * STEPS_PER_EPOCH + 1))
    expected = _log(straight / "batches.jsonl")
    assert [r["names"] for r in trained + resumed] == [r["names"] for r in expected]
    checkpoint, _ = _final(tmp_path)
    _assert_bit_equal(checkpoint["state_dict"], _weights(straight / "checkpoints" / "last.ckpt"))


def _logged(run: Path, version: int, key: str) -> list[float]:
    import csv

    rows = csv.DictReader((run / "csv" / f"version_{version}" / "metrics.csv").open())
    return [float(r[key]) for r in rows if r.get(key)]


def test_validate_last_and_test_best_in_a_new_process(data: Path, tmp_path_factory) -> None:
    run = _straight(data, "folder", tmp_path_factory)
    config = run / "config.yaml"
    done = _run(_command("validate", config, "--ckpt_path", "last"))
    assert f"--ckpt_path last: loading {run / 'checkpoints' / 'last.ckpt'}" in done.stderr
    # the saved weights' score, as the run logged it after its last epoch (random weights
    # would score otherwise)
    validated = _logged(run, 1, "val/ssim")
    assert validated == pytest.approx([_logged(run, 0, "val/ssim")[-1]], rel=1e-6)

    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    done = _run(_command("test", config, "--ckpt_path", "best"))
    assert f"--ckpt_path best: loading {best} (the best val/ssim" in done.stderr
    assert len(_logged(run, 2, "test/ssim")) == 1
    scores = _logged(run, 0, "val/ssim")
    assert f"val_ssim{max(scores):.4f}" in best.name


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict"])
@pytest.mark.parametrize("which", ["last", "best"])
def test_last_or_best_without_a_checkpoint_is_an_error_naming_the_folder(
    data: Path, tmp_path: Path, command: str, which: str
) -> None:
    config = _config(data, "folder", tmp_path)
    folder = tmp_path / "checkpoints"
    with pytest.raises(FileNotFoundError, match=f"--ckpt_path {which}: no checkpoint") as error:
        build_cli([command, "--config", str(config), "--ckpt_path", which])
    assert str(folder) in str(error.value)
    assert not folder.exists()  # nothing was trained
