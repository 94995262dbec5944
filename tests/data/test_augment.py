"""Stereo photometric augmentation: each operation against an independent formula, the
asymmetry between the views, reproducibility, and its wiring into Monkaa's training path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lightning_depth.data.augment import (
    AUGMENT_KEY,
    StereoAugment,
    augment_batch,
    colour_matrix,
    make_augment,
    pack_params,
    unpack_params,
    vertical_shift,
)
from lightning_depth.data.monkaa import (
    MonkaaDataModule,
    MonkaaDataset,
    MonkaaTransform,
    list_monkaa_samples,
    synthesize_monkaa,
)
from tests.helpers import quiet_trainer

H, W = 24, 40
# every operation off; a test switches on the one it checks
OFF = dict(colour_p=0.0, blur_p=0.0, noise_p=0.0, vshift_p=0.0, eraser_p=0.0)


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, H, W, generator=g), torch.rand(3, H, W, generator=g)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("k", [1, 2, -1, -2])
def test_integer_vertical_shift_moves_rows_exactly(k):
    image = torch.arange(3 * H * W, dtype=torch.float32).reshape(3, H, W)
    out = vertical_shift(image, float(k))
    if k > 0:
        assert torch.equal(out[:, k:], image[:, :-k])
        assert torch.equal(out[:, :k], image[:, :1].expand(3, k, W))  # edge row repeated
    else:
        assert torch.equal(out[:, :k], image[:, -k:])
        assert torch.equal(out[:, k:], image[:, -1:].expand(3, -k, W))


def test_fractional_vertical_shift_interpolates_rows():
    image = torch.rand(3, H, W)
    out = vertical_shift(image, 1.25)
    # row y of the output is row y - 1.25: 0.75 of row y - 1 and 0.25 of row y - 2
    expected = 0.75 * image[:, 1:-1] + 0.25 * image[:, :-2]
    torch.testing.assert_close(out[:, 2:], expected)


def test_vertical_shift_touches_the_right_view_only():
    left, right = _pair()
    aug = StereoAugment(**{**OFF, "vshift_p": 1.0}, max_vshift=2.0)
    params = aug.sample(H, W, _gen(3))
    assert 0 < abs(params.vshift) <= 2.0
    out_left, out_right = aug.apply(left, right, params)
    assert torch.equal(out_left, left)
    # independent reference: numpy row interpolation with clamped indices
    k = int(np.floor(params.vshift))
    a = params.vshift - k
    rows = np.arange(H)
    r = right.numpy()
    expected = (1 - a) * r[:, np.clip(rows - k, 0, H - 1)] + a * r[
        :, np.clip(rows - k - 1, 0, H - 1)
    ]
    np.testing.assert_allclose(out_right.numpy(), expected, atol=1e-6)


def test_gamma_follows_the_formula():
    left, right = _pair()
    aug = StereoAugment(
        **{**OFF, "colour_p": 1.0},
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
        hue=0.0,
        gamma=(1.5, 1.5),
    )
    out_left, out_right = aug(left, right, _gen(0))
    np.testing.assert_allclose(out_left.numpy(), left.numpy() ** 1.5, atol=2e-5)
    np.testing.assert_allclose(out_right.numpy(), right.numpy() ** 1.5, atol=2e-5)


def test_brightness_scales_each_view_by_its_own_factor():
    left = torch.full((3, H, W), 0.5)
    right = left.clone()
    aug = StereoAugment(
        **{**OFF, "colour_p": 1.0},
        brightness=0.3,
        contrast=0.0,
        saturation=0.0,
        hue=0.0,
        gamma=(1.0, 1.0),
        asymmetric_p=1.0,
    )
    params = aug.sample(H, W, _gen(1))
    out_left, out_right = aug.apply(left, right, params)
    for out, factor in zip((out_left, out_right), params.brightness.tolist()):
        assert 0.7 <= factor <= 1.3
        torch.testing.assert_close(out, torch.full_like(out, 0.5 * factor), atol=1e-5, rtol=0)
    assert params.brightness[0] != params.brightness[1]


def test_hue_rotates_about_the_grey_axis_and_saturation_blends_with_luma():
    one = torch.ones(1)
    # a third of a turn maps red to green and green to blue, and keeps greys
    m = colour_matrix(one, one, torch.tensor([2 * np.pi / 3]))[0].numpy()
    np.testing.assert_allclose(m @ [1, 0, 0], [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(m @ [0, 1, 0], [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(m @ [0.3, 0.3, 0.3], [0.3, 0.3, 0.3], atol=1e-6)
    # saturation 0 gives the BT.601 grey in every channel; brightness scales
    m = colour_matrix(torch.tensor([0.5]), torch.zeros(1), torch.zeros(1))[0].numpy()
    grey = 0.299 * 0.2 + 0.587 * 0.6 + 0.114 * 0.9
    np.testing.assert_allclose(m @ [0.2, 0.6, 0.9], [0.5 * grey] * 3, atol=1e-6)


@pytest.mark.parametrize("asymmetric_p,same", [(0.0, True), (1.0, False)])
def test_asymmetry_between_views(asymmetric_p, same):
    image = torch.rand(3, H, W)
    aug = StereoAugment(**{**OFF, "colour_p": 1.0}, asymmetric_p=asymmetric_p)
    out_left, out_right = aug(image, image.clone(), _gen(2))
    assert torch.equal(out_left, out_right) == same
    assert not torch.equal(out_left, image)


def test_blur_matches_opencv():
    image = torch.zeros(3, H, W)
    image[:, H // 2, W // 2] = 1.0  # an impulse far from the borders
    aug = StereoAugment(**{**OFF, "blur_p": 1.0}, blur_sigma=(0.5, 1.5))
    params = aug.sample(H, W, _gen(4))
    out_left, out_right = aug.apply(image, image, params)
    for out, sigma in zip((out_left, out_right), params.blur_sigma.tolist()):
        assert 0.5 <= sigma <= 1.5
        expected = cv2.GaussianBlur(image[0].numpy(), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        np.testing.assert_allclose(out[0].numpy(), expected, atol=2e-3)
    assert params.blur_sigma[0] != params.blur_sigma[1]  # drawn per view


def test_noise_has_the_drawn_strength():
    image = torch.full((3, 64, 64), 0.5)
    aug = StereoAugment(**{**OFF, "noise_p": 1.0}, noise_std=(0.01, 0.03))
    params = aug.sample(64, 64, _gen(5))
    out_left, out_right = aug.apply(image, image, params, generator=_gen(6))
    for out, std in zip((out_left, out_right), params.noise_std.tolist()):
        assert 0.01 <= std <= 0.03
        residual = (out - image).numpy()
        assert abs(residual.mean()) < 0.1 * std
        assert residual.std() == pytest.approx(std, rel=0.05)


def test_eraser_paints_the_right_view_with_its_mean():
    left, right = _pair()
    aug = StereoAugment(**{**OFF, "eraser_p": 1.0}, eraser_size=(0.2, 0.3))
    params = aug.sample(H, W, _gen(7))
    assert 1 <= len(params.boxes) <= 2
    out_left, out_right = aug.apply(left, right, params)
    assert torch.equal(out_left, left)
    mean = right.mean(dim=(1, 2))
    painted = torch.zeros(H, W, dtype=torch.bool)
    for top, x0, h, w in params.boxes:
        assert h >= int(0.2 * H) and w >= int(0.2 * W)
        painted[top : top + h, x0 : x0 + w] = True
    torch.testing.assert_close(out_right[:, painted], mean[:, None].expand(3, int(painted.sum())))
    assert torch.equal(out_right[:, ~painted], right[:, ~painted])


def test_same_seed_same_output_and_defaults_stay_in_range():
    left, right = _pair()
    aug = StereoAugment()
    a = aug(left, right, _gen(11))
    b = aug(left, right, _gen(11))
    c = aug(left, right, _gen(12))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    for seed in range(20):
        for out in aug(left, right, _gen(seed)):
            assert out.shape == (3, H, W) and out.dtype == torch.float32
            assert out.min() >= 0 and out.max() <= 1


def test_make_augment_and_bad_settings():
    assert make_augment(False) is None and make_augment(None) is None
    assert isinstance(make_augment(True), StereoAugment)
    assert make_augment({"eraser_p": 0.0}).eraser_p == 0.0
    with pytest.raises(ValueError, match="unknown settings \\['erasor_p'\\]"):
        make_augment({"erasor_p": 0.0})
    with pytest.raises(ValueError, match="blur_p must be a probability"):
        StereoAugment(blur_p=1.5)
    with pytest.raises(ValueError, match="gamma must be \\(min, max\\)"):
        StereoAugment(gamma=(1.5, 1.0))
    with pytest.raises(ValueError, match="shape \\(3, H, W\\)"):
        StereoAugment()(torch.rand(1, 4, 4), torch.rand(1, 4, 4))


# -- on the training device (augment_batch) ----------------------------------------------------


def _draws(aug: StereoAugment, seeds) -> list[dict]:
    return [aug.sample_packed(H, W, _gen(seed)) for seed in seeds]


def test_sample_packed_draws_what_sample_draws_and_round_trips():
    aug = StereoAugment(eraser_p=1.0)
    for seed in range(6):
        params = aug.sample(H, W, _gen(seed))
        packed = aug.sample_packed(H, W, _gen(seed))
        [(back, noise_seed)] = unpack_params(torch.utils.data.default_collate([packed]))
        assert back.colour == params.colour and back.vshift == params.vshift
        assert back.boxes == params.boxes and 1 <= len(back.boxes) <= 2
        for name in ("brightness", "contrast", "saturation", "hue", "gamma"):
            assert torch.equal(getattr(back, name), getattr(params, name))
        assert torch.equal(back.blur_sigma, params.blur_sigma)
        assert torch.equal(back.noise_std, params.noise_std)
        # the noise seed is the generator's next draw after the parameters
        g = _gen(seed)
        aug.sample(H, W, g)
        assert noise_seed == int(torch.randint(0, 2**62, (), generator=g))
    with pytest.raises(ValueError, match="lack \\['noise_seed'\\]"):
        unpack_params({k: v for k, v in pack_params(params, 1).items() if k != "noise_seed"})


def test_augment_batch_equals_apply_per_pair_with_seeded_noise(device):
    aug = StereoAugment(colour_p=0.5, blur_p=0.5, noise_p=0.5)
    seeds = range(8)
    draws = _draws(aug, seeds)
    items = [unpack_params(torch.utils.data.default_collate([d]))[0] for d in draws]
    # the batch mixes every branch: colour on and off, blur, noise, shifts, boxes
    assert {p.colour for p, _ in items} == {True, False}
    assert any(float(p.blur_sigma.max()) > 0 for p, _ in items)
    assert any(float(p.noise_std.max()) > 0 for p, _ in items)
    assert any(p.vshift for p, _ in items) and any(p.boxes for p, _ in items)
    pairs = [_pair(100 + s) for s in seeds]
    left = torch.stack([p[0] for p in pairs]).to(device)
    right = torch.stack([p[1] for p in pairs]).to(device)
    out_left, out_right = augment_batch(left, right, torch.utils.data.default_collate(draws))
    assert out_left.device == left.device and out_left.dtype == torch.float32
    for b, (params, noise_seed) in enumerate(items):
        noise = torch.Generator(device=device).manual_seed(noise_seed)
        want = aug.apply(pairs[b][0].to(device), pairs[b][1].to(device), params, noise)
        torch.testing.assert_close(out_left[b], want[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(out_right[b], want[1], rtol=0, atol=1e-6)
    # the colour step changed the coloured items and left the others alone
    for b, (params, _) in enumerate(items):
        if not params.colour and not params.blur_sigma[0] and not params.noise_std[0]:
            assert torch.equal(out_left[b], left[b])
    with pytest.raises(ValueError, match="8 augmentation draws for a batch of 2"):
        augment_batch(left[:2], right[:2], torch.utils.data.default_collate(draws))


# -- in Monkaa's transform and DataModule -----------------------------------------------------


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("monkaa_aug")
    synthesize_monkaa(root, scenes=2, frames=2, size=(40, 72), seed=0, workers=1)
    return list_monkaa_samples(root)


def test_evaluation_is_unchanged_bit_for_bit(samples):
    plain = MonkaaDataset(samples, training=False)
    augmented = MonkaaDataset(samples, training=False, augment=StereoAugment())
    for i in range(len(samples)):
        a, b = plain[i], augmented[i]
        assert all(torch.equal(a[k], b[k]) for k in ("left", "right", "disparity"))


def test_training_augmentation_keeps_the_crop_and_disparity(samples):
    plain = MonkaaDataset(samples, training=True, size=(16, 32))
    augmented = MonkaaDataset(samples, training=True, size=(16, 32), augment=StereoAugment())
    a, b, again = plain[(1, 99)], augmented[(1, 99)], augmented[(1, 99)]
    # the crop is drawn first, from the same seed: same window, same disparity
    assert torch.equal(a["disparity"], b["disparity"])
    assert not torch.equal(a["left"], b["left"])
    # reproducible from the item's seed
    assert all(torch.equal(b[k], again[k]) for k in ("left", "right", "disparity"))
    # no augmentation: exactly the normalised crop of before
    t = MonkaaTransform(training=True, size=(16, 32))
    record = plain.record(1)
    expected = t(record, generator=torch.Generator().manual_seed(99))
    assert torch.equal(a["left"], expected["left"])


def _small_monkaa(tmp_path, scenes: int, val_fraction: float, **kwargs) -> dict:
    """MonkaaDataModule arguments of a small generated set (2 frames a scene, 16x32 crops)."""
    return dict(
        synth_dir=str(tmp_path / "set"),
        synth_scenes=scenes,
        synth_frames=2,
        synth_size=(40, 72),
        size=(16, 32),
        batch_size=2,
        val_fraction=val_fraction,
        split_by="scene",
        num_workers=0,
        **kwargs,
    )


def test_datamodule_augments_training_batches_only(tmp_path):
    common = _small_monkaa(tmp_path, scenes=3, val_fraction=0.34)
    plain, augmented = MonkaaDataModule(**common), MonkaaDataModule(**common, augment=True)
    for dm in (plain, augmented):
        dm.prepare_data()
        dm.setup("fit")
    a, b = next(iter(plain.train_dataloader())), next(iter(augmented.train_dataloader()))
    assert a["name"] == b["name"] and torch.equal(a["disparity"], b["disparity"])
    assert not torch.equal(a["left"], b["left"])
    va, vb = next(iter(plain.val_dataloader())), next(iter(augmented.val_dataloader()))
    assert all(torch.equal(va[k], vb[k]) for k in ("left", "right", "disparity"))
    # a second run from the same seed sees the same augmented batch
    again = MonkaaDataModule(**common, augment=True)
    again.setup("fit")
    c = next(iter(again.train_dataloader()))
    assert all(torch.equal(b[k], c[k]) for k in ("left", "right", "disparity"))
    assert MonkaaDataModule(**common, augment={"eraser_p": 0.0}).augment.eraser_p == 0.0


def test_shuffle_seed_changes_order_and_augmentation_not_the_split(tmp_path):
    common = _small_monkaa(tmp_path, scenes=4, val_fraction=0.25, augment=True)
    runs = {}
    for shuffle_seed in (None, 42, 7):
        dm = MonkaaDataModule(**common, shuffle_seed=shuffle_seed)
        dm.prepare_data()
        dm.setup("fit")
        batches = list(dm.train_dataloader())
        runs[shuffle_seed] = (
            list(dm.train_set.samples),
            list(dm.val_set.samples),
            [name for b in batches for name in b["name"]],
            torch.cat([b["left"] for b in batches]),
        )
    default, same, other = runs[None], runs[42], runs[7]
    # None means the split seed (42): the very same run
    assert default[:3] == same[:3] and torch.equal(default[3], same[3])
    # another shuffle seed: the same split, another order and other augmentation
    assert other[0] == default[0] and other[1] == default[1]
    assert sorted(other[2]) == sorted(default[2]) and other[2] != default[2]
    by_name = dict(zip(default[2], default[3]))
    assert not any(torch.equal(by_name[n], x) for n, x in zip(other[2], other[3]))


def test_device_augmentation_gives_the_loader_batches_without_noise(tmp_path):
    """With the noise off, batches augmented in the DataModule's transfer hook equal those
    augmented in the loader (same draws from the same item seeds), and the items travel as
    uint8 crops with their packed draws."""
    settings = {"noise_p": 0.0, "blur_p": 0.5}
    common = _small_monkaa(tmp_path, scenes=3, val_fraction=0.34, augment=settings)
    loader = MonkaaDataModule(**common)
    on_device = MonkaaDataModule(**common, augment_on_device=True)
    for dm in (loader, on_device):
        dm.prepare_data()
        dm.setup("fit")
    for a, raw in zip(loader.train_dataloader(), on_device.train_dataloader()):
        assert raw["left"].dtype == torch.uint8 and AUGMENT_KEY in raw
        b = on_device.transfer_batch_to_device(raw, torch.device("cpu"), 0)
        assert AUGMENT_KEY not in b and a["name"] == b["name"]
        assert torch.equal(a["disparity"], b["disparity"])
        for key in ("left", "right"):
            torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5)
    # evaluation batches are the same float batches either way, and pass the hook unchanged
    va, vb = next(iter(loader.val_dataloader())), next(iter(on_device.val_dataloader()))
    vb = on_device.transfer_batch_to_device(vb, torch.device("cpu"), 0)
    assert all(torch.equal(va[k], vb[k]) for k in ("left", "right", "disparity"))


def _quiet_trainer(max_steps: int, **kwargs):
    """:func:`tests.helpers.quiet_trainer` that only trains (no validation)."""
    return quiet_trainer(max_steps=max_steps, num_sanity_val_steps=0, limit_val_batches=0, **kwargs)


def _small_anynet_task():
    from lightning_depth.models.anynet import AnyNet
    from lightning_depth.tasks.stereo import StereoDepthModule

    return StereoDepthModule(net=AnyNet(spn_channels=0))


def test_trainer_applies_device_augmentation_before_the_step(tmp_path):
    """A real fit: Lightning calls the DataModule's transfer hook, so the task sees float,
    normalised, augmented views (with noise, which the loader path would draw differently)."""
    import lightning as L

    common = _small_monkaa(tmp_path, scenes=3, val_fraction=0.34, augment={"noise_p": 1.0})
    dm = MonkaaDataModule(**common, augment_on_device=True)
    dm.prepare_data()
    dm.setup("fit")
    raw = next(iter(dm.train_dataloader()))
    expected = dm.transfer_batch_to_device(raw, torch.device("cpu"), 0)
    seen = []

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append({k: batch[k].clone() for k in ("left", "right")} | {"n": batch["name"]})

    _quiet_trainer(max_steps=2, callbacks=[Spy()]).fit(_small_anynet_task(), datamodule=dm)
    assert len(seen) == 2
    assert seen[0]["n"] == expected["name"]
    for key in ("left", "right"):
        assert seen[0][key].dtype == torch.float32
        torch.testing.assert_close(seen[0][key], expected[key], rtol=0, atol=0)


def test_dataloaders_without_the_datamodule_hook_stop_with_a_clear_error(tmp_path):
    """Handing the Trainer the dataloaders alone skips the DataModule's transfer hook: the
    step must refuse the raw uint8 views instead of training on them."""
    common = _small_monkaa(tmp_path, scenes=3, val_fraction=0.34, augment=True)
    dm = MonkaaDataModule(**common, augment_on_device=True)
    dm.prepare_data()
    dm.setup("fit")
    with pytest.raises(RuntimeError, match="transfer_batch_to_device hook"):
        _quiet_trainer(max_steps=1).fit(
            _small_anynet_task(), train_dataloaders=dm.train_dataloader()
        )


def test_device_augmentation_without_augment_is_refused(tmp_path):
    with pytest.raises(ValueError, match="augment is off"):
        MonkaaDataModule(
            **_small_monkaa(tmp_path, scenes=3, val_fraction=0.34), augment_on_device=True
        )
