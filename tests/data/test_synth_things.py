"""FlyingThings-style stereo scenes: exact geometry, stereo consistency, disparity range,
determinism over workers, the Monkaa layout and DataModule."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightning_depth.cli import main as cli_main
from lightning_depth.config import build_cli
from lightning_depth.data.monkaa import (
    MonkaaDataModule,
    list_monkaa_samples,
    monkaa_generated,
    synthesize_monkaa,
)
from lightning_depth.data.synth_command import main as synth_main
from lightning_depth.data.synth_textures import PHOTOS, load_photos
from lightning_depth.data.synth_things import (
    _BoxShape,
    _CylinderShape,
    _EllipsoidShape,
    _QuadShape,
    default_max_disparity,
    render_things,
    things_frames,
)
from lightning_depth.io.pfm import read_pfm

SIZE = (48, 96)


def _render(seed: int, **kwargs) -> dict:
    out = render_things(np.random.default_rng(seed), kwargs.pop("size", SIZE), **kwargs)
    return {**out["frames"][0], "focal": out["focal"], "baseline": out["baseline"]}


def _row_interp(image: np.ndarray, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``image[rows, x]`` linearly interpolated along each row (x inside the image)."""
    x0 = np.floor(x).astype(int)
    x1 = np.minimum(x0 + 1, image.shape[1] - 1)
    a = x - x0
    if image.ndim == 3:
        a = a[:, None]
    return image[rows, x0] * (1 - a) + image[rows, x1] * a


def _matched(out: dict) -> tuple[np.ndarray, ...]:
    """Left pixels whose point the right view sees: the right view's disparity at ``x - d``
    (linearly interpolated) is the left pixel's ``d`` (to 1%; an occluded point would find
    a nearer surface there, so a larger disparity). Returns rows, columns and right x, and
    how many left pixels land inside the right view."""
    d = out["disparity"]
    v, u = np.mgrid[0 : d.shape[0], 0 : d.shape[1]]
    v, u, d = v.ravel(), u.ravel(), d.ravel()
    xr = u - d
    inside = (xr >= 0) & (xr < out["right_disparity"].shape[1] - 1)
    v, u, xr, d = v[inside], u[inside], xr[inside], d[inside]
    seen = _row_interp(out["right_disparity"], xr, v)
    near = np.abs(seen - d) <= 0.01 * d
    return v[near], u[near], xr[near], len(near)


def test_outputs_shapes_dtypes_and_dense_positive_disparity():
    out = _render(0, photos=False)
    assert out["left"].shape == out["right"].shape == (*SIZE, 3)
    assert out["left"].dtype == out["right"].dtype == np.uint8
    for key in ("depth", "disparity", "right_disparity"):
        assert out[key].shape == SIZE and out[key].dtype == np.float32
        assert np.isfinite(out[key]).all() and (out[key] > 0).all()
    # textured everywhere: no 8x8 block of a single colour (a flat background would have one)
    blocks = out["left"][: SIZE[0] // 8 * 8, : SIZE[1] // 8 * 8].astype(int)
    blocks = blocks.reshape(SIZE[0] // 8, 8, SIZE[1] // 8, 8, 3)
    assert (blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))).max(axis=-1).min() > 0


def test_disparity_is_focal_baseline_over_depth():
    out = _render(1)
    fb = out["focal"] * out["baseline"]
    np.testing.assert_allclose(out["disparity"], fb / out["depth"], rtol=1e-6)
    # the camera settings are per scene: field of view 40-85 degrees
    hfov = 2 * np.degrees(np.arctan(0.5 * SIZE[1] / out["focal"]))
    assert 40 <= hfov <= 85


def test_background_plane_has_affine_inverse_depth():
    # With no objects the view is the background quad: a plane, whose inverse depth (so the
    # disparity) is an affine function of the pixel coordinates.
    out = _render(2, objects=(0, 0), photos=False)
    v, u = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
    a = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
    for key in ("disparity", "right_disparity"):
        d = out[key].ravel().astype(np.float64)
        coef, *_ = np.linalg.lstsq(a, d, rcond=None)
        assert np.abs(a @ coef - d).max() < 1e-3 * d.max()
    # ... and the same plane in both views: the right view is the left shifted by d
    np.testing.assert_allclose(
        out["right_disparity"][:, :-20].ravel(),
        _row_interp(
            out["disparity"],
            (u[:, :-20] + out["right_disparity"][:, :-20]).ravel(),
            v[:, :-20].ravel(),
        ),
        rtol=1e-3,
    )


@pytest.mark.parametrize("seed", [3, 4])
def test_right_view_sees_left_points_at_x_minus_d(seed):
    out = _render(seed, size=(64, 128), specular=False)
    v, u, xr, inside = _matched(out)
    # the right camera sees most left points that land in its view at x - d, at the same
    # depth (so the same disparity); the rest are occluded
    assert len(v) > 0.7 * inside
    # Lambertian shading: the colour is the same from both cameras (up to texture
    # interpolation and the mip level, which depends a little on the viewing angle)
    left = out["left"][v, u].astype(np.float32)
    right = _row_interp(out["right"].astype(np.float32), xr, v)
    matched = np.abs(left - right).max(axis=1)
    assert np.median(matched) < 6 and (matched < 25).mean() > 0.9
    # a disparity 2 px off matches much worse
    for wrong in (xr - 2, xr + 2):
        ok = (wrong >= 0) & (wrong < out["right"].shape[1] - 1)
        off = np.abs(left[ok] - _row_interp(out["right"].astype(np.float32), wrong[ok], v[ok]))
        assert off.max(axis=1).mean() > 2 * matched.mean()


def test_specular_highlights_differ_between_views_but_diffuse_does_not():
    rng_seed = 5
    shiny = _render(rng_seed, size=(64, 128), specular=True)
    matte = _render(rng_seed, size=(64, 128), specular=False)
    # the geometry is the same, only the shading differs
    np.testing.assert_array_equal(shiny["disparity"], matte["disparity"])
    assert (shiny["left"].astype(int) >= matte["left"].astype(int)).all()
    assert (shiny["left"] != matte["left"]).any()


def test_disparity_range_follows_the_settings():
    max_disparity = 30.0
    scenes = list(things_frames(8, 1, SIZE, seed=3, max_disparity=max_disparity, workers=1))
    disparities = np.stack([s["disparity"] for s in scenes])
    assert disparities.max() <= max_disparity * (1 + 1e-5) and disparities.min() > 0
    # per scene the nearest object is drawn at 20-100% of the maximum, the background at
    # 0.4-4%: the set spans the range
    assert disparities.max() > 0.7 * max_disparity
    assert disparities.min() < 0.06 * max_disparity
    assert np.percentile(disparities, 50) < 0.6 * max_disparity
    # the default maximum is 40% of the width
    default = render_things(np.random.default_rng(0), SIZE, photos=False)["frames"][0]
    assert default["disparity"].max() <= 0.4 * SIZE[1] * (1 + 1e-5)


def test_objects_are_many_and_some_are_thin():
    objects = [_render(s, size=(96, 192), photos=False)["objects"] for s in range(4)]
    visible = [len(np.unique(o)) - 1 for o in objects]  # 0 is the background
    assert min(visible) >= 5 and max(visible) <= 40
    # thin structures: objects seen over >= 30 px whose area is under 6 px per pixel of
    # extent (bars are 1.5-8 px thick)
    thin = 0
    for o in objects:
        for k in np.unique(o)[1:]:
            rows, cols = np.nonzero(o == k)
            extent = np.hypot(np.ptp(rows), np.ptp(cols))
            thin += extent >= 30 and len(rows) < 6 * extent
    assert thin >= 2
    plain = _render(6, size=(96, 192), photos=False, objects=(0, 0))["objects"]
    assert (plain == 0).all()


def test_frames_move_the_cameras_sideways_only():
    out = render_things(np.random.default_rng(7), SIZE, photos=False, frames=3, move=0.05)
    frames = out["frames"]
    assert len(frames) == 3
    assert not np.array_equal(frames[0]["left"], frames[1]["left"])
    # a sideways move keeps every depth, so the disparity range is that of the first frame
    first, last = frames[0]["disparity"], frames[2]["disparity"]
    assert abs(np.median(first) - np.median(last)) < 0.2 * np.median(first)


@pytest.mark.parametrize(
    "shape,expected",
    [
        (_BoxShape([0, 0, 5], np.eye(3), [1, 2, 0.5]), 4.5),
        (_EllipsoidShape([0, 0, 5], np.eye(3), [1, 1, 1]), 4.0),
        (_EllipsoidShape([0, 0, 5], np.eye(3), [1, 1, 2]), 3.0),
        (_CylinderShape([0, 0, 5], np.eye(3), [1, 1, 0.5]), 4.5),  # axis along z: a cap
        (_QuadShape([0, 0, 5], np.eye(3), [1, 1, 0]), 5.0),
    ],
)
def test_shapes_hit_where_geometry_says(shape, expected):
    origin = np.zeros(3, dtype=np.float32)
    dx = np.array([0.0, 0.5], dtype=np.float32)  # the centre ray, and one that misses
    dy = np.zeros(2, dtype=np.float32)
    t = shape.hit(origin, dx, dy)
    assert t[0] == pytest.approx(expected, rel=1e-6) and np.isinf(t[1])


def test_cylinder_side_hit():
    # axis along y: the centre ray meets the curved side at z = 5 - r
    rot = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float32)  # local z -> y
    shape = _CylinderShape([0, 0, 5], rot, [0.5, 0.5, 2])
    t = shape.hit(np.zeros(3, np.float32), np.zeros(1, np.float32), np.zeros(1, np.float32))
    assert t[0] == pytest.approx(4.5, rel=1e-6)


def test_photos_load_offline_and_exclude_the_test_pair():
    photos = load_photos()
    assert len(photos) == len(PHOTOS) + 1  # scikit-image's and matplotlib's
    assert all(p.dtype == np.float32 and p.ndim == 3 and p.shape[2] == 3 for p in photos)
    assert all(max(p.shape[:2]) <= 512 and p.min() >= 0 and p.max() <= 1 for p in photos)
    assert not any("motorcycle" in name for name in PHOTOS)


def _digest(root) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_with_any_worker_count(tmp_path):
    one, two, other = tmp_path / "one", tmp_path / "two", tmp_path / "other"
    paths = synthesize_monkaa(one, scenes=3, frames=1, size=SIZE, seed=4, style="things", workers=1)
    synthesize_monkaa(two, scenes=3, frames=1, size=SIZE, seed=4, style="things", workers=2)
    synthesize_monkaa(other, scenes=3, frames=1, size=SIZE, seed=5, style="things", workers=1)
    assert _digest(one) == _digest(two)
    assert _digest(one) != _digest(other)
    assert [p.relative_to(one).as_posix() for p in paths] == [
        f"frames_cleanpass/things_000{s}_x2/left/0000.png" for s in range(3)
    ]


def test_things_in_monkaa_layout_match_the_renderer(tmp_path):
    synthesize_monkaa(tmp_path, scenes=2, frames=2, size=SIZE, seed=1, style="things")
    samples = list_monkaa_samples(tmp_path)
    assert len(samples) == 4
    direct = list(things_frames(2, 2, SIZE, seed=1, workers=1))
    for sample, frame in zip(samples, direct):
        left, right, disparity = sample
        np.testing.assert_array_equal(np.asarray(Image.open(left)), frame["left"])
        np.testing.assert_array_equal(np.asarray(Image.open(right)), frame["right"])
        np.testing.assert_array_equal(read_pfm(disparity)[0], frame["disparity"])


def test_datamodule_trains_on_things_style(tmp_path):
    dm = MonkaaDataModule(
        synth_dir=str(tmp_path / "things"),
        synth_style="things",
        synth_scenes=4,
        synth_frames=1,
        synth_size=SIZE,
        val_fraction=0.25,
        split_by="scene",
        size=(32, 64),
        batch_size=2,
        augment=True,
    )
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["left"].shape == batch["right"].shape == (2, 3, 32, 64)
    assert (batch["disparity"] > 0).all()
    assert all(name.startswith("things_") for name in batch["name"])
    assert dm.generated().name == "monkaa_things_4x1_48x96_seed0"
    # the rooms style keeps its names (cached sets of earlier versions stay valid)
    assert monkaa_generated(4, 1, SIZE).name == "monkaa_4x1_48x96_seed0"
    assert "style" not in monkaa_generated(4, 1, SIZE).settings


def test_synth_command_writes_things(tmp_path, capsys):
    out = tmp_path / "set"
    code = synth_main(
        ["monkaa", "--style", "things", "--scenes", "2", "--size", "32x64", "--out", str(out)]
    )
    assert code == 0
    assert "things-style scenes of 1 frames" in capsys.readouterr().out
    assert len(list_monkaa_samples(out)) == 2


def test_bad_arguments_name_the_setting(tmp_path):
    with pytest.raises(ValueError, match="style must be one of"):
        synthesize_monkaa(tmp_path, scenes=1, style="sky")
    with pytest.raises(ValueError, match="baseline do not apply to style 'things'"):
        synthesize_monkaa(tmp_path, scenes=1, style="things", baseline=0.1)
    with pytest.raises(ValueError, match="photos do not apply to style 'rooms'"):
        synthesize_monkaa(tmp_path, scenes=1, photos=False)
    with pytest.raises(ValueError, match="synth_style"):
        MonkaaDataModule(synth_scenes=1, synth_style="sky")
    with pytest.raises(ValueError, match="objects"):
        render_things(np.random.default_rng(0), SIZE, objects=(5, 2))
    with pytest.raises(ValueError, match="max_disparity"):
        things_frames(1, 1, SIZE, max_disparity=0)
    with pytest.raises(ValueError, match="workers"):
        things_frames(1, 1, SIZE, workers=0)
    assert not any(tmp_path.iterdir())  # nothing written by a refused request


RECIPE = Path(__file__).resolve().parents[2] / "configs" / "pretrain" / "anynet_spn8.yaml"


def test_pretrain_recipe_builds_on_things_data_with_augmentation(tmp_path):
    cli = build_cli(
        [
            "--config",
            str(RECIPE),
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        run=False,
    )
    dm = cli.datamodule
    assert dm.synth_style == "things" and dm.augment is not None
    assert dm.size == (256, 512) and dm.synth_size == (320, 640)  # crops of larger renders
    assert dm.generated().name == "monkaa_things_1000x1_320x640_seed0"
    # every generated disparity is below the loss's maxdisp, so none is masked out
    assert default_max_disparity(dm.synth_size[1]) < cli.model.maxdisp
    assert cli.trainer.max_epochs == 16


@pytest.mark.slow
def test_pretrain_recipe_trains_a_step_on_tiny_data(tmp_path):
    code = cli_main(
        [
            "fit",
            "--config",
            str(RECIPE),
            f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            f"--data.init_args.synth_dir={tmp_path / 'data'}",
            "--data.init_args.synth_scenes=3",
            "--data.init_args.synth_size=[64, 128]",
            "--data.init_args.size=[32, 64]",
            "--data.init_args.batch_size=2",
            "--data.init_args.val_fraction=0.34",
            "--trainer.max_steps=2",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert code in (0, None)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
