"""Stereo photometric augmentation: each operation against an independent formula, the
asymmetry between the views, reproducibility, and its wiring into Monkaa's training path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lightning_depth.data.augment import (
    StereoAugment,
    colour_matrix,
    make_augment,
    vertical_shift,
)
from lightning_depth.data.monkaa import (
    MonkaaDataModule,
    MonkaaDataset,
    MonkaaTransform,
    list_monkaa_samples,
    synthesize_monkaa,
)

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
