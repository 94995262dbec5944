"""``lightning_depth predict`` end to end with the prediction writer, on tiny checkpoints."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_depth.callbacks.writer import DepthPredictionWriter
from lightning_depth.cli import main
from lightning_depth.data.predict import (
    MonoPredictDataModule,
    StereoPairsDataset,
    StereoPredictDataModule,
    list_stereo_pairs,
)
from lightning_depth.io.errors import DataError
from lightning_depth.io.pfm import read_pfm
from lightning_depth.io.ply import read_ply
from lightning_depth.models.anynet import AnyNet
from lightning_depth.models.autoencoder import DepthAutoencoder
from lightning_depth.tasks.mono import MonoDepthModule
from lightning_depth.tasks.stereo import StereoDepthModule
from tests.helpers import demo_checkpoints

# ImageNet statistics written out here, not imported: the expectations below must not share
# the package's constants (a swapped mean/std there has to fail these tests).
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def _normalized(rgb: np.ndarray) -> torch.Tensor:
    """``uint8 (H, W, 3)`` -> ImageNet-normalised ``(1, 3, H, W)``, in numpy."""
    x = (rgb.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1)[None].copy())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    return demo_checkpoints(tmp_path_factory.mktemp("ckpt"))


def _image(path: Path, h: int, w: int, seed: int) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def _predict(config: str, ckpt: Path, inputs: str, out: Path, *extra: str) -> None:
    main(["predict", "--config", config, f"--ckpt_path={ckpt}", f"--data.init_args.inputs={inputs}",
          f"--trainer.callbacks.init_args.output_dir={out}", "--trainer.accelerator=cpu",
          f"--trainer.default_root_dir={out}",
          *extra])  # fmt: skip


@pytest.mark.slow
def test_mono_predict_writes_pictures_maps_and_clouds(checkpoints, tmp_path):
    rgb = _image(tmp_path / "in" / "a.png", 37, 50, 0)  # not a multiple of 4: padded
    _image(tmp_path / "in" / "b.png", 24, 20, 1)
    out = tmp_path / "out"
    _predict("configs/predict/mono.yaml", checkpoints["mono"], f"[{tmp_path / 'in'}]", out,
             "--trainer.callbacks.init_args.focal=40.0")  # fmt: skip
    color = np.asarray(Image.open(out / "a_color.png"))
    assert color.shape == (37, 50, 3) and color.dtype == np.uint8
    depth = np.load(out / "a.npy")
    assert depth.shape == (37, 50) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth > 0).all()  # exp(log-depth)
    cloud = read_ply(out / "a.ply")
    assert len(cloud["points"]) == depth.size  # every pixel of a mono map is valid
    np.testing.assert_allclose(cloud["points"][:, 2], depth.reshape(-1), rtol=1e-6)
    np.testing.assert_array_equal(cloud["colors"], rgb.reshape(-1, 3))
    # x = (u - cx) z / f with the given focal and the centred principal point.
    u = np.tile(np.arange(50), 37)
    np.testing.assert_allclose(cloud["points"][:, 0], (u - 24.5) * depth.reshape(-1) / 40.0,
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert np.load(out / "b.npy").shape == (24, 20)


@pytest.mark.slow
def test_stereo_predict_matches_the_model_and_counts_valid_points(checkpoints, tmp_path):
    from lightning_depth.tasks.stereo import StereoDepthModule

    rgb = {side: _image(tmp_path / "pairs" / side / "f0.png", 40, 70, seed)
           for side, seed in (("left", 0), ("right", 1))}  # fmt: skip
    out = tmp_path / "out"
    _predict("configs/predict/stereo.yaml", checkpoints["stereo"], f"[{tmp_path / 'pairs'}]", out,
             "--trainer.callbacks.init_args.stages=2", "--trainer.callbacks.init_args.focal=50",
             "--trainer.callbacks.init_args.baseline=0.2",
             "--trainer.callbacks.init_args.min_disparity=0.5")  # fmt: skip
    disparity, _ = read_pfm(out / "f0.pfm")
    assert disparity.shape == (40, 70)
    model = StereoDepthModule.load_from_checkpoint(checkpoints["stereo"], map_location="cpu").eval()
    item = StereoPairsDataset(list_stereo_pairs(str(tmp_path / "pairs")))[0]
    # The network's input is the image ImageNet-normalised (expectation built in numpy).
    np.testing.assert_allclose(item["left"][None].numpy(), _normalized(rgb["left"]).numpy(),
                               atol=1e-5, rtol=0)  # fmt: skip
    with torch.no_grad():
        expected = model(item["left"][None], item["right"][None], stages=2)[-1][0, 0].numpy()
    np.testing.assert_allclose(disparity, expected, rtol=1e-5, atol=1e-5)
    valid = disparity > 0.5
    cloud = read_ply(out / "f0.ply")
    assert len(cloud["points"]) == valid.sum()
    np.testing.assert_allclose(cloud["points"][:, 2], 50 * 0.2 / disparity[valid], rtol=1e-5)
    # The points carry the left image's own colours (de-normalised back exactly).
    np.testing.assert_array_equal(cloud["colors"], rgb["left"][valid])
    color = np.asarray(Image.open(out / "f0_color.png"))
    assert color.shape == (40, 70, 3) and (color[~valid] == 0).all()


@pytest.mark.slow
def test_checkpoint_of_the_other_task_is_refused(checkpoints, tmp_path):
    _image(tmp_path / "in" / "a.png", 16, 16, 0)
    with pytest.raises((DataError, ValueError), match="stereo.*configs/predict/stereo.yaml"):
        _predict("configs/predict/mono.yaml", checkpoints["stereo"], f"[{tmp_path / 'in'}]",
                 tmp_path / "out")  # fmt: skip


def test_writer_rejects_bad_options():
    with pytest.raises(ValueError, match="raw_format must be one of"):
        DepthPredictionWriter(raw_format="tiff")
    with pytest.raises(ValueError, match="colormap"):
        DepthPredictionWriter(cmap="no_such_map")


def test_writer_stereo_kitti_invalid_black_and_point_colours(tmp_path):
    from lightning_depth.io.kitti import read_kitti_disparity

    writer = DepthPredictionWriter(output_dir=str(tmp_path), raw_format="kitti", ply_binary=False)
    task = StereoDepthModule(net=AnyNet(spn_channels=2))
    disp = torch.full((1, 1, 4, 6), 3.0)
    disp[..., 0, :] = 0.0  # top row invalid
    rgb = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    batch = {"left": _normalized(rgb), "right": _normalized(rgb), "name": ["s"]}
    writer.write_batch(task, batch, {"map": disp, "name": ["s"]})
    values, valid = read_kitti_disparity(tmp_path / "s.png")
    assert valid.sum() == 18 and np.allclose(values[valid], 3.0)
    cloud = read_ply(tmp_path / "s.ply")
    assert len(cloud["points"]) == 18
    np.testing.assert_array_equal(cloud["colors"], rgb[1:].reshape(-1, 3))
    color = np.asarray(Image.open(tmp_path / "s_color.png"))
    assert (color[0] == 0).all() and (color[1:].sum(-1) > 0).all()


def test_writer_mono_depth_and_point_colours(tmp_path):
    writer = DepthPredictionWriter(output_dir=str(tmp_path), raw_format="npy")
    task = MonoDepthModule(net=DepthAutoencoder(depth=2))
    rgb = np.random.default_rng(1).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    image = torch.from_numpy(rgb.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    log_depth = torch.linspace(-1.0, 2.0, 48).reshape(2, 1, 4, 6)
    writer.write_batch(task, {"image": image}, {"map": log_depth.exp(), "name": None})
    for i, name in enumerate(["000000", "000001"]):
        depth = np.load(tmp_path / f"{name}.npy")
        np.testing.assert_allclose(depth, np.exp(log_depth[i, 0].numpy()), rtol=1e-6)
        cloud = read_ply(tmp_path / f"{name}.ply")
        np.testing.assert_array_equal(cloud["colors"], rgb[i].reshape(-1, 3))
        np.testing.assert_allclose(cloud["points"][:, 2], depth.reshape(-1), rtol=1e-6)


def test_writer_refuses_mismatches_before_predicting():
    writer = DepthPredictionWriter(raw_format="kitti")
    with pytest.raises(ValueError, match="raw_format='kitti' stores disparities.*predicts depth"):
        writer.check_map_kind(MonoDepthModule.map_kind)
    writer.check_map_kind(StereoDepthModule.map_kind)
    stereo = StereoDepthModule(net=AnyNet(spn_channels=2))
    with pytest.raises(DataError, match=r"stereo model .*\['left', 'right'\] .*\['image'\].*"
                                        r"configs/predict/stereo.yaml"):  # fmt: skip
        DepthPredictionWriter.check_inputs(stereo, MonoPredictDataModule(inputs=[]))
    DepthPredictionWriter.check_inputs(stereo, StereoPredictDataModule(inputs=[]))
    DepthPredictionWriter.check_inputs(stereo, object())  # a DataModule without input_keys
    with pytest.raises(ValueError, match="no stages"):
        MonoDepthModule(net=DepthAutoencoder(depth=2)).set_predict_stages(2)
