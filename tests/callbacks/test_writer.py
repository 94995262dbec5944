"""``lightning_depth predict`` end to end with the prediction writer, on tiny checkpoints."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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

# ImageNet statistics written out here, not imported: the expectations below must not share
# the package's constants (a swapped mean/std there has to fail these tests).
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def _normalized(rgb: np.ndarray) -> torch.Tensor:
    """``uint8 (H, W, 3)`` -> ImageNet-normalised ``(1, 3, H, W)``, in numpy."""
    x = (rgb.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1)[None].copy())


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
    assert color.dtype == np.uint8 and color.shape[0] > 37  # the map, then its colour bar
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
    color = np.asarray(Image.open(out / "f0_color.png"))[:40, :70]  # the map above its bar
    assert (color[~valid] == 0).all()


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
    color = np.asarray(Image.open(tmp_path / "s_color.png"))[:4, :6]  # the map above its bar
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


def test_writer_refuses_a_map_with_nan_and_writes_nothing_of_its_batch(tmp_path):
    writer = DepthPredictionWriter(output_dir=str(tmp_path), raw_format="npy")
    task = MonoDepthModule(net=DepthAutoencoder(depth=2))
    image = torch.rand(2, 3, 4, 6)
    depth = torch.ones(2, 1, 4, 6)
    depth[1, 0, 2, 3] = float("nan")
    depth[1, 0, 0, 0] = float("inf")
    with pytest.raises(
        ValueError, match=r"depth map for 'b' has 2 NaN or infinite values \(of 24\)"
    ):
        writer.write_batch(task, {"image": image}, {"map": depth, "name": ["a", "b"]})
    assert list(tmp_path.iterdir()) == []


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


# -- size: the map comes at the input's size --------------------------------------------------


def _by_hand(net: torch.nn.Module, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Depth of ``rgb`` resized to ``size``, the network, the log-depth resized back (torch)."""
    x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    small = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        log_depth = net(small)
    back = F.interpolate(log_depth, size=rgb.shape[:2], mode="bilinear", align_corners=False)
    return back.exp()[0, 0].numpy()


@pytest.mark.slow
def test_mono_predict_at_the_training_size_and_in_tiles(checkpoints, tmp_path, capsys):
    ckpt = checkpoints["mono"]
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["task"]["train_size"] == [
        32,
        32,
    ]
    small = _image(tmp_path / "in" / "small.png", 37, 53, 3)
    big = _image(tmp_path / "in" / "big.png", 64, 64, 4)  # twice the training size
    capsys.readouterr()
    _predict("configs/predict/mono.yaml", ckpt, f"[{tmp_path / 'in'}]", tmp_path / "train")
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("predict:")]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"predict: wrote 2 depth maps (color png, npy, ply) from "
                               f"{tmp_path / 'in'} to {tmp_path / 'train'}; resolution: train "
                               f"32x32")  # fmt: skip
    assert "camera: default (f=0.8*width" in lines[0]
    net = MonoDepthModule.load_from_checkpoint(ckpt, map_location="cpu").net.eval()
    depth = np.load(tmp_path / "train" / "small.npy")
    assert depth.shape == (37, 53)  # the input's size, not the training size
    np.testing.assert_allclose(depth, _by_hand(net, small, (32, 32)), rtol=1e-5)
    train_big = np.load(tmp_path / "train" / "big.npy")

    _predict("configs/predict/mono.yaml", ckpt, f"[{tmp_path / 'in'}]", tmp_path / "tiles",
             "--trainer.callbacks.init_args.resolution=tiles")  # fmt: skip
    assert "resolution: tiles of 32x32" in capsys.readouterr().out
    tiles = np.load(tmp_path / "tiles" / "big.npy")
    assert tiles.shape == (64, 64) and np.load(tmp_path / "tiles" / "small.npy").shape == (37, 53)
    assert np.abs(np.log(tiles / train_big)).max() > 1e-2  # not the squashed whole image
    # 32-pixel tiles at rows/columns 0, 16, 32: the corners are one tile's own
    x = torch.from_numpy(big.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        first = net(x[..., :32, :32]).exp()[0, 0].numpy()
        last = net(x[..., 32:, 32:]).exp()[0, 0].numpy()
    np.testing.assert_allclose(tiles[:16, :16], first[:16, :16], rtol=1e-5)
    np.testing.assert_allclose(tiles[48:, 48:], last[16:, 16:], rtol=1e-5)


# -- geometry: the full camera ----------------------------------------------------------------

# scikit-image's Motorcycle pair (Middlebury 2014, quarter size): its docstring's calibration
F_PX, CX, CY, DOFFS, BASELINE_M = 994.978, 311.193, 254.877, 31.086, 0.193001
QUARTER_CALIB = f"""cam0=[{F_PX} 0 {CX}; 0 {F_PX} {CY}; 0 0 1]
cam1=[{F_PX} 0 {CX + DOFFS}; 0 {F_PX} {CY}; 0 0 1]
doffs={DOFFS}
baseline=193.001
width=741
height=500
"""
# the full-size calib.txt of the same scene (4x the quarter's pixels)
FULL_CALIB = """cam0=[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]
cam1=[3979.911 0 1369.115; 0 3979.911 1019.507; 0 0 1]
doffs=124.343
baseline=193.001
width=2964
height=2000
"""


@pytest.fixture(scope="module")
def motorcycle() -> tuple[np.ndarray, np.ndarray]:
    from skimage.data import stereo_motorcycle

    left, _, disparity = stereo_motorcycle()
    return left, disparity.astype(np.float32)  # inf: no ground truth


def _write_motorcycle(tmp_path, motorcycle, calib_text: str, folder: str) -> tuple[dict, str]:
    left, disparity = motorcycle
    calib = tmp_path / f"{folder}_calib.txt"
    calib.write_text(calib_text)
    writer = DepthPredictionWriter(output_dir=str(tmp_path / folder), raw_format="none",
                                   calib=str(calib))  # fmt: skip
    writer.write_maps(torch.from_numpy(disparity)[None, None], "disparity", [left], ["moto"])
    return read_ply(tmp_path / folder / "moto.ply"), writer.summary_line()


def test_motorcycle_ground_truth_cloud_has_the_true_depths(tmp_path, motorcycle):
    left, disparity = motorcycle
    cloud, line = _write_motorcycle(tmp_path, motorcycle, QUARTER_CALIB, "quarter")
    valid = np.isfinite(disparity) & (disparity > 0.1)
    rows, cols = np.nonzero(valid)  # the writer's points are the valid pixels, row-major
    d = disparity[valid].astype(np.float64)
    z = F_PX * BASELINE_M / (d + DOFFS)  # Middlebury: Z = baseline * f / (d + doffs)
    assert 2.0 < z.min() and z.max() < 5.5  # the scene's real 2-5 m
    assert len(cloud["points"]) == valid.sum()
    np.testing.assert_allclose(cloud["points"][:, 2], z, rtol=1e-3)
    np.testing.assert_allclose(cloud["points"][:, 0], (cols - CX) * z / F_PX, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(cloud["points"][:, 1], (rows - CY) * z / F_PX, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(cloud["colors"], left[valid])
    assert f"wrote 1 disparity map (color png, ply) to {tmp_path / 'quarter'}" in line
    assert f"camera: {tmp_path / 'quarter_calib.txt'} (fx=994.978" in line

    # the full-size calib.txt on the quarter-size map: scaled by 741 / 2964, same points
    full, line = _write_motorcycle(tmp_path, motorcycle, FULL_CALIB, "full")
    np.testing.assert_allclose(full["points"], cloud["points"], rtol=1e-4, atol=1e-5)
    assert "for 2000x2964 images; scaled to the 500x741 maps" in line


def test_calibration_of_other_images_is_refused(tmp_path, motorcycle):
    left, disparity = motorcycle
    calib = tmp_path / "calib.txt"
    calib.write_text(QUARTER_CALIB)
    writer = DepthPredictionWriter(output_dir=str(tmp_path / "out"), calib=str(calib))
    cropped = torch.from_numpy(disparity[:, :600].copy())[None, None]
    with pytest.raises(ValueError, match=r"calib .*calib.txt: .*500x741 \(HxW\) images but the "
                                         r"map is 500x600: not a resize"):  # fmt: skip
        writer.write_maps(cropped, "disparity", [left[:, :600]], ["moto"])
    # no size recorded: a principal point outside the map means other images
    writer = DepthPredictionWriter(output_dir=str(tmp_path / "out"), fx=995.0, cx=311.0, cy=255.0,
                                   baseline=0.193)  # fmt: skip
    with pytest.raises(ValueError, match=r"principal point \(cx=311, cy=255\) lies outside the "
                                         r"100x200"):  # fmt: skip
        writer.write_maps(torch.ones(1, 1, 100, 200), "disparity", [left[:100, :200]], ["x"])
    assert not (tmp_path / "out" / "x.ply").exists()


def test_camera_values_and_what_the_line_says_was_assumed(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    writer = DepthPredictionWriter(output_dir=str(tmp_path / "a"), raw_format="none")
    writer.write_maps(torch.full((1, 1, 4, 6), 2.0), "disparity", [rgb], ["x"])
    line = writer.summary_line()
    assert "camera: default (f=0.8*width, principal point at the centre, baseline=1" in line
    assert "depths in baselines" in line
    # default camera: f = 0.8 * 6 = 4.8 px, baseline 1 -> z = 4.8 / 2
    np.testing.assert_allclose(read_ply(tmp_path / "a" / "x.ply")["points"][:, 2], 2.4, rtol=1e-6)

    writer = DepthPredictionWriter(output_dir=str(tmp_path / "b"), raw_format="none", fx=10.0,
                                   fy=12.0, cx=1.0, cy=2.0, baseline=0.5, doffs=3.0)  # fmt: skip
    depth = torch.full((1, 1, 4, 6), 2.0)
    writer.write_maps(depth, "disparity", [rgb], ["x"])
    points = read_ply(tmp_path / "b" / "x.ply")["points"]
    z = 10.0 * 0.5 / (2.0 + 3.0)
    np.testing.assert_allclose(points[:, 2], z, rtol=1e-6)
    u, v = np.tile(np.arange(6), 4), np.repeat(np.arange(4), 6)
    np.testing.assert_allclose(points[:, 0], (u - 1.0) * z / 10.0, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(points[:, 1], (v - 2.0) * z / 12.0, rtol=1e-6, atol=1e-7)
    assert "camera: given fx=10 fy=12 cx=1 cy=2 baseline=0.5 doffs=3" in writer.summary_line()

    writer = DepthPredictionWriter(output_dir=str(tmp_path / "c"), raw_format="none", focal=5.0)
    writer.write_maps(depth, "depth", [rgb], ["x"])
    line = writer.summary_line()
    assert "wrote 1 depth map" in line and "camera: given fx=5 fy=5; assumed cx=centre" in line


def test_writer_rejects_contradictory_camera_options(tmp_path):
    calib = tmp_path / "calib.txt"
    calib.write_text(QUARTER_CALIB)
    with pytest.raises(ValueError, match="focal or fx/fy, not both"):
        DepthPredictionWriter(focal=5.0, fx=5.0)
    with pytest.raises(ValueError, match="calib or the camera values, not both.*fx, baseline"):
        DepthPredictionWriter(calib=str(calib), fx=5.0, baseline=0.1)
    with pytest.raises(DataError, match="calibration file .*nope.txt does not exist"):
        DepthPredictionWriter(calib=str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match="baseline must be > 0 metres"):
        DepthPredictionWriter(baseline=0.0)
    with pytest.raises(ValueError, match="baseline and doffs turn disparities into depth"):
        DepthPredictionWriter(baseline=0.1, doffs=2.0).check_map_kind("depth")
    with pytest.raises(ValueError, match=r"fixed_range must be \[lo, hi\] with lo < hi"):
        DepthPredictionWriter(fixed_range=(2.0, 1.0))


# -- pictures: near = warm, a colour bar, a fixed range -------------------------------------


def _jet(x: float) -> np.ndarray:
    """Matplotlib's jet at ``x`` as uint8 RGB (the reference)."""
    from matplotlib import colormaps

    return np.round(np.asarray(colormaps["jet"](x)[:3]) * 255).astype(np.uint8)


def _bar_ends(png: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The colours at the two ends of the bar under a ``height``-row map: a row through the
    bar (two rows into the strip's first non-white rows), its first and last coloured pixel."""
    strip = png[height:]
    row = strip[np.flatnonzero((strip != 255).any(axis=(1, 2)))[0] + 2]
    coloured = np.flatnonzero((row != 255).any(-1))
    return row[coloured[0]], row[coloured[-1]]


@pytest.mark.parametrize("kind, near, far", [("depth", 1.0, 10.0), ("disparity", 40.0, 4.0)])
def test_color_png_is_near_warm_with_a_colour_bar(tmp_path, kind, near, far):
    values = torch.full((1, 1, 6, 8), far)
    values[..., :4] = near
    writer = DepthPredictionWriter(output_dir=str(tmp_path), raw_format="none", point_cloud=False)
    writer.write_maps(values, kind, [np.zeros((6, 8, 3), np.uint8)], ["x"])
    png = np.asarray(Image.open(tmp_path / "x_color.png"))
    near_px, far_px = png[0, 0].astype(int), png[0, 7].astype(int)
    assert near_px[0] > far_px[0] and near_px[2] < far_px[2]  # near: more red, less blue
    np.testing.assert_array_equal(near_px, _jet(1.0))  # the warm end of the colormap
    left, right = _bar_ends(png, 6)  # the bar runs from the smallest value to the largest
    np.testing.assert_array_equal(left, png[0, 0] if kind == "depth" else png[0, 7])
    np.testing.assert_array_equal(right, png[0, 7] if kind == "depth" else png[0, 0])
    np.testing.assert_array_equal(left, _jet(1.0) if kind == "depth" else _jet(0.0))
    np.testing.assert_array_equal(right, _jet(0.0) if kind == "depth" else _jet(1.0))


def test_fixed_range_gives_equal_values_equal_colours(tmp_path):
    maps = torch.tensor([[1.0, 1.5, 2.0], [1.5, 4.0, 8.0]]).reshape(2, 1, 1, 3)
    images = [np.zeros((1, 3, 3), np.uint8)] * 2
    pngs = {}
    for folder, fixed in (("own", None), ("fixed", (0.5, 10.0))):
        writer = DepthPredictionWriter(output_dir=str(tmp_path / folder), raw_format="none",
                                       point_cloud=False, fixed_range=fixed)  # fmt: skip
        writer.write_maps(maps, "depth", images, ["a", "b"])
        pngs[folder] = [np.asarray(Image.open(tmp_path / folder / f"{n}_color.png")) for n in "ab"]
    a, b = pngs["fixed"]
    np.testing.assert_array_equal(a[0, 1], b[0, 0])  # 1.5 m in both
    np.testing.assert_array_equal(a[0, 1], _jet(1 - (1.5 - 0.5) / 9.5))
    np.testing.assert_array_equal(a[1:], b[1:])  # one bar, one range printed on it
    a, b = pngs["own"]
    assert not np.array_equal(a[0, 1], b[0, 0])  # each image's own range: other colours
    assert not np.array_equal(a[1:], b[1:])
    assert "colours: fixed range 0.5..10" in writer.summary_line()
