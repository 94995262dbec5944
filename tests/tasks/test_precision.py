"""bf16-mixed on CPU: both tasks train to finite weights and to the float32 run's metrics.

Tolerances: the two runs start from the same weights and batches but round differently, so
their trajectories drift apart; after this short fit the validation metrics agree within
the stated tolerance (measured gaps are printed, run with ``-s``).
"""

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
from tests.helpers import quiet_trainer

pytestmark = pytest.mark.slow


def _fit(build, root: Path, precision: str, out: Path, epochs: int) -> dict:
    L.seed_everything(0)
    module, data = build(root)
    trainer = quiet_trainer(
        precision=precision, max_epochs=epochs, default_root_dir=out, num_sanity_val_steps=0
    )
    trainer.fit(module, data)
    for name, value in module.state_dict().items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), f"{precision}: {name} is not finite"
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def _mono(root: Path) -> tuple:
    module = MonoDepthModule(
        net=DepthAutoencoder(depth=3, head="linear"),
        loss=MonoDepthLoss(data_range=5.7, ssim_k1=0.01, ssim_k2=0.03, use_mask=True),
        optimizer=lambda p: torch.optim.Adam(p, lr=1e-3),
    )
    return module, DIODEDataModule(
        str(root), size=(32, 32), batch_size=4, val_fraction=0.25, test_fraction=0.0
    )


def _stereo(root: Path) -> tuple:
    module = StereoDepthModule(net=AnyNet(spn_channels=2))
    return module, MonkaaDataModule(str(root), size=(64, 128), batch_size=2, val_fraction=0.25)


@pytest.mark.parametrize(
    ("task", "build", "epochs", "tolerances"),
    [
        ("mono", _mono, 10, {"val/ssim": 0.05, "val/rmse": 0.1}),
        ("stereo", _stereo, 10, {"val/epe": 0.1, "val/3px": 0.05}),
    ],
)
def test_bf16_mixed_matches_float32(tmp_path: Path, task, build, epochs, tolerances) -> None:
    root = tmp_path / "data"
    if task == "mono":
        synthesize_diode(root, n=16, size=(32, 48), seed=0)
    else:
        synthesize_monkaa(root, scenes=1, frames=8, size=(64, 128), seed=0)
    reference = _fit(build, root, "32-true", tmp_path / "fp32", epochs)
    mixed = _fit(build, root, "bf16-mixed", tmp_path / "bf16", epochs)
    for metric, tolerance in tolerances.items():
        gap = abs(mixed[metric] - reference[metric])
        print(
            f"{task}: {metric} float32={reference[metric]:.4f} bf16={mixed[metric]:.4f} gap={gap:.4f}"
        )
        # absolute for metrics in [0, 1] (ssim, 3px), relative for EPE (px) and RMSE (m)
        relative = metric in ("val/epe", "val/rmse")
        bound = tolerance * reference[metric] if relative else tolerance
        assert gap <= bound, metric
