"""Middlebury 2014: the Motorcycle pair written into the real layout, reading and checking
scenes, the DataModule, and ``lightning_depth test`` reporting bad-2.0/bad-4.0 as numpy
computes them from the same checkpoint's prediction."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_depth.data.middlebury import (
    MiddleburyDataModule,
    MiddleburyLayout,
    StereoBenchmarkTransform,
    write_motorcycle,
)
from lightning_depth.io.calib import read_middlebury_calib
from lightning_depth.io.errors import DataError

# ImageNet statistics written out, so expectations do not come from the package
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def _pfm_bytes(array: np.ndarray) -> bytes:
    """A little-endian Pf file written here, independently of ``io.pfm``."""
    h, w = array.shape
    return f"Pf\n{w} {h}\n-1.0\n".encode() + array[::-1].astype("<f4").tobytes()


def _read_pfm_here(path: Path) -> np.ndarray:
    data = path.read_bytes()
    magic, dims, scale, rest = data.split(b"\n", 3)
    w, h = (int(v) for v in dims.split())
    assert magic == b"Pf" and float(scale) < 0
    return np.frombuffer(rest, dtype="<f4").reshape(h, w)[::-1]


def _calib_text(width: int, height: int, f: float = 100.0) -> str:
    return (
        f"cam0=[{f} 0 {width / 2}; 0 {f} {height / 2}; 0 0 1]\n"
        f"cam1=[{f} 0 {width / 2 + 3}; 0 {f} {height / 2}; 0 0 1]\n"
        f"doffs=3\nbaseline=150.5\nwidth={width}\nheight={height}\nndisp=64\n"
    )


def _scene(
    root: Path,
    name: str,
    size=(32, 64),
    seed: int = 0,
    mask: Optional[np.ndarray] = None,
    calib_size=None,
    disparity: Optional[np.ndarray] = None,
) -> dict:
    """A tiny Middlebury scene written with pillow and raw bytes; returns its arrays."""
    rng = np.random.default_rng(seed)
    h, w = size
    left = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    right = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if disparity is None:
        disparity = rng.uniform(1, 30, size).astype(np.float32)
        disparity[: h // 4] = np.inf  # no ground truth in the top rows
    folder = root / name
    folder.mkdir(parents=True)
    Image.fromarray(left).save(folder / "im0.png")
    Image.fromarray(right).save(folder / "im1.png")
    (folder / "disp0GT.pfm").write_bytes(_pfm_bytes(disparity))
    ch, cw = calib_size or size
    (folder / "calib.txt").write_text(_calib_text(cw, ch))
    if mask is not None:
        Image.fromarray(mask.astype(np.uint8)).save(folder / "mask0nocc.png")
    return {"left": left, "right": right, "disparity": disparity, "mask": mask}


def _normalised(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` ImageNet-normalised, computed here."""
    x = (image / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(x.astype(np.float32).transpose(2, 0, 1))[None]


def _dm(root: Path, **kwargs) -> MiddleburyDataModule:
    return MiddleburyDataModule(root=str(root), num_workers=0, **kwargs)


# -- the Motorcycle pair ---------------------------------------------------------------------


def test_write_motorcycle_writes_scikit_images_pair_in_the_layout(tmp_path):
    from skimage.data import stereo_motorcycle

    scene = write_motorcycle(tmp_path)
    assert scene == tmp_path / "Motorcycle"
    assert sorted(p.name for p in scene.iterdir()) == [
        "calib.txt",
        "disp0GT.pfm",
        "im0.png",
        "im1.png",
    ]
    left, right, disparity = stereo_motorcycle()
    np.testing.assert_array_equal(np.asarray(Image.open(scene / "im0.png")), left)
    np.testing.assert_array_equal(np.asarray(Image.open(scene / "im1.png")), right)
    written = _read_pfm_here(scene / "disp0GT.pfm")
    assert written.shape == (500, 741)
    known = np.isfinite(disparity)
    np.testing.assert_array_equal(written[known], disparity[known])
    assert np.isposinf(written[~known]).all() and (~known).sum() > 20000
    text = (scene / "calib.txt").read_text()
    assert "width=741\n" in text and "height=500\n" in text and "baseline=193.001" in text
    camera = read_middlebury_calib(scene / "calib.txt")
    assert (camera.fx, camera.cx, camera.cy) == pytest.approx((994.978, 311.193, 254.877))
    assert (camera.doffs, camera.baseline) == pytest.approx((31.086, 0.193001))
    with pytest.raises(DataError, match="Motorcycle exists and is not empty"):
        write_motorcycle(tmp_path)


def test_without_root_the_datamodule_evaluates_the_motorcycle_pair(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dm = MiddleburyDataModule(num_workers=0)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    folder = tmp_path / ".cache" / "lightning_depth" / "middlebury_motorcycle" / "Motorcycle"
    assert (folder / "disp0GT.pfm").is_file()
    assert batch["name"] == ["Motorcycle"]
    assert batch["left"].shape == (1, 3, 500, 741)  # whole image, no crop or padding
    assert dm.benchmark_metrics == ("bad2", "bad4")  # no occlusion mask in this scene


# -- reading ---------------------------------------------------------------------------------


def test_dataset_items_hold_the_scene_as_read_with_unknown_disparity_as_zero(tmp_path):
    mask = np.random.default_rng(1).choice([0, 128, 255], size=(32, 64))
    arrays = _scene(tmp_path, "Toy", mask=mask)
    _scene(tmp_path, "Plain", seed=2)  # no mask
    dm = _dm(tmp_path)
    dm.setup("test")
    assert [s[0].parent.name for s in dm.test_samples] == ["Plain", "Toy"]
    assert [len(s) for s in dm.test_samples] == [4, 5]  # the mask where there is one
    assert dm.benchmark_metrics == ("bad2", "bad4", "bad2_noc", "bad4_noc")
    item = dm.test_set[1]
    assert item["name"] == "Toy"
    torch.testing.assert_close(item["left"][None], _normalised(arrays["left"]))
    torch.testing.assert_close(item["right"][None], _normalised(arrays["right"]))
    gt = arrays["disparity"]
    expected = np.where(np.isfinite(gt), gt, 0.0)
    np.testing.assert_array_equal(item["disparity"][0].numpy(), expected)
    assert item["nonoccluded"].dtype == torch.bool
    np.testing.assert_array_equal(item["nonoccluded"][0].numpy(), (mask == 255) & np.isfinite(gt))
    assert not dm.test_set[0]["nonoccluded"].any()  # no mask: no pixel known non-occluded
    assert dm.val_samples == dm.test_samples == dm.train_samples  # the benchmark: all scenes


def test_training_crops_take_the_same_window_of_every_map(tmp_path):
    h, w = 32, 64
    disparity = (np.arange(h * w, dtype=np.float32).reshape(h, w) + 1.0) / 100.0
    arrays = _scene(tmp_path, "Toy", disparity=disparity)
    transform = StereoBenchmarkTransform(training=True, size=(16, 24))
    record = MiddleburyLayout().read(MiddleburyLayout().list(_folder(tmp_path))[0])
    item = transform(record, generator=torch.Generator().manual_seed(3))
    assert item["disparity"].shape == (1, 16, 24)
    first = int(round(float(item["disparity"][0, 0, 0]) * 100)) - 1
    top, x0 = divmod(first, w)
    window = (slice(top, top + 16), slice(x0, x0 + 24))
    assert (top, x0) != (0, 0)
    torch.testing.assert_close(item["left"][None], _normalised(arrays["left"][window]))
    torch.testing.assert_close(item["right"][None], _normalised(arrays["right"][window]))
    with pytest.raises(DataError, match="size 64x24 \\(HxW\\) is larger than the 32x64"):
        StereoBenchmarkTransform(training=True, size=(64, 24))(record)
    # and a DataModule says so at setup for fit, not at the first batch
    with pytest.raises(ValueError, match="size 64x24 \\(HxW\\) is larger than the 32x64"):
        _dm(tmp_path, size=(64, 24)).setup("fit")
    _dm(tmp_path, size=(64, 24)).setup("test")  # evaluation takes whole images


def _folder(root: Path):
    from lightning_depth.data.layout import Folder

    return Folder(root)


# -- bad inputs ------------------------------------------------------------------------------


def test_a_root_without_scenes_names_the_pattern_and_the_layout(tmp_path):
    (tmp_path / "im0.png").write_bytes(b"")  # not in a scene folder
    with pytest.raises(DataError) as info:
        _dm(tmp_path).setup("test")
    message = str(info.value)
    assert f"Middlebury root {tmp_path} holds no Middlebury scenes" in message
    assert f"searched {tmp_path}/*/im0.png" in message
    assert "im1.png, disp0GT.pfm (inf where unknown), calib.txt" in message


def test_the_preflight_check_lists_every_bad_scene(tmp_path):
    _scene(tmp_path, "Good")
    _scene(tmp_path, "HalfCalib", calib_size=(64, 128))  # a calib.txt of another resolution
    nan = np.ones((32, 64), np.float32)
    nan[3, 4] = np.nan
    _scene(tmp_path, "NaN", disparity=nan)
    _scene(tmp_path, "BadMask", mask=np.full((32, 64), 7))
    _scene(tmp_path, "NoRight")
    (tmp_path / "NoRight" / "im1.png").unlink()
    _scene(tmp_path, "Small")
    (tmp_path / "Small" / "disp0GT.pfm").write_bytes(_pfm_bytes(np.ones((32, 60), np.float32)))
    with pytest.raises(DataError) as info:
        _dm(tmp_path).setup("test")
    message = str(info.value)
    assert "5 of 6 samples are bad" in message
    assert "calibration " in message and "is for 64x128 images" in message
    assert "but " in message and "HalfCalib/im0.png is 32x64 (HxW)" in message
    assert "NaN/disp0GT.pfm holds 1 NaN and 0 negative values" in message
    assert "BadMask/mask0nocc.png holds 2048 pixels that are not 255" in message
    assert f"missing right image file {tmp_path}/NoRight/im1.png" in message
    assert "Small/disp0GT.pfm is 32x60 but" in message
    # leaving them out keeps the good scene only
    dm = _dm(tmp_path, on_bad_samples="exclude")
    dm.setup("test")
    assert [s[0].parent.name for s in dm.test_samples] == ["Good"]


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="eval_batch_size must be 1"):
        MiddleburyDataModule(root="x", eval_batch_size=2)
    with pytest.raises(ValueError, match="evaluate_all=True evaluates every sample"):
        MiddleburyDataModule(root="x", val_fraction=0.2)
    with pytest.raises(ValueError, match="hflip is not supported"):
        MiddleburyDataModule(root="x", hflip=True)
    MiddleburyDataModule(root="x", evaluate_all=False, val_fraction=0.2)


def test_a_held_out_split_when_asked(tmp_path):
    for k in range(5):
        _scene(tmp_path, f"S{k}", seed=k)
    dm = _dm(tmp_path, evaluate_all=False, val_fraction=0.2, test_fraction=0.2, size=(16, 32))
    dm.setup("fit")
    sizes = [len(dm.train_samples), len(dm.val_samples), len(dm.test_samples)]
    assert sizes == [3, 1, 1]
    assert not set(dm.train_samples) & set(dm.val_samples + dm.test_samples)


# -- lightning_depth test --------------------------------------------------------------------


def _result(out: str) -> dict[str, str]:
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
    return dict(item.split("=", 1) for item in line.split()[1:])


def _fit_one_step(config_data: str, root: Path, run: Path, size: str = "[64, 128]") -> Path:
    """A one-step ``lightning_depth fit`` of a tiny AnyNet (2-channel SPN) on ``root``:
    trains on the benchmark's layout (random crops) and returns ``last.ckpt``."""
    from lightning_depth.cli import main

    main(
        ["fit", "--config", "configs/stereo/monkaa_anynet_spn8.yaml", "--data", config_data,
         f"--data.init_args.root={root}", f"--data.init_args.size={size}",
         "--data.init_args.batch_size=1", "--model.init_args.net.init_args.spn_channels=2",
         "--trainer.max_steps=1", f"--trainer.default_root_dir={run}",
         "--trainer.callbacks=[{class_path: lightning_depth.callbacks.LatestCheckpoint}]",
         "--trainer.logger=false", "--trainer.enable_progress_bar=false",
         "--trainer.enable_model_summary=false"]
    )  # fmt: skip
    return next(run.rglob("last.ckpt"))


def _prediction(ckpt: Path, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The checkpoint's last-stage disparity of a pair, run through the task here."""
    from lightning_depth.deploy.checkpoints import load_task

    task = load_task(ckpt).eval()
    with torch.no_grad():
        return task(_normalised(left), _normalised(right))[-1][0, 0].numpy()


def _bad(pred: np.ndarray, gt: np.ndarray, threshold: float, region=None) -> float:
    valid = np.isfinite(gt) & (gt > 0)
    if region is not None:
        valid &= region
    return float((np.abs(pred - gt)[valid] > threshold).mean())


@pytest.mark.slow
def test_lightning_depth_test_reports_middleburys_bad_pixel_rates(tmp_path, capsys):
    from skimage.data import stereo_motorcycle

    from lightning_depth.cli import main

    root = tmp_path / "middlebury"
    scene = write_motorcycle(root)
    ckpt = _fit_one_step("configs/data/middlebury.yaml", root, tmp_path / "run")
    left, right, gt = stereo_motorcycle()
    pred = _prediction(ckpt, left, right)
    # A second scene of the same pair whose ground truth lies at known distances from the
    # prediction (none near the 2 and 4 px thresholds), with an occlusion mask: the tiny
    # model is far off the real ground truth, so there every pixel is bad.
    rng = np.random.default_rng(0)
    near_gt = (pred + rng.choice([-6.0, -3.0, -1.0, 0.5, 1.5, 3.0, 5.0], pred.shape)).astype(
        np.float32
    )
    near_gt[near_gt <= 0] = 1.0
    near_gt[:40] = np.inf
    mask = rng.choice([0, 128, 255], pred.shape, p=[0.1, 0.3, 0.6])
    near = root / "MotorcycleNear"
    shutil.copytree(scene, near)
    (near / "disp0GT.pfm").write_bytes(_pfm_bytes(near_gt))
    Image.fromarray(mask.astype(np.uint8)).save(near / "mask0nocc.png")

    capsys.readouterr()
    main(
        ["test", "--config", "configs/stereo/monkaa_anynet_spn8.yaml",
         "--data", "configs/data/middlebury.yaml", f"--data.init_args.root={root}",
         f"--ckpt_path={ckpt}", f"--trainer.default_root_dir={tmp_path / 'run'}",
         "--trainer.logger=false", "--trainer.enable_progress_bar=false"]
    )  # fmt: skip
    result = _result(capsys.readouterr().out)

    noc = mask == 255
    expected = {  # mean over the two scenes; only MotorcycleNear has a mask
        "test_bad2": (_bad(pred, gt, 2) + _bad(pred, near_gt, 2)) / 2,
        "test_bad4": (_bad(pred, gt, 4) + _bad(pred, near_gt, 4)) / 2,
        "test_bad2_noc": _bad(pred, near_gt, 2, noc),
        "test_bad4_noc": _bad(pred, near_gt, 4, noc),
    }
    assert 0.3 < expected["test_bad2_noc"] < 0.7  # the thresholds matter here
    for key, value in expected.items():
        assert float(result[key]) == pytest.approx(value, abs=6e-5), key  # 4 decimals shown


def test_check_data_command_lists_a_bad_scene(tmp_path, capsys):
    from lightning_depth.cli import main

    _scene(tmp_path, "Good")
    _scene(tmp_path, "HalfCalib", calib_size=(64, 128))
    args = ["--config", "configs/stereo/monkaa_anynet_spn8.yaml",
            "--data", "configs/data/middlebury.yaml", f"--data.init_args.root={tmp_path}"]  # fmt: skip
    assert main(["check-data", *args]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 samples are bad" in err and "HalfCalib/calib.txt is for 64x128 images" in err
    shutil.rmtree(tmp_path / "HalfCalib")
    assert main(["check-data", *args]) == 0
    assert "data check of Middlebury root" in capsys.readouterr().out
