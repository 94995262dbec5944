"""bf16-mixed on CPU: both tasks train to finite weights and the float32 run's metrics."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from lightning_depth import MonoDepthModule, StereoDepthModule
from lightning_depth.data import (
    DIODEDataModule,
    MonkaaDataModule,
    synthesize_diode,
    synthesize_monkaa,
)
from lightning_depth.losses import MonoDepthLoss
from lightning_depth.models import AnyNet, DepthAutoencoder

pytestmark = pytest.mark.slow


def _fit(module: L.LightningModule, data: L.LightningDataModule, precision: str, out: Path) -> dict:
    trainer = L.Trainer(
        accelerator="cpu",
        precision=precision,
        max_epochs=12,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, data)
    for name, value in module.state_dict().items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), f"{precision}: {name} is not finite"
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def _mono(root: Path) -> tuple:
    L.seed_everything(0)
    module = MonoDepthModule(
        net=DepthAutoencoder(depth=3, head="linear"),
        loss=MonoDepthLoss(ssim_max_val=5.7, ssim_k1=0.01, ssim_k2=0.03, use_mask=True),
        optimizer=lambda p: torch.optim.Adam(p, lr=3e-3),
    )
    return module, DIODEDataModule(
        str(root), size=(32, 32), batch_size=4, fractions=(0.75, 0.25, 0.0)
    )


def _stereo(root: Path) -> tuple:
    L.seed_everything(0)
    module = StereoDepthModule(net=AnyNet(spn_channels=2))
    data = MonkaaDataModule(str(root), crop_size=(64, 128), batch_size=2, val_fraction=0.25)
    return module, data


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    mono, stereo = tmp_path_factory.mktemp("diode"), tmp_path_factory.mktemp("monkaa")
    synthesize_diode(mono, n=16, size=(48, 32), seed=0)
    synthesize_monkaa(stereo, scenes=1, frames=8, size=(128, 64), seed=0)
    return {"mono": mono, "stereo": stereo}


@pytest.mark.parametrize(
    ("task", "build", "metric", "tolerance"),
    [
        ("mono", _mono, "val/ssim", 0.05),
        ("mono", _mono, "val/abs_rel", 0.05),
        ("stereo", _stereo, "val/epe", 0.05),
        ("stereo", _stereo, "val/3px", 0.05),
    ],
)
def test_bf16_mixed_matches_float32(roots, tmp_path: Path, task, build, metric, tolerance) -> None:
    reference = _fit(*build(roots[task]), "32-true", tmp_path / "fp32")
    mixed = _fit(*build(roots[task]), "bf16-mixed", tmp_path / "bf16")
    assert torch.isfinite(torch.tensor(mixed[metric]))
    gap = abs(mixed[metric] - reference[metric])
    print(
        f"{task}: {metric} float32={reference[metric]:.4f} bf16={mixed[metric]:.4f} gap={gap:.4f}"
    )
    assert gap <= tolerance * abs(reference[metric])
