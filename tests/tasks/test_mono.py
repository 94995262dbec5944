"""MonoDepthModule: steps, metrics, evaluation and pictures on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lightning_depth import MonoDepthModule
from lightning_depth.models.autoencoder import DepthAutoencoder
from tests.helpers import quiet_trainer


def _batch(n: int = 2, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(n, 3, size, size, generator=g)
    # a learnable target: log-depth follows the image's mean brightness
    target = 0.2 + 0.6 * image.mean(1, keepdim=True)
    mask = torch.ones(n, 1, size, size, dtype=torch.bool)
    mask[:, :, :4] = False
    return {"image": image, "target": target, "mask": mask, "name": [f"s{i}" for i in range(n)]}


def test_default_optimizer_is_keras_adam() -> None:
    module = MonoDepthModule(net=DepthAutoencoder(depth=3))
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["lr"] == pytest.approx(2e-4)
    assert opt.defaults["eps"] == pytest.approx(1e-7)


def test_training_reduces_loss_on_one_batch() -> None:
    module = MonoDepthModule(
        net=DepthAutoencoder(depth=3),
        optimizer=lambda p: torch.optim.Adam(p, lr=1e-3),
    )
    batch = _batch()
    opt = module.configure_optimizers()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        pred = module(batch["image"])
        loss = module.loss_fn(pred, batch["target"], mask=batch["mask"], image=batch["image"])[
            "loss"
        ]
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_evaluate_matches_trainer_validate(tmp_path) -> None:
    torch.manual_seed(0)
    module = MonoDepthModule(net=DepthAutoencoder(depth=3))
    batches = [_batch(2), _batch(3)]
    loader = DataLoader(
        [
            {k: (v[i] if k != "name" else v[i]) for k, v in b.items()}
            for b in batches
            for i in range(len(b["name"]))
        ],
        batch_size=2,
    )
    manual = module.evaluate(loader)
    trainer = quiet_trainer(default_root_dir=tmp_path)
    logged = trainer.validate(module, loader, verbose=False)[0]
    for key in ("ssim", "abs_rel", "rmse", "delta1"):
        assert logged[f"val/{key}"] == pytest.approx(manual[key], rel=1e-5), key
    assert 0.0 < manual["ssim"] <= 1.0
    assert module.training  # evaluate() restores the mode


def test_per_sample_metrics_average_to_epoch_value() -> None:
    module = MonoDepthModule(net=DepthAutoencoder(depth=3)).eval()
    batch = _batch(4)
    with torch.no_grad():
        pred = module(batch["image"])
    per_sample = module.per_sample_metrics(batch, pred)
    assert per_sample["ssim"].shape == (4,)
    metrics = module.make_metrics()
    module.update_metrics(metrics, batch, pred)
    epoch = module.compute_metrics(metrics)
    assert float(per_sample["ssim"].mean()) == pytest.approx(float(epoch["ssim"]), rel=1e-5)
    assert float(per_sample["abs_rel"].mean()) == pytest.approx(float(epoch["abs_rel"]), rel=1e-5)


def test_visualize_paints_invalid_target_black() -> None:
    module = MonoDepthModule(net=DepthAutoencoder(depth=3)).eval()
    batch = _batch(1)
    pictures = module.visualize(batch, batch["target"], index=0)
    assert set(pictures) == {"input", "target", "prediction"}
    for picture in pictures.values():
        assert picture.shape == (32, 32, 3) and picture.dtype == np.uint8
    assert (pictures["target"][:4] == 0).all()
    assert pictures["target"][4:].max() > 0


def test_channels_last_keeps_numerics() -> None:
    torch.manual_seed(0)
    net = DepthAutoencoder(depth=3).eval()
    a = MonoDepthModule(net=net)
    b = MonoDepthModule(net=DepthAutoencoder(depth=3).eval(), channels_last=True)
    b.net.load_state_dict(net.state_dict())
    x = _batch(2)["image"]
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=1e-5)


def test_ssim_data_range_default_is_largest_target() -> None:
    assert MonoDepthModule(net=DepthAutoencoder(depth=3)).data_range == pytest.approx(math.log(300))
