import numpy as np
import pytest
import torch
from PIL import Image

from lightning_depth.data.diode import DIODEDataModule, synthesize_diode
from lightning_depth.data.monkaa import MonkaaDataModule, synthesize_monkaa
from lightning_depth.data.predict import (
    MonoPredictDataModule,
    StereoPredictDataModule,
    list_images,
    list_stereo_pairs,
)
from lightning_depth.io.errors import DataError

# ImageNet statistics written out here, so that expectations do not come from the package.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
# to_unit scales by float32(1/255), which differs from x / 255 in the last float32 bit.
ATOL = 1e-6


def _image(path, h=20, w=30, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def test_list_images_folders_and_files(tmp_path):
    _image(tmp_path / "d" / "a.png")
    _image(tmp_path / "d" / "sub" / "b.jpg")
    (tmp_path / "d" / "notes.txt").write_text("x")
    _image(tmp_path / "c.png")
    found = list_images([str(tmp_path / "d"), str(tmp_path / "c.png")])
    assert [n for _, n in found] == ["a", "sub/b", "c"]
    with pytest.raises(DataError, match="missing.png does not exist"):
        list_images([str(tmp_path / "missing.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty holds no images"):
        list_images(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="'c'"):
        list_images([str(tmp_path / "c.png"), str(tmp_path / "c.png")])


def test_mono_datamodule_batches(tmp_path):
    rgb = _image(tmp_path / "a.png", 21, 35)
    dm = MonoPredictDataModule(inputs=[str(tmp_path / "a.png")])
    batch = next(iter(dm.predict_dataloader()))
    assert batch["image"].shape == (1, 3, 21, 35) and batch["name"] == ["a"]
    torch.testing.assert_close(batch["image"][0, :, 3, 4], torch.tensor(rgb[3, 4] / 255.0).float())
    dm = MonoPredictDataModule(inputs=str(tmp_path), size=(16, 32))
    assert next(iter(dm.predict_dataloader()))["image"].shape == (1, 3, 16, 32)


def test_stereo_pairs_folder_and_explicit(tmp_path):
    for side in ("left", "right"):
        _image(tmp_path / "s" / side / "0001.png", seed=1)
        _image(tmp_path / "s" / side / "0002.png", seed=2)
    _image(tmp_path / "l.png", seed=3)
    _image(tmp_path / "r.png", seed=4)
    pairs = list_stereo_pairs(
        [str(tmp_path / "s"), [str(tmp_path / "l.png"), str(tmp_path / "r.png")]]
    )
    assert [n for _, _, n in pairs] == ["0001", "0002", "l"]
    one = list_stereo_pairs([str(tmp_path / "l.png"), str(tmp_path / "r.png")])
    assert len(one) == 1 and one[0][1].name == "r.png"
    dm = StereoPredictDataModule(inputs=str(tmp_path / "s"))
    batch = next(iter(dm.predict_dataloader()))
    assert batch["left"].shape == batch["right"].shape == (1, 3, 20, 30)
    # ImageNet-normalised like the training data: a mid-grey-ish range around 0.
    assert batch["left"].min() < -1.5 and batch["left"].max() > 2.0


def test_stereo_errors(tmp_path):
    _image(tmp_path / "s" / "left" / "0001.png")
    with pytest.raises(DataError, match="has no right/ subfolder"):
        list_stereo_pairs(str(tmp_path / "s"))
    (tmp_path / "s" / "right").mkdir()
    with pytest.raises(DataError, match=r"0001.png has no right image: .*right/0001.png"):
        list_stereo_pairs(str(tmp_path / "s"))
    with pytest.raises(DataError, match="right image .*nope.png does not exist"):
        list_stereo_pairs([[str(tmp_path / "s" / "left" / "0001.png"), str(tmp_path / "nope.png")]])
    _image(tmp_path / "s" / "right" / "0001.png", h=10)
    dm = StereoPredictDataModule(inputs=str(tmp_path / "s"))
    with pytest.raises(DataError, match="right image .* they must match"):
        next(iter(dm.predict_dataloader()))


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    dm = MonoPredictDataModule(inputs=str(tmp_path / "broken.png"))
    with pytest.raises(DataError, match="broken.png"):
        next(iter(dm.predict_dataloader()))


# -- predict feeds the network what training feeds it --------------------------------------


def _rgb(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float()


def _training_items(dm) -> dict[str, dict]:
    dm.setup("fit")
    items = {}
    for dataset, samples in (
        (dm.train_set, dm.train_samples),
        (dm.val_set, dm.val_samples),
        (dm.test_set, dm.test_samples),
    ):
        for i, sample in enumerate(samples):
            items[str(sample[0])] = dataset[i]
    return items


@pytest.mark.parametrize("source_hw", [(32, 48), (48, 64)], ids=["at-size", "resized"])
def test_mono_predict_gets_the_training_input(tmp_path, source_hw):
    cv2 = pytest.importorskip("cv2")
    size = (32, 48)
    synthesize_diode(tmp_path / "diode", n=3, size=source_hw, seed=0)
    dm = DIODEDataModule(
        str(tmp_path / "diode"), size=size, hflip=False, val_fraction=0.34, test_fraction=0.33
    )
    training = _training_items(dm)
    assert len(training) == 3
    for path, item in training.items():
        batch = next(iter(MonoPredictDataModule(inputs=path, size=size).predict_dataloader()))
        assert batch["image"].shape == (1, 3, *size)
        assert torch.equal(batch["image"][0], item["image"])
        # built without the package: OpenCV's bilinear resize, then / 255
        rgb = _rgb(path)
        if rgb.shape[:2] != size:
            rgb = cv2.resize(rgb, size[::-1], interpolation=cv2.INTER_LINEAR)
        expected = _chw(rgb.astype(np.float64) / 255)
        torch.testing.assert_close(batch["image"][0], expected, rtol=0, atol=ATOL)
        if source_hw == size:  # at its own size, predict needs no size at all
            own = next(iter(MonoPredictDataModule(inputs=path).predict_dataloader()))
            assert torch.equal(own["image"][0], item["image"])


def test_stereo_predict_gets_the_training_input(tmp_path):
    # 32x64 is a multiple of 16: evaluation's centre crop keeps the whole pair
    synthesize_monkaa(tmp_path / "monkaa", scenes=1, frames=3, size=(32, 64), seed=0)
    dm = MonkaaDataModule(str(tmp_path / "monkaa"), size=(16, 32), val_fraction=0.34)
    dm.setup("fit")
    assert len(dm.val_samples) == 1
    for i, (left, right, _) in enumerate(dm.val_samples):
        item = dm.val_set[i]
        pairs = [[str(left), str(right)]]
        batch = next(iter(StereoPredictDataModule(inputs=pairs).predict_dataloader()))
        for side, path in (("left", left), ("right", right)):
            assert batch[side].shape == (1, 3, 32, 64)
            assert torch.equal(batch[side][0], item[side]), side
            # built without the package: (x / 255 - mean) / std with the literal statistics
            expected = _chw((_rgb(path) / 255 - IMAGENET_MEAN) / IMAGENET_STD)
            torch.testing.assert_close(batch[side][0], expected, rtol=0, atol=ATOL)
