"""Exact resume: a run stopped after epoch k and resumed ends with the same weights as an
uninterrupted run; SIGTERM mid-epoch leaves a checkpoint training resumes from."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch

from lightning_depth import MonoDepthModule
from lightning_depth.callbacks import CheckpointOnSigterm, LatestCheckpoint
from lightning_depth.data import DIODEDataModule
from lightning_depth.models import DepthAutoencoder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diode")
    from lightning_depth.data import synthesize_diode

    synthesize_diode(root, n=12, size=(32, 48), seed=3)
    return root


def _run(
    root: Path, out: Path, max_epochs: int, ckpt_path=None, callbacks=(), data_seed: int = 42
) -> L.Trainer:
    L.seed_everything(7, workers=True)
    model = MonoDepthModule(net=DepthAutoencoder(depth=2))
    # shuffled, flipped training data: resume must reproduce both
    data = DIODEDataModule(str(root), size=(32, 32), batch_size=3, hflip=True, seed=data_seed)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        deterministic=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
        num_sanity_val_steps=1,
        # The CLI's default checkpoints: last.ckpt every epoch and on SIGTERM.
        callbacks=[LatestCheckpoint(), CheckpointOnSigterm(), *callbacks],
    )
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return trainer


def _weights(trainer: L.Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.lightning_module.state_dict().items()}


def test_resume_after_epoch_k_matches_uninterrupted_run(data_root: Path, tmp_path: Path) -> None:
    straight = _weights(_run(data_root, tmp_path / "a", max_epochs=3))
    _run(data_root, tmp_path / "b", max_epochs=2)
    last = next((tmp_path / "b").rglob("last.ckpt"))
    resumed = _run(data_root, tmp_path / "b", max_epochs=3, ckpt_path=str(last))
    assert resumed.current_epoch == 3
    resumed_weights = _weights(resumed)
    for key, value in straight.items():
        assert torch.equal(value, resumed_weights[key]), key


def test_resumed_weights_depend_on_the_data_order(data_root: Path, tmp_path: Path) -> None:
    """Guards the test above: a resume that saw other batches would end elsewhere."""
    straight = _weights(_run(data_root, tmp_path / "a", max_epochs=3))
    _run(data_root, tmp_path / "b", max_epochs=2)
    last = next((tmp_path / "b").rglob("last.ckpt"))
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


def test_sigterm_mid_epoch_leaves_a_checkpoint_to_resume_from(
    data_root: Path, tmp_path: Path
) -> None:
    # 9 training samples at batch 3: 3 steps per epoch; step 4 is inside the second epoch
    with pytest.raises(SystemExit):
        _run(data_root, tmp_path, max_epochs=3, callbacks=[_SigtermAt(4)])
    last = next(tmp_path.rglob("last.ckpt"))
    assert not last.is_symlink()
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["global_step"] == 4 and checkpoint["epoch"] == 1
    resumed = _run(data_root, tmp_path, max_epochs=3, ckpt_path=str(last))
    assert resumed.current_epoch == 3
    assert resumed.global_step > 4
