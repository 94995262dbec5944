"""StereoDepthModule: padding, stage weights, metrics, evaluation and pictures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lightning_depth import StereoDepthModule
from lightning_depth.losses import MultiStageSmoothL1
from lightning_depth.models import AnyNet
from tests.helpers import quiet_trainer


def _batch(n: int = 2, h: int = 64, w: int = 128) -> dict:
    g = torch.Generator().manual_seed(2)
    disparity = 4 + 8 * torch.rand(n, 1, h, w, generator=g)
    disparity[:, :, :, :3] = 0  # invalid
    return {
        "left": torch.randn(n, 3, h, w, generator=g),
        "right": torch.randn(n, 3, h, w, generator=g),
        "disparity": disparity,
        "name": [f"s/{i:04d}" for i in range(n)],
    }


def test_forward_pads_any_size_and_crops_back() -> None:
    module = StereoDepthModule(net=AnyNet(spn_channels=2)).eval()
    left, right = torch.randn(1, 3, 50, 90), torch.randn(1, 3, 50, 90)
    with torch.no_grad():
        preds = module(left, right)
    assert len(preds) == 4 and all(p.shape == (1, 1, 50, 90) for p in preds)
    with torch.no_grad():
        assert len(module(left, right, stages=2)) == 2


def test_predict_at_x2_runs_the_enlarged_pair_and_halves_the_disparity() -> None:
    torch.manual_seed(0)
    module = StereoDepthModule(net=AnyNet(spn_channels=2)).eval()
    g = torch.Generator().manual_seed(3)
    left, right = torch.randn(1, 3, 40, 72, generator=g), torch.randn(1, 3, 40, 72, generator=g)
    assert module.predict_resolution == "native"
    with torch.no_grad():
        native = module.predict_map(left, right)
        module.set_predict_resolution("x2")
        enlarged = module.predict_map(left, right)
        # By hand with OpenCV (bilinear, half-pixel centres): the pair at 80x144, the last
        # stage's disparity (clamped at 0) back at 40x72, halved.
        up = [
            torch.from_numpy(cv2.resize(v[0].permute(1, 2, 0).numpy(), (144, 80))).permute(2, 0, 1)[
                None
            ]
            for v in (left, right)
        ]
        big = module(*up)[-1][0, 0].clamp_min(0).numpy()
    expected = cv2.resize(big, (72, 40), interpolation=cv2.INTER_LINEAR) / 2
    assert enlarged.shape == native.shape == (1, 1, 40, 72)
    # (float rounding of the two resizes, through an untrained network: ~1e-4)
    np.testing.assert_allclose(enlarged[0, 0].numpy(), expected, rtol=1e-4, atol=1e-3)
    assert not torch.allclose(enlarged, native)
    with pytest.raises(ValueError, match=r"predicts at one of \('native', 'x2'\)"):
        module.set_predict_resolution("train")


def test_default_optimizer_is_the_originals() -> None:
    opt = StereoDepthModule(net=AnyNet(spn_channels=0)).configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["lr"] == pytest.approx(5e-4)


def test_spn_stage_waits_for_its_start_epoch() -> None:
    module = StereoDepthModule(net=AnyNet(spn_channels=2), spn_start_epoch=2)
    trainer = quiet_trainer()
    module.trainer = trainer
    assert module.stage_weights() == (0.25, 0.5, 1.0, 0.0)
    trainer.fit_loop.epoch_progress.current.completed = 2
    assert module.stage_weights() == (0.25, 0.5, 1.0, 1.0)


def test_too_few_loss_weights_is_an_error() -> None:
    with pytest.raises(ValueError, match="3 stage weights .* but the network returns 4 stages"):
        StereoDepthModule(net=AnyNet(spn_channels=2), loss=MultiStageSmoothL1(weights=(1, 1, 1)))


def test_stage_count_comes_from_the_net() -> None:
    assert StereoDepthModule(net=AnyNet(spn_channels=0)).num_stages == 3
    assert StereoDepthModule(net=AnyNet(spn_channels=1)).num_stages == 4


def test_loss_module_is_used_with_its_weights_and_range() -> None:
    """The task's loss is the given module: a loss with weights (0, 0, 1) and maxdisp 10
    counts only stage 3 on pixels below 10 px (checked against a hand computation)."""
    module = StereoDepthModule(
        net=AnyNet(spn_channels=0), loss=MultiStageSmoothL1(weights=(0, 0, 1), maxdisp=10.0)
    )
    batch = _batch(1, 32, 64)
    preds = [torch.zeros_like(batch["disparity"]) for _ in range(3)]
    preds[2] = batch["disparity"] + 0.5  # smooth-L1 of 0.5 with beta 1: 0.5 * 0.5**2 = 0.125
    terms = module.compute_loss(batch, preds)
    gt = batch["disparity"]
    valid = (gt > 0) & (gt < 10)
    assert float(terms["stage3"]) == pytest.approx(0.125, rel=1e-6)
    assert float(terms["loss"]) == pytest.approx(0.125, rel=1e-6)
    expected_stage1 = float(torch.where(valid, gt - 0.5, 0).sum() / valid.sum())
    assert float(terms["stage1"]) == pytest.approx(expected_stage1, rel=1e-5)


def test_evaluate_matches_validate_and_per_sample_values() -> None:
    torch.manual_seed(0)
    module = StereoDepthModule(net=AnyNet(spn_channels=0))
    batch = _batch(3)
    items = [{k: v[i] for k, v in batch.items()} for i in range(3)]
    loader = DataLoader(items, batch_size=2)
    manual = module.evaluate(loader)
    trainer = quiet_trainer()
    logged = trainer.validate(module, loader, verbose=False)[0]
    for key in ("3px", "epe", "3px_stage1", "epe_stage2"):
        assert logged[f"val/{key}"] == pytest.approx(manual[key], rel=1e-5), key
    module.eval()
    with torch.no_grad():
        preds = module(batch["left"], batch["right"])
    per_sample = module.per_sample_metrics(batch, preds)
    assert set(per_sample) == {f"{m}_stage{k}" for m in ("3px", "epe") for k in (1, 2, 3)} | {
        "3px",
        "epe",
    }
    torch.testing.assert_close(per_sample["3px"], per_sample["3px_stage3"])
    # the epoch value is the mean of per-sample values (each image counts once)
    assert float(per_sample["epe_stage3"].mean()) == pytest.approx(manual["epe"], rel=1e-5)


def test_visualize_shows_each_stage_and_blacks_out_invalid_pixels() -> None:
    module = StereoDepthModule(net=AnyNet(spn_channels=2)).eval()
    batch = _batch(1)
    with torch.no_grad():
        preds = module(batch["left"], batch["right"])
    pictures = module.visualize(batch, preds)
    assert list(pictures) == [
        "left",
        "right",
        "ground_truth",
        "stage1",
        "stage2",
        "stage3",
        "stage4",
        "error",
    ]
    assert all(p.shape == (64, 128, 3) and p.dtype == np.uint8 for p in pictures.values())
    assert (pictures["ground_truth"][:, :3] == 0).all() and (pictures["error"][:, :3] == 0).all()


def test_visualize_colours_near_warm() -> None:
    # large disparity (near) is red, small (far) blue, as mono's small depth
    module = StereoDepthModule(net=AnyNet(spn_channels=2)).eval()
    batch = _batch(1, 16, 32)
    batch["disparity"][:] = 2.0
    batch["disparity"][..., :8] = 40.0
    pictures = module.visualize(batch, [batch["disparity"]] * module.num_stages)
    for key in ("ground_truth", f"stage{module.num_stages}"):
        near, far = pictures[key][0, 0].astype(int), pictures[key][0, 31].astype(int)
        assert near[0] > far[0] and near[2] < far[2], key
