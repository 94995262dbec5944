"""InitWeights (warm start): matching weights copied, the parts left out keep their own
initialisation, every mismatch refused by name, and a resumed run's checkpoint wins."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.demos.boring_classes import BoringModel
from torch import nn

from lightning_depth import pretrained
from lightning_depth.callbacks import InitWeights
from lightning_depth.callbacks.init_weights import load_matching, source_state_dict
from lightning_depth.models import AnyNet
from lightning_depth.tasks.stereo import StereoDepthModule


def _net(width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, width))


def test_load_matching_copies_all_but_the_excluded() -> None:
    torch.manual_seed(0)
    source, target = _net(), _net(width=7)  # the last layer differs in shape
    before = {k: v.clone() for k, v in target.state_dict().items()}
    done = load_matching(target, source.state_dict(), exclude=["2.*"])
    assert done["kept"] == ["2.bias", "2.weight"]
    assert "1.running_mean" in done["loaded"] and "0.weight" in done["loaded"]
    for k, v in target.state_dict().items():
        expected = before[k] if k.startswith("2.") else source.state_dict()[k]
        assert torch.equal(v, expected), k


def test_load_matching_names_every_mismatch() -> None:
    source = {k: v for k, v in _net().state_dict().items() if k != "0.bias"}
    source["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as info:
        load_matching(_net(width=7), source)
    message = str(info.value)
    assert "0.bias: not in the source" in message
    assert "extra.weight: in the source, not in the model" in message
    assert "2.weight: shape (4, 5) in the source, (7, 5) in the model" in message
    assert "net.spn.*" in message  # how to leave parts out


def test_source_is_a_shipped_name_or_a_file(tmp_path: Path) -> None:
    state = source_state_dict("anynet_spn8")
    shipped = torch.load(pretrained.path("anynet_spn8"), map_location="cpu", weights_only=True)
    assert state.keys() == shipped["state_dict"].keys()
    with pytest.raises(FileNotFoundError, match="neither a shipped pretrained model"):
        source_state_dict(str(tmp_path / "gone.ckpt"))
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a Lightning checkpoint"):
        source_state_dict(str(tmp_path / "other.pt"))


def test_anynet_of_another_spn_width_starts_from_the_shipped_stages() -> None:
    torch.manual_seed(1)
    task = StereoDepthModule(net=AnyNet(spn_channels=2))
    fresh_spn = {k: v.clone() for k, v in task.state_dict().items() if k.startswith("net.spn.")}
    assert fresh_spn  # the 2-channel SPN exists
    InitWeights("anynet_spn8", exclude=["net.spn.*"]).setup(None, task, "fit")
    shipped = source_state_dict("anynet_spn8")
    for k, v in task.state_dict().items():
        expected = fresh_spn[k] if k.startswith("net.spn.") else shipped[k]
        assert torch.equal(v, expected), k
    with pytest.raises(ValueError, match="net.spn.gate_net.6.weight: shape"):
        InitWeights("anynet_spn8").setup(None, task, "fit")  # SPN-8 into SPN-2: refused


class _Probe(Callback):
    """The weights training starts from."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = {k: v.clone() for k, v in pl_module.state_dict().items()}


def _fit(tmp_path: Path, callbacks: list, ckpt_path=None, max_steps: int = 1) -> Trainer:
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_steps=max_steps,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(BoringModel(), ckpt_path=ckpt_path)
    return trainer


def test_fit_starts_from_the_source_and_a_resume_from_its_own_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(2)
    source = tmp_path / "source.ckpt"
    _fit(tmp_path / "a", []).save_checkpoint(source)
    torch.manual_seed(3)
    own = tmp_path / "own.ckpt"
    _fit(tmp_path / "b", []).save_checkpoint(own)
    source_sd = torch.load(source, weights_only=True)["state_dict"]
    own_sd = torch.load(own, weights_only=True)["state_dict"]
    assert not torch.equal(source_sd["layer.weight"], own_sd["layer.weight"])

    probe = _Probe()
    _fit(tmp_path / "c", [InitWeights(str(source)), probe])
    assert torch.equal(probe.start["layer.weight"], source_sd["layer.weight"])

    probe = _Probe()
    _fit(tmp_path / "d", [InitWeights(str(source)), probe], ckpt_path=own, max_steps=2)
    assert torch.equal(probe.start["layer.weight"], own_sd["layer.weight"])
