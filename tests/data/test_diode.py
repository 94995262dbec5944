from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import SequentialSampler

from lightning_depth.data.diode import (
    DIODEDataModule,
    DIODEDataset,
    list_diode_samples,
    load_diode_sample,
    synthesize_diode,
)
from lightning_depth.data.loaders import SeededShuffleSampler
from lightning_depth.data.splits import split_counts
from lightning_depth.data.transforms import resize_like_cv2
from lightning_depth.io.errors import DataError

SIZE = (32, 32)
N = 10


@pytest.fixture(scope="module")
def diode_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diode")
    synthesize_diode(root, n=N, size=(48, 64), seed=0)
    return root


@pytest.fixture
def sample(diode_root, tmp_path) -> tuple[Path, Path, Path]:
    """A private copy of one sample, free to corrupt."""
    files = list_diode_samples(diode_root)[0]
    return tuple(Path(shutil.copy(f, tmp_path / f.name)) for f in files)


def test_list_diode_samples_sorted_triples(diode_root):
    samples = list_diode_samples(diode_root)
    assert len(samples) == N
    assert samples == sorted(samples)
    for image, depth, mask in samples:
        stem = image.stem
        assert depth.name == f"{stem}_depth.npy" and mask.name == f"{stem}_depth_mask.npy"
    indoors = list_diode_samples(diode_root, scene_types=("indoors",))
    assert 0 < len(indoors) < N and all("indoors" in s[0].parts for s in indoors)


def test_load_sample_shapes_and_ranges(diode_root):
    for image_path, depth_path, mask_path in list_diode_samples(diode_root)[:4]:
        out = load_diode_sample(image_path, depth_path, mask_path, size=SIZE)
        assert out["image"].shape == (3, *SIZE) and out["image"].dtype == torch.float32
        assert out["target"].shape == (1, *SIZE) and out["target"].dtype == torch.float32
        assert out["mask"].shape == (1, *SIZE) and out["mask"].dtype == torch.bool
        assert 0 <= out["image"].min() and out["image"].max() <= 1
        depth = np.load(depth_path)
        max_depth = min(300, np.percentile(depth, 99))
        valid = out["target"][out["mask"]]
        assert valid.numel() > 0
        assert valid.min() >= 0.1 - 1e-6 and valid.max() <= np.log(max_depth) + 1e-5
        # The mask is the source mask sampled with cv2's nearest rule: invalid pixels stay out.
        source_mask = np.load(mask_path) > 0
        expected = resize_like_cv2(source_mask, SIZE, interpolation="nearest")
        assert torch.equal(out["mask"][0], torch.from_numpy(expected))
        assert not expected.all()


def _reference_load(cv2, image_path, depth_path, mask_path, size):
    """The Keras example's DataGenerator.load, with uninitialised log values set to 0.1."""
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, size[::-1]).astype(np.float32) * np.float32(1 / 255)
    depth = np.load(depth_path).squeeze()
    mask = np.load(mask_path) > 0
    max_depth = min(300, np.percentile(depth, 99))
    depth = np.clip(depth, 0.1, max_depth)
    out = np.full_like(depth, 0.1)
    depth = np.log(depth, where=mask, out=out)
    depth = np.ma.masked_where(~mask, depth)
    depth = np.clip(depth, 0.1, np.log(max_depth))
    depth = cv2.resize(np.asarray(depth), size[::-1]).astype(np.float32)
    return image, depth


@pytest.mark.parametrize("size", [(32, 32), (40, 56)])
def test_load_sample_matches_cv2_reference(diode_root, size):
    cv2 = pytest.importorskip("cv2")
    for files in list_diode_samples(diode_root)[:3]:
        ours = load_diode_sample(*files, size=size)
        image, depth = _reference_load(cv2, *files, size)
        assert torch.equal(ours["image"], torch.from_numpy(image).permute(2, 0, 1))
        np.testing.assert_allclose(ours["target"][0].numpy(), depth, atol=1e-5)


def test_far_depth_takes_the_300m_bound_as_the_reference(sample):
    cv2 = pytest.importorskip("cv2")
    image, depth_path, mask_path = sample
    depth = np.load(depth_path)
    depth[:4] = 500.0  # > 1% of pixels beyond 300 m: max_depth is the int 300 (float64 math)
    np.save(depth_path, depth)
    ours = load_diode_sample(image, depth_path, mask_path, size=SIZE)
    _, reference = _reference_load(cv2, image, depth_path, mask_path, SIZE)
    np.testing.assert_allclose(ours["target"][0].numpy(), reference, atol=1e-5)
    assert ours["target"].max() == pytest.approx(np.log(300), abs=1e-5)


def test_invalid_pixels_are_defined_as_lower_bound(sample):
    image, depth_path, mask_path = sample
    mask = np.zeros((48, 64), np.float32)
    mask[:, 32:] = 1
    np.save(mask_path, mask)
    out = load_diode_sample(image, depth_path, mask_path, size=(48, 64))
    assert torch.all(out["target"][0, :, :31] == np.float32(0.1))
    assert not out["mask"][0, :, :32].any() and out["mask"][0, :, 32:].all()


def test_dataset_items_and_names(diode_root):
    ds = DIODEDataset.from_root(diode_root, size=SIZE)
    assert len(ds) == N
    item = ds[0]
    assert set(item) == {"image", "target", "mask", "name"}
    assert item["name"] == list_diode_samples(diode_root)[0][0].stem


def test_hflip_flips_image_target_and_mask_together(diode_root):
    files = list_diode_samples(diode_root)[:1]
    plain = DIODEDataset(files, size=SIZE)[0]
    flipping = DIODEDataset(files, size=SIZE, hflip=True)
    flipped_seen = unflipped_seen = 0
    for _ in range(12):
        item = flipping[0]
        if torch.equal(item["image"], plain["image"]):
            unflipped_seen += 1
            assert torch.equal(item["target"], plain["target"])
            assert torch.equal(item["mask"], plain["mask"])
        else:
            flipped_seen += 1
            for key in ("image", "target", "mask"):
                assert torch.equal(item[key], plain[key].flip(-1)), key
    assert flipped_seen and unflipped_seen


def test_split_counts():
    assert split_counts(10, val_fraction=0.1, test_fraction=0.1) == [8, 1, 1]
    assert split_counts(3, 0.1, 0.1) == [1, 1, 1]
    assert split_counts(7, 0.5, 0.0) == [4, 3, 0]
    assert sum(split_counts(101, 0.2, 0.1)) == 101
    with pytest.raises(DataError, match="cannot split 2 samples into 3 non-empty parts"):
        split_counts(2, 0.1, 0.1)
    with pytest.raises(ValueError, match="must leave training data"):
        split_counts(10, 0.5, 0.5)


def test_datamodule_splits_are_disjoint_and_cover_all(diode_root):
    dm = DIODEDataModule(
        str(diode_root), size=SIZE, batch_size=3, val_fraction=0.2, test_fraction=0.2
    )
    dm.setup("fit")
    parts = [set(dm.train_samples), set(dm.val_samples), set(dm.test_samples)]
    assert [len(p) for p in parts] == [6, 2, 2]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set.union(*parts) == set(list_diode_samples(diode_root))
    again = DIODEDataModule(str(diode_root), size=SIZE, val_fraction=0.2, test_fraction=0.2)
    again.setup("fit")
    assert again.val_samples == dm.val_samples
    other = DIODEDataModule(str(diode_root), size=SIZE, val_fraction=0.2, test_fraction=0.2, seed=1)
    other.setup("fit")
    assert other.val_samples != dm.val_samples or other.test_samples != dm.test_samples


def test_datamodule_loaders(diode_root):
    dm = DIODEDataModule(str(diode_root), size=SIZE, batch_size=4, eval_batch_size=2, hflip=False)
    dm.setup("fit")
    train = dm.train_dataloader()
    assert isinstance(train.sampler, SeededShuffleSampler) and not train.drop_last
    assert train.sampler.seed == dm.seed
    assert isinstance(dm.val_dataloader().sampler, SequentialSampler)
    assert isinstance(dm.test_dataloader().sampler, SequentialSampler)
    assert not train.persistent_workers
    batch = next(iter(train))
    assert batch["image"].shape == (4, 3, *SIZE) and batch["target"].shape == (4, 1, *SIZE)
    assert batch["mask"].shape == (4, 1, *SIZE) and batch["mask"].dtype == torch.bool
    assert len(batch["name"]) == 4 and all(isinstance(n, str) for n in batch["name"])
    assert next(iter(dm.val_dataloader()))["image"].shape[0] == 1  # 10 * 0.1 = 1 sample
    assert sum(len(b["name"]) for b in train) == len(dm.train_samples)  # nothing dropped


def test_datamodule_generates_into_its_own_folder_once(tmp_path, caplog):
    caplog.set_level("INFO", logger="lightning_depth")
    folder = tmp_path / "generated"
    settings = dict(size=SIZE, synth_samples=4, synth_size=(30, 40), synth_dir=str(folder))
    dm = DIODEDataModule(val_fraction=0.25, test_fraction=0.25, **settings)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_samples) == 2 and len(dm.val_samples) == 1 and len(dm.test_samples) == 1
    assert dm.train_samples[0][0].is_relative_to(folder)
    assert f"generating 4 DIODE-layout samples (30x40, seed 0) into {folder}" in caplog.text
    stamp = dm.train_samples[0][0].stat().st_mtime_ns
    caplog.clear()
    DIODEDataModule(**settings).prepare_data()
    assert dm.train_samples[0][0].stat().st_mtime_ns == stamp  # not regenerated
    assert "generating" not in caplog.text


def test_generated_data_default_to_a_folder_per_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dm = DIODEDataModule(synth_samples=240, synth_size=(96, 128))
    assert dm.data_root == Path(".cache/lightning_depth/diode_240_96x128_seed0")
    other = DIODEDataModule(synth_samples=240, synth_size=(48, 64), synth_seed=1)
    assert other.data_root == Path(".cache/lightning_depth/diode_240_48x64_seed1")
    train = DIODEDataModule(synth_samples=8, splits=("train",), scene_types=("indoors",))
    assert train.data_root.name == "diode_8_192x256_seed0_train_indoors"
    with pytest.raises(ValueError, match="has no data: pass root="):
        DIODEDataModule().setup("fit")


def test_photo_style_generates_its_own_set_with_the_same_depths(tmp_path):
    settings = dict(size=SIZE, synth_samples=2, synth_size=(30, 40))
    plain = DIODEDataModule(synth_dir=str(tmp_path / "p"), **settings)
    photo = DIODEDataModule(synth_dir=str(tmp_path / "f"), synth_style="photo", **settings)
    assert DIODEDataModule(**settings, synth_style="photo").data_root.name.endswith("_photo")
    for dm in (plain, photo):
        dm.prepare_data()
    first = [sorted(dm.data_root.rglob("*.png"))[0] for dm in (plain, photo)]
    depths = [np.load(str(p).replace(".png", "_depth.npy"))[..., 0] for p in first]
    masks = [np.load(str(p).replace(".png", "_depth_mask.npy")) > 0 for p in first]
    both = masks[0] & masks[1]  # (the sensor's dropouts depend on the surfaces' colours)
    assert both.mean() > 0.5
    np.testing.assert_array_equal(depths[0][both], depths[1][both])  # same geometry ...
    images = [np.asarray(Image.open(p)) for p in first]
    assert np.abs(images[0].astype(int) - images[1].astype(int)).mean() > 5  # ... new surfaces
    with pytest.raises(ValueError, match="synth_style must be one of"):
        DIODEDataModule(synth_samples=2, synth_style="oil")


def test_a_users_root_is_only_read(tmp_path, caplog, monkeypatch):
    """The demo's generation settings with a user's root whose samples lie under another
    split: an error naming the patterns searched, and the folder as it was."""
    monkeypatch.chdir(tmp_path)  # where the default generated folder would go
    caplog.set_level("INFO", logger="lightning_depth")
    root = tmp_path / "mine"
    synthesize_diode(root, n=4, size=(12, 16), split="train")
    before = sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("*"))
    dm = DIODEDataModule(str(root), synth_samples=240, synth_size=(96, 128), size=SIZE)
    searched = re.escape(f"searched {root}/val/indoors/scene_*/scan_*/*.png, {root}/val/outdoor/")
    with pytest.raises(
        DataError, match=rf"DIODE root {re.escape(str(root))} holds no samples: {searched}"
    ):
        dm.prepare_data()
        dm.setup("fit")
    assert sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("*")) == before
    assert f"root {root} is given: it is only read, and the synth_* settings" in caplog.text
    assert not (tmp_path / ".cache").exists()


def test_synth_dir_holding_other_files_is_refused(tmp_path):
    folder = tmp_path / "not_empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    dm = DIODEDataModule(synth_samples=4, synth_size=(30, 40), synth_dir=str(folder))
    with pytest.raises(
        DataError, match=r"synth_dir .*not_empty holds notes.txt and no lightning_depth_synth.json"
    ):
        dm.prepare_data()
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    DIODEDataModule(
        synth_samples=4, synth_size=(30, 40), synth_dir=str(tmp_path / "g")
    ).prepare_data()
    other = DIODEDataModule(synth_samples=5, synth_size=(30, 40), synth_dir=str(tmp_path / "g"))
    with pytest.raises(DataError, match=r"holds a generated set with other settings .*\"n\": 4"):
        other.prepare_data()
    assert len(list_diode_samples(tmp_path / "g")) == 4


def test_datamodule_too_few_samples(tmp_path):
    synthesize_diode(tmp_path, n=2, size=(12, 16))
    with pytest.raises(DataError, match="cannot split 2 samples into 3 non-empty parts"):
        DIODEDataModule(str(tmp_path)).setup("fit")


# -- bad inputs ----------------------------------------------------------------------------


def test_empty_root_names_path_and_layout(tmp_path):
    with pytest.raises(
        DataError,
        match=r"DIODE root .* holds no samples: searched .*val.indoors.*expected the layout <root>/<split>/",
    ):
        list_diode_samples(tmp_path)
    with pytest.raises(DataError, match=r"missing.* does not exist"):
        DIODEDataModule(str(tmp_path / "missing")).setup("fit")


def test_missing_mask_file_is_named(diode_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(diode_root, root)
    image, _, mask = list_diode_samples(root)[3]
    mask.unlink()
    with pytest.raises(
        DataError, match=re.escape(f"missing depth mask file {mask} for image {image}")
    ):
        list_diode_samples(root)


def test_corrupt_png(sample):
    image, depth, mask = sample
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=re.escape(f"image {image} is corrupt or truncated")):
        load_diode_sample(image, depth, mask, size=SIZE)


def test_depth_mask_shape_mismatch(sample):
    image, depth, mask = sample
    np.save(mask, np.ones((47, 64), np.float32))
    with pytest.raises(
        DataError,
        match=re.escape(f"depth mask file {mask} is 47x64 but depth file {depth} is 48x64"),
    ):
        load_diode_sample(image, depth, mask, size=SIZE)


def test_image_depth_shape_mismatch(sample):
    image, depth, mask = sample
    np.save(depth, np.ones((48, 60, 1), np.float32))
    np.save(mask, np.ones((48, 60), np.float32))
    with pytest.raises(
        DataError, match=re.escape(f"image {image} is 48x64 but depth file {depth} is 48x60")
    ):
        load_diode_sample(image, depth, mask, size=SIZE)


def test_nan_depth(sample):
    image, depth, mask = sample
    values = np.load(depth)
    values[3, 4, 0] = np.nan
    np.save(depth, values)
    with pytest.raises(
        DataError, match=re.escape(f"depth file {depth} holds 1 NaN and 0 inf values")
    ):
        load_diode_sample(image, depth, mask, size=SIZE)


def test_negative_depth(sample):
    image, depth, mask = sample
    values = np.load(depth)
    values[0, 0, 0] = -2
    np.save(depth, values)
    with pytest.raises(DataError, match=re.escape(f"depth file {depth} holds 1 negative values")):
        load_diode_sample(image, depth, mask, size=SIZE)


def test_wrong_depth_shape(sample):
    image, depth, mask = sample
    np.save(depth, np.ones((48, 64, 3), np.float32))
    with pytest.raises(DataError, match=r"has shape \(48, 64, 3\); expected \(H, W, 1\)"):
        load_diode_sample(image, depth, mask, size=SIZE)


def test_all_zero_depth(sample):
    image, depth, mask = sample
    np.save(depth, np.zeros((48, 64, 1), np.float32))
    with pytest.raises(
        DataError, match=re.escape(f"depth file {depth}: over 99% of pixels have depth 0")
    ):
        load_diode_sample(image, depth, mask, size=SIZE)
