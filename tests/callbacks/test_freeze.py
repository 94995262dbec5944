"""FreezeWeights: the named modules keep their weights and batch-norm statistics and run in
eval mode through a real fit (training and validation), the rest trains, and a pattern that
names nothing is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_depth.callbacks import FreezeWeights
from lightning_depth.callbacks.freeze import frozen_modules
from lightning_depth.models import AnyNet
from lightning_depth.tasks.stereo import StereoDepthModule


class _Net(LightningModule):
    """A stem (linear + batch norm) and a head; records the stem's mode at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        self.head = nn.Linear(4, 1)
        self.stem_modes: list[tuple[str, bool]] = []
        self.stem_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stem(x)
        self.stem_outputs.append((x.detach().clone(), features.detach().clone()))
        return self.head(features)

    def training_step(self, batch, batch_idx):
        self.stem_modes.append(("train", self.stem[1].training))
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        self.stem_modes.append(("val", self.stem[1].training))
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 3, generator=g) * 3 + 1  # far from the fresh BN statistics (0, 1)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


def _fit(model: _Net, root: Path, epochs: int, ckpt_path=None) -> Trainer:
    trainer = Trainer(
        default_root_dir=root,
        max_epochs=epochs,
        callbacks=[FreezeWeights(["stem"])],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
    )
    trainer.fit(model, _loader(1), _loader(2), ckpt_path=ckpt_path)
    return trainer


def test_frozen_stem_keeps_weights_and_statistics_and_runs_in_eval_mode(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _Net()
    with torch.no_grad():  # statistics a batch would visibly change
        model.stem[1].running_mean.fill_(0.5)
        model.stem[1].running_var.fill_(2.0)
    stem_before = {k: v.clone() for k, v in model.stem.state_dict().items()}
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    _fit(model, tmp_path, epochs=2)
    for k, v in model.stem.state_dict().items():
        assert torch.equal(v, stem_before[k]), k  # weights and running statistics
    assert not torch.equal(model.head.weight, head_before["weight"])  # the head trained
    assert {kind for kind, _ in model.stem_modes} == {"train", "val"}
    assert not any(training for _, training in model.stem_modes)  # eval mode throughout
    # Eval mode means the running statistics normalise (computed here by hand, not by BN).
    linear, bn = stem_before["0.weight"], stem_before
    for x, features in model.stem_outputs:
        z = x @ linear.T + bn["0.bias"]
        expected = (z - bn["1.running_mean"]) / torch.sqrt(bn["1.running_var"] + 1e-5)
        expected = expected * bn["1.weight"] + bn["1.bias"]
        torch.testing.assert_close(features, expected)


def test_a_resumed_run_keeps_the_frozen_part_fixed(tmp_path: Path) -> None:
    torch.manual_seed(0)
    first = _Net()
    stem_start = {k: v.clone() for k, v in first.stem.state_dict().items()}
    _fit(first, tmp_path, epochs=1).save_checkpoint(tmp_path / "epoch1.ckpt")
    head_after_one = first.head.weight.detach().clone()
    torch.manual_seed(5)
    resumed = _Net()  # other fresh weights: the checkpoint must restore the stem
    _fit(resumed, tmp_path, epochs=2, ckpt_path=tmp_path / "epoch1.ckpt")
    for k, v in resumed.stem.state_dict().items():
        assert torch.equal(v, stem_start[k]), k
    assert not any(training for _, training in resumed.stem_modes)
    assert not torch.equal(resumed.head.weight, head_after_one)  # the second epoch trained


def test_anynet_stages_fixed_spn_trains() -> None:
    task = StereoDepthModule(net=AnyNet(spn_channels=2))
    chosen = frozen_modules(task, ["net.feature_extractor", "net.cost_filters"])
    assert list(chosen) == ["net.feature_extractor", "net.cost_filters"]
    callback = FreezeWeights(["net.feature_extractor", "net.cost_filters"])
    callback.setup(None, task, "fit")
    callback.on_train_start(None, task)
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in task.named_parameters() if n.startswith("net.spn.")}
    # The paper's counts: AnyNet with a 2-channel SPN 35,277, without SPN 34,629.
    assert sum(p.numel() for p in task.parameters() if p.requires_grad) == 35_277 - 34_629
    assert not task.net.feature_extractor.training and task.net.spn.training


def test_patterns_match_outermost_modules_and_refuse_nothing_or_everything() -> None:
    model = _Net()
    assert list(frozen_modules(model, ["stem*"])) == ["stem"]  # stem.0, stem.1 are inside
    assert list(frozen_modules(model, ["stem.1"])) == ["stem.1"]
    with pytest.raises(ValueError, match=r"no module matches \['trunk'\].*'stem'"):
        frozen_modules(model, ["trunk"])
    with pytest.raises(ValueError, match="nothing trains"):
        frozen_modules(model, ["stem", "head"])
    with pytest.raises(ValueError, match="at least one"):
        frozen_modules(model, [])
