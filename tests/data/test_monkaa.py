"""Monkaa: generated layout, disparity consistency, dataset transforms, splits, bad inputs."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lightning_depth.data.monkaa import (
    MonkaaDataModule,
    MonkaaDataset,
    list_monkaa_samples,
    scene_of,
    synthesize_monkaa,
)
from lightning_depth.data.splits import split_samples
from lightning_depth.io.errors import DataError
from lightning_depth.io.pfm import read_pfm, write_pfm

SIZE = (40, 72)  # (H, W): not a multiple of 16, so eval crop and pad both change the size
# ImageNet statistics, written out here so the expectation does not come from the package
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def monkaa(tmp_path_factory):
    root = tmp_path_factory.mktemp("monkaa")
    synthesize_monkaa(root, scenes=2, frames=3, size=SIZE, seed=0)
    return root


def _fresh(tmp_path, scenes=1, frames=2, size=(32, 64)):
    synthesize_monkaa(tmp_path, scenes=scenes, frames=frames, size=size, seed=1)
    return list_monkaa_samples(tmp_path)


# -- generator -------------------------------------------------------------------------------


def test_generated_layout_names_and_dtypes(monkaa):
    samples = list_monkaa_samples(monkaa)
    assert len(samples) == 6
    assert samples == sorted(samples)
    scenes = sorted(p.name for p in (monkaa / "frames_cleanpass").iterdir())
    assert scenes == sorted(p.name for p in (monkaa / "disparity").iterdir())
    assert len(scenes) == 2
    for scene in scenes:
        assert re.fullmatch(r"[a-z0-9_]+_x2", scene)
        for side in ("left", "right"):
            pngs = sorted(p.name for p in (monkaa / "frames_cleanpass" / scene / side).iterdir())
            assert pngs == ["0000.png", "0001.png", "0002.png"]
            pfms = sorted(p.name for p in (monkaa / "disparity" / scene / side).iterdir())
            assert pfms == ["0000.pfm", "0001.pfm", "0002.pfm"]
    left, right, disp = samples[0]
    assert left.relative_to(monkaa).as_posix() == f"frames_cleanpass/{scenes[0]}/left/0000.png"
    assert right.relative_to(monkaa).as_posix() == f"frames_cleanpass/{scenes[0]}/right/0000.png"
    assert disp.relative_to(monkaa).as_posix() == f"disparity/{scenes[0]}/left/0000.pfm"
    for path in (left, right):
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", SIZE[::-1])
    # Pf, little-endian (negative scale) as SceneFlow's files.
    assert disp.read_bytes().startswith(b"Pf\n72 40\n-1.0\n")
    d, scale = read_pfm(disp)
    assert d.dtype == np.float32 and d.shape == (40, 72) and scale == 1.0


def test_generator_returns_left_paths_and_is_deterministic(tmp_path):
    a = synthesize_monkaa(tmp_path / "a", scenes=2, frames=2, size=(16, 32), seed=3)
    b = synthesize_monkaa(tmp_path / "b", scenes=2, frames=2, size=(16, 32), seed=3)
    c = synthesize_monkaa(tmp_path / "c", scenes=2, frames=2, size=(16, 32), seed=4)
    assert a == [s[0] for s in list_monkaa_samples(tmp_path / "a")]
    for x, y, z in zip(a, b, c):
        assert x.read_bytes() == y.read_bytes()
        assert x.read_bytes() != z.read_bytes()


def test_disparity_range(monkaa, tmp_path):
    for _, _, disp in list_monkaa_samples(monkaa):
        d, _ = read_pfm(disp)
        # Dense and positive, at most max_disparity (default W / 4), and not degenerate.
        assert d.min() > 0
        assert d.max() <= SIZE[1] / 4
        assert d.max() >= 0.45 * SIZE[1] / 4
    # An oversized explicit baseline is capped at max_disparity.
    synthesize_monkaa(tmp_path, scenes=1, frames=2, size=(32, 64), baseline=100.0, max_disparity=5)
    for _, _, disp in list_monkaa_samples(tmp_path):
        assert read_pfm(disp)[0].max() <= 5.0 + 1e-4


def test_frames_of_a_scene_move_slightly(monkaa):
    (l0, _, d0), (l1, _, d1) = list_monkaa_samples(monkaa)[:2]
    a = np.asarray(Image.open(l0), dtype=np.float32)
    b = np.asarray(Image.open(l1), dtype=np.float32)
    other = np.asarray(Image.open(list_monkaa_samples(monkaa)[3][0]), dtype=np.float32)
    assert 0 < np.abs(a - b).mean() < np.abs(a - other).mean()
    assert read_pfm(d1)[0].mean() > read_pfm(d0)[0].mean()  # zooming in grows disparity


def _warp(right: torch.Tensor, disp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``right`` (H, W, 3) at ``x - disp`` (a rectified pair: left(x) = right(x - d))."""
    h, w = disp.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    src_x = xs - disp
    grid = torch.stack([2 * src_x / (w - 1) - 1, 2 * ys / (h - 1) - 1], -1)[None].float()
    out = F.grid_sample(right.permute(2, 0, 1)[None], grid, align_corners=True)
    return out[0].permute(1, 2, 0), src_x >= 0


def test_warping_right_by_gt_disparity_gives_left(tmp_path):
    samples = _fresh(tmp_path, scenes=2, frames=1, size=(64, 128))
    for left_path, right_path, disp_path in samples:
        left = torch.from_numpy(np.asarray(Image.open(left_path), dtype=np.float32))
        right = torch.from_numpy(np.asarray(Image.open(right_path), dtype=np.float32))
        disp = torch.from_numpy(read_pfm(disp_path)[0])
        warped, inside = _warp(right, disp)
        good = ((warped - left).abs().amax(-1) < 10)[inside].float().mean()
        assert good > 0.85  # the rest: occlusions and texture aliasing
        # A wrong disparity (here: none) does far worse, so the check has teeth.
        unwarped, _ = _warp(right, torch.zeros_like(disp))
        assert ((unwarped - left).abs().amax(-1) < 10).float().mean() < 0.6


# -- listing ---------------------------------------------------------------------------------


def test_missing_right_image_names_file(tmp_path):
    samples = _fresh(tmp_path)
    samples[1][1].unlink()
    with pytest.raises(DataError, match="missing right image") as info:
        list_monkaa_samples(tmp_path)
    assert str(samples[1][1]) in str(info.value)


def test_missing_disparity_names_file(tmp_path):
    samples = _fresh(tmp_path)
    samples[0][2].unlink()
    with pytest.raises(DataError, match="missing disparity") as info:
        list_monkaa_samples(tmp_path)
    assert str(samples[0][2]) in str(info.value)


def test_empty_or_absent_root_names_path_and_layout(tmp_path):
    with pytest.raises(DataError, match="holds no Monkaa left images") as info:
        list_monkaa_samples(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "frames_cleanpass/<scene>/{left,right}/NNNN.png" in str(info.value)
    with pytest.raises(DataError, match="does not exist"):
        list_monkaa_samples(tmp_path / "nowhere")


# -- dataset ---------------------------------------------------------------------------------


def _normalised(path, top, left, h, w):
    rgb = np.asarray(Image.open(path), dtype=np.float32)[top : top + h, left : left + w] / 255
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    return torch.from_numpy(((rgb - mean) / std).transpose(2, 0, 1)).float()


def test_eval_centre_crop_and_normalisation(monkaa):
    samples = list_monkaa_samples(monkaa)
    item = MonkaaDataset(samples, eval_mode="crop")[4]
    # 40x72 -> 32x64, centred: offsets (4, 4)
    assert item["left"].shape == item["right"].shape == (3, 32, 64)
    assert item["disparity"].shape == (1, 32, 64)
    assert item["left"].dtype == item["disparity"].dtype == torch.float32
    left, right, disp = samples[4]
    torch.testing.assert_close(item["left"], _normalised(left, 4, 4, 32, 64))
    torch.testing.assert_close(item["right"], _normalised(right, 4, 4, 32, 64))
    torch.testing.assert_close(
        item["disparity"][0], torch.from_numpy(read_pfm(disp)[0][4:36, 4:68])
    )
    assert item["name"] == f"{scene_of(samples[4])}/0001"


def test_eval_pad_marks_padding_invalid(monkaa):
    samples = list_monkaa_samples(monkaa)
    item = MonkaaDataset(samples, eval_mode="pad")[0]
    assert item["left"].shape == (3, 48, 80) and item["disparity"].shape == (1, 48, 80)
    torch.testing.assert_close(item["left"][:, :40, :72], _normalised(samples[0][0], 0, 0, 40, 72))
    assert (item["disparity"][:, 40:] == 0).all() and (item["disparity"][:, :, 72:] == 0).all()
    assert (item["left"][:, 40:] == 0).all() and (item["right"][:, :, 72:] == 0).all()
    assert (item["disparity"][:, :40, :72] > 0).all()
    explicit = MonkaaDataset(samples, eval_mode="pad", eval_size=(64, 96))[0]
    assert explicit["left"].shape == (3, 64, 96)


def test_training_random_crop_follows_torch_seed(monkaa):
    samples = list_monkaa_samples(monkaa)
    ds = MonkaaDataset(samples, training=True, size=(16, 32))
    torch.manual_seed(7)
    a = [ds[0] for _ in range(4)]
    torch.manual_seed(7)
    b = [ds[0] for _ in range(4)]
    assert all(x["left"].shape == (3, 16, 32) and x["disparity"].shape == (1, 16, 32) for x in a)
    assert all(torch.equal(x["left"], y["left"]) for x, y in zip(a, b))
    assert len({x["left"].sum().item() for x in a}) > 1  # the crop moves
    # left, right and disparity share the crop window
    full = MonkaaDataset(samples, eval_mode="pad")[0]
    x = a[0]
    hits = [
        (i, j)
        for i in range(40 - 16 + 1)
        for j in range(72 - 32 + 1)
        if torch.equal(full["left"][:, i : i + 16, j : j + 32], x["left"])
    ]
    assert len(hits) == 1
    i, j = hits[0]
    assert torch.equal(full["right"][:, i : i + 16, j : j + 32], x["right"])
    assert torch.equal(full["disparity"][:, i : i + 16, j : j + 32], x["disparity"])


def test_left_right_size_mismatch_names_both(tmp_path):
    samples = _fresh(tmp_path)
    left, right, _ = samples[0]
    Image.fromarray(np.zeros((32, 60, 3), np.uint8)).save(right)
    with pytest.raises(DataError, match="left image .* is 32x64 but right image .* is 32x60") as e:
        MonkaaDataset(samples)[0]
    assert str(left) in str(e.value) and str(right) in str(e.value)


def test_disparity_size_mismatch_names_both(tmp_path):
    samples = _fresh(tmp_path)
    left, _, disp = samples[0]
    write_pfm(disp, np.ones((16, 64), np.float32))
    with pytest.raises(DataError, match="is 16x64 but left image") as e:
        MonkaaDataset(samples)[0]
    assert str(disp) in str(e.value) and str(left) in str(e.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_disparity_names_file(tmp_path, bad):
    samples = _fresh(tmp_path)
    disp = samples[1][2]
    d, _ = read_pfm(disp)
    d[3, 5] = bad
    write_pfm(disp, d)
    with pytest.raises(DataError, match="non-finite") as e:
        MonkaaDataset(samples)[1]
    assert str(disp) in str(e.value)


def test_bad_pfm_header_and_truncated_data_name_file(tmp_path):
    samples = _fresh(tmp_path)
    disp = samples[0][2]
    data = disp.read_bytes()
    disp.write_bytes(data.replace(b"Pf\n", b"PX\n", 1))
    with pytest.raises(DataError, match="magic") as e:
        MonkaaDataset(samples)[0]
    assert str(disp) in str(e.value)
    disp.write_bytes(data[:-100])
    with pytest.raises(DataError, match="truncated") as e:
        MonkaaDataset(samples)[0]
    assert str(disp) in str(e.value)


def test_dataset_rejects_bad_arguments():
    with pytest.raises(ValueError, match="eval_mode"):
        MonkaaDataset([], eval_mode="resize")
    with pytest.raises(ValueError, match="multiples of 16"):
        MonkaaDataset([], eval_size=(30, 64))


# -- splits and DataModule -------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("monkaa_many")
    synthesize_monkaa(root, scenes=5, frames=4, size=(16, 32), seed=2)
    return root


def test_frame_split_disjoint_and_seeded(many_scenes):
    samples = list_monkaa_samples(many_scenes)
    train, val, test = split_samples(samples, val_fraction=0.2, test_fraction=0.1, seed=0)
    assert (len(train), len(val), len(test)) == (14, 4, 2)
    assert sorted(train + val + test) == samples
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert split_samples(samples, 0.2, 0.1, seed=0) == (train, val, test)
    assert split_samples(samples, 0.2, 0.1, seed=1)[1] != val


def test_scene_split_keeps_scenes_together(many_scenes):
    samples = list_monkaa_samples(many_scenes)
    train, val, test = split_samples(samples, 0.2, 0.2, seed=0, group_by=scene_of, unit="scene")
    scenes = [{scene_of(s) for s in split} for split in (train, val, test)]
    assert [len(s) for s in scenes] == [3, 1, 1]
    assert not scenes[0] & scenes[1] and not scenes[0] & scenes[2] and not scenes[1] & scenes[2]
    assert sorted(train + val + test) == samples
    with pytest.raises(ValueError, match="5 scenes are too few"):
        split_samples(samples, 0.7, 0.2, group_by=scene_of, unit="scene")


def test_datamodule_synthesizes_splits_and_loads(tmp_path):
    root = tmp_path / "generated"
    dm = MonkaaDataModule(
        synth_dir=str(root),
        val_fraction=0.25,
        split_by="scene",
        size=(16, 32),
        batch_size=2,
        synth_scenes=4,
        synth_frames=2,
        synth_size=(40, 72),
    )
    dm.prepare_data()
    assert len(list_monkaa_samples(root)) == 8
    dm.setup("fit")
    assert {scene_of(s) for s in dm.train_samples}.isdisjoint(scene_of(s) for s in dm.val_samples)
    assert dm.test_set.samples == dm.val_set.samples  # test_fraction=0: test uses val

    loader = dm.train_dataloader()
    assert loader.persistent_workers is False and loader.batch_size == 2
    batch = next(iter(loader))
    assert batch["left"].shape == batch["right"].shape == (2, 3, 16, 32)
    assert batch["disparity"].shape == (2, 1, 16, 32)
    assert len(batch["name"]) == 2 and all("/" in n for n in batch["name"])
    val = next(iter(dm.val_dataloader()))
    assert val["left"].shape == (2, 3, 32, 64)

    # Data are generated once; a root is only read, whatever the synth settings.
    before = (root / "frames_cleanpass").stat().st_mtime_ns
    again = dict(synth_scenes=4, synth_frames=2, synth_size=(40, 72))
    MonkaaDataModule(synth_dir=str(root), **again).prepare_data()
    MonkaaDataModule(str(root), synth_scenes=9, synth_size=(40, 72)).prepare_data()
    assert len(list_monkaa_samples(root)) == 8
    assert (root / "frames_cleanpass").stat().st_mtime_ns == before
    assert MonkaaDataModule(**again).data_root.name == "monkaa_4x2_40x72_seed0"


def test_datamodule_test_split_and_pad(many_scenes):
    dm = MonkaaDataModule(
        str(many_scenes), val_fraction=0.2, test_fraction=0.2, size=(16, 32), eval_mode="pad"
    )
    dm.setup()
    sets = [set(dm.train_samples), set(dm.val_samples), set(dm.test_samples)]
    assert [len(s) for s in sets] == [12, 4, 4]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert dm.test_dataloader().dataset.samples == dm.test_samples
    assert dm.test_set[0]["left"].shape == (3, 16, 32)


def test_datamodule_rejects_crop_larger_than_images(many_scenes):
    dm = MonkaaDataModule(str(many_scenes))  # default 256x512 crop, 16x32 images
    with pytest.raises(ValueError, match=r"size 256x512 .* larger than the 16x32"):
        dm.setup("fit")


def test_datamodule_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="split_by"):
        MonkaaDataModule(str(tmp_path), split_by="video")
    with pytest.raises(ValueError, match="leave training data"):
        MonkaaDataModule(str(tmp_path), val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(DataError, match="does not exist"):
        MonkaaDataModule(str(tmp_path / "none")).setup()
