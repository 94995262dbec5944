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


def test_tile_layout_and_weights() -> None:
    from lightning_depth.tasks.mono import tile_starts, tile_weights

    assert tile_starts(64, 32, 8) == [0, 16, 32]  # ceil(56 / 24) = 3 tiles, spread evenly
    assert tile_starts(100, 32, 8) == [0, 23, 45, 68]  # ceil(92 / 24) = 4 tiles, 68 / 3 apart
    assert tile_starts(20, 32, 8) == [0]  # smaller than a tile: one tile
    assert tile_starts(32, 32, 0) == [0]
    torch.testing.assert_close(tile_weights(6, 2), torch.tensor([1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3]))
    assert torch.equal(tile_weights(4, 0), torch.ones(4))
    with pytest.raises(ValueError, match="overlap must be in"):
        tile_starts(64, 32, 32)


def _module_at(train_size: tuple[int, int]) -> MonoDepthModule:
    torch.manual_seed(0)
    module = MonoDepthModule(net=DepthAutoencoder(depth=2)).eval()
    module.train_size = train_size
    return module


def test_predict_map_returns_the_input_size_at_every_resolution() -> None:
    module = _module_at((16, 16))
    image = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    maps = {}
    for resolution in ("train", "native", "tiles"):
        module.set_predict_resolution(resolution)
        with torch.no_grad():
            maps[resolution] = module.predict_map(image)
        assert maps[resolution].shape == (2, 1, 37, 53)
        assert torch.isfinite(maps[resolution]).all() and (maps[resolution] > 0).all()
    assert not torch.allclose(maps["train"], maps["native"], rtol=1e-3)
    assert not torch.allclose(maps["tiles"], maps["native"], rtol=1e-3)
    with pytest.raises(ValueError, match=r"one of \('train', 'native', 'tiles'\)"):
        module.set_predict_resolution("huge")
    module.train_size = None
    with pytest.raises(ValueError, match="does not record.*use resolution 'native'"):
        module.set_predict_resolution("tiles")
    assert module.default_predict_resolution == "native"


def test_tiles_blend_overlapping_tiles_of_the_training_size() -> None:
    module = _module_at((16, 16))
    module.set_predict_resolution("tiles")
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tiled = module.predict_map(image)
        # by hand: tiles at rows/columns 0, 8, 16 (16-pixel tiles, >= 4 px overlap)
        tile = {(y, x): module.net(image[..., y : y + 16, x : x + 16]).exp()
                for y in (0, 8, 16) for x in (0, 8, 16)}  # fmt: skip
    # pixels only one tile covers keep that tile's depth
    torch.testing.assert_close(tiled[..., :8, :8], tile[0, 0][..., :8, :8], rtol=1e-5, atol=0)
    torch.testing.assert_close(tiled[..., 24:, 24:], tile[16, 16][..., 8:, 8:], rtol=1e-5, atol=0)
    torch.testing.assert_close(tiled[..., :8, 24:], tile[0, 16][..., :8, 8:], rtol=1e-5, atol=0)
    # where tiles overlap the depth lies between the tiles' own (a blend, in log-depth)
    a, b = tile[0, 0][..., :8, 8:12], tile[0, 8][..., :8, 0:4]
    blended = tiled[..., :8, 8:12]
    assert ((blended >= torch.minimum(a, b) - 1e-6) & (blended <= torch.maximum(a, b) + 1e-6)).all()
    assert not torch.allclose(blended, a, rtol=1e-4) and not torch.allclose(blended, b, rtol=1e-4)


def test_visualize_colours_near_warm() -> None:
    # log-depth 0 (1 m, near) on the left half, log(10) on the right: near is red, far blue
    module = MonoDepthModule(net=DepthAutoencoder(depth=2)).eval()
    batch = _batch(1, size=8)
    batch["target"] = torch.zeros(1, 1, 8, 8)
    batch["target"][..., 4:] = math.log(10.0)
    batch["mask"][:] = True
    pictures = module.visualize(batch, batch["target"], index=0)
    for key in ("target", "prediction"):
        near, far = pictures[key][0, 0].astype(int), pictures[key][0, 7].astype(int)
        assert near[0] > far[0] and near[2] < far[2], key
