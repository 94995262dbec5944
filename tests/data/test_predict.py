import numpy as np
import pytest
import torch
from PIL import Image

from lightning_depth.data.predict import (
    MonoPredictDataModule,
    StereoPredictDataModule,
    list_images,
    list_stereo_pairs,
)
from lightning_depth.io.errors import DataError


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
