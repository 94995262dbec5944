"""KITTI 2012/2015: generated files in the real layouts, reading and checking frames, and
``lightning_depth test`` reporting D1-all (pooled over pixels) as numpy computes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_depth.data.kitti import KittiDataModule, KittiLayout
from lightning_depth.data.layout import Folder
from lightning_depth.io.errors import DataError
from tests.data.test_middlebury import _fit_one_step, _normalised, _prediction, _result

FOLDERS = {
    "2012": ("colored_0", "colored_1", "disp_occ", "disp_noc", "calib"),
    "2015": ("image_2", "image_3", "disp_occ_0", "disp_noc_0", "calib_cam_to_cam"),
}
CALIB = {
    # KITTI 2012 calib/*.txt: P0..P3 (P2/P3 the colour cameras), 3x4 row-major
    "2012": "P2: 700 0 600 45 0 700 180 0 0 0 1 0\nP3: 700 0 600 -330 0 700 180 0 0 0 1 0\n",
    # KITTI 2015 calib_cam_to_cam/*.txt
    "2015": (
        "S_rect_02: 1.242000e+03 3.750000e+02\n"
        "P_rect_02: 721.5 0 609.6 44.9 0 721.5 172.9 0.2 0 0 1 0.003\n"
        "P_rect_03: 721.5 0 609.6 -339.5 0 721.5 172.9 2.2 0 0 1 0.003\n"
    ),
}


def _png16(path: Path, disparity: np.ndarray) -> np.ndarray:
    """Write a KITTI disparity PNG here (uint16 = round(256 d), 0 unknown); returns what a
    reader must get back (d quantised to 1/256 px)."""
    raw = np.round(np.where(disparity > 0, disparity, 0) * 256).astype(np.uint16)
    Image.fromarray(raw).save(path)
    return raw.astype(np.float32) / 256


def _frame(root: Path, version: str, index: int, size, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    left_dir, right_dir, occ_dir, noc_dir, calib_dir = (root / f for f in FOLDERS[version])
    for folder in (left_dir, right_dir, occ_dir, noc_dir, calib_dir):
        folder.mkdir(parents=True, exist_ok=True)
    name = f"{index:06d}_10.png"
    left = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    right = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(left).save(left_dir / name)
    Image.fromarray(right).save(right_dir / name)
    occ = rng.uniform(1, 60, size) * (rng.random(size) < 0.6)  # sparse, like the lidar
    noc = occ * (rng.random(size) < 0.8)
    (calib_dir / f"{index:06d}.txt").write_text(CALIB[version])
    return {
        "left": left,
        "right": right,
        "occ": _png16(occ_dir / name, occ),
        "noc": _png16(noc_dir / name, noc),
        "dirs": (occ_dir, noc_dir),
        "name": name,
    }


@pytest.mark.parametrize("version", ["2012", "2015"])
def test_frames_are_read_as_written(tmp_path, version):
    frames = [_frame(tmp_path, version, k, (24, 40), seed=k) for k in range(2)]
    (tmp_path / FOLDERS[version][0] / "000000_11.png").write_bytes(b"")  # no ground truth
    dm = KittiDataModule(root=str(tmp_path), num_workers=0)
    dm.setup("test")
    assert [s[0].name for s in dm.test_samples] == ["000000_10.png", "000001_10.png"]
    calib = dm.test_samples[0][4]
    assert calib.relative_to(tmp_path).as_posix() == f"{FOLDERS[version][4]}/000000.txt"
    assert dm.benchmark_metrics == ("d1_all", "d1_noc")
    for frame, item in zip(frames, dm.test_set):
        assert item["name"] == frame["name"][:-4]
        torch.testing.assert_close(item["left"][None], _normalised(frame["left"]))
        torch.testing.assert_close(item["right"][None], _normalised(frame["right"]))
        np.testing.assert_array_equal(item["disparity"][0].numpy(), frame["occ"])
        np.testing.assert_array_equal(item["nonoccluded"][0].numpy(), frame["noc"] > 0)
    with pytest.raises(DataError, match="holds no KITTI left images"):
        KittiDataModule(
            root=str(tmp_path), version="2015" if version == "2012" else "2012", num_workers=0
        ).setup("test")


def test_a_root_without_frames_names_both_layouts(tmp_path):
    with pytest.raises(DataError) as info:
        KittiLayout().list(Folder(tmp_path))
    message = str(info.value)
    assert f"searched {tmp_path}/colored_0/*_10.png, {tmp_path}/image_2/*_10.png" in message
    assert "KITTI 2012: <root>/{colored_0,colored_1}/NNNNNN_10.png" in message
    assert "KITTI 2015: <root>/{image_2,image_3}/NNNNNN_10.png" in message


def test_the_preflight_check_lists_every_bad_frame(tmp_path):
    _frame(tmp_path, "2015", 0, (24, 40))
    swapped = _frame(tmp_path, "2015", 1, (24, 40), seed=1)
    occ_dir, noc_dir = swapped["dirs"]
    name = swapped["name"]
    tmp = occ_dir / "tmp.png"
    (occ_dir / name).rename(tmp)
    (noc_dir / name).rename(occ_dir / name)
    tmp.rename(noc_dir / name)
    _frame(tmp_path, "2015", 2, (24, 40), seed=2)
    (tmp_path / "calib_cam_to_cam" / "000002.txt").write_text("S_rect_02: 1 2\n")
    small = _frame(tmp_path, "2015", 3, (24, 40), seed=3)
    _png16(small["dirs"][0] / small["name"], np.ones((24, 38)))
    _frame(tmp_path, "2015", 4, (24, 40), seed=4)
    Image.fromarray(np.zeros((24, 40), np.uint8)).save(noc_dir / "000004_10.png")  # 8-bit
    _frame(tmp_path, "2015", 5, (24, 40), seed=5)
    (tmp_path / "image_3" / "000005_10.png").unlink()
    with pytest.raises(DataError) as info:
        KittiDataModule(root=str(tmp_path), num_workers=0).setup("test")
    message = str(info.value)
    assert "5 of 6 samples are bad" in message
    assert "disp_noc_0/000001_10.png has" in message and "are the folders swapped?" in message
    assert "000002.txt: not a KITTI calibration" in message
    assert "disp_occ_0/000003_10.png is 24x38 but left image" in message
    assert "KITTI disparity must be a 16-bit single-channel PNG" in message
    assert f"missing right image file {tmp_path}/image_3/000005_10.png" in message


@pytest.mark.slow
def test_lightning_depth_test_reports_kittis_d1(tmp_path, capsys):
    from lightning_depth.cli import main

    root = tmp_path / "kitti"
    frames = [_frame(root, "2015", k, size, seed=k) for k, size in enumerate([(48, 96), (40, 112)])]
    ckpt = _fit_one_step("configs/data/kitti.yaml", root, tmp_path / "run", size="[32, 64]")
    # Ground truth at known distances from the checkpoint's prediction, on both sides of
    # D1's 3 px and 5 % (KITTI PNGs hold up to 255.99 px: farther pixels have none).
    rng = np.random.default_rng(0)
    expected_bad, expected_counted = {"all": 0, "noc": 0}, {"all": 0, "noc": 0}
    for frame in frames:
        pred = _prediction(ckpt, frame["left"], frame["right"])
        gt = pred + rng.choice([-12.0, -5.0, -2.0, 1.0, 4.0, 8.0, 40.0], pred.shape)
        gt = np.where((gt > 1) & (gt < 250) & (rng.random(pred.shape) < 0.7), gt, 0)
        noc = gt * (rng.random(pred.shape) < 0.8)
        occ_dir, noc_dir = frame["dirs"]
        for region, values, folder in (("all", gt, occ_dir), ("noc", noc, noc_dir)):
            stored = _png16(folder / frame["name"], values)
            valid = stored > 0
            err = np.abs(pred - stored)
            expected_bad[region] += int(((err > 3) & (err > 0.05 * stored) & valid).sum())
            expected_counted[region] += int(valid.sum())
    assert expected_counted["noc"] > 200

    capsys.readouterr()
    main(
        ["test", "--config", "configs/stereo/monkaa_anynet_spn8.yaml",
         "--data", "configs/data/kitti.yaml", f"--data.init_args.root={root}",
         f"--ckpt_path={ckpt}", f"--trainer.default_root_dir={tmp_path / 'run'}",
         "--trainer.logger=false", "--trainer.enable_progress_bar=false"]
    )  # fmt: skip
    result = _result(capsys.readouterr().out)
    for region, key in (("all", "test_d1_all"), ("noc", "test_d1_noc")):
        expected = expected_bad[region] / expected_counted[region]  # pooled over both frames
        assert 0.2 < expected < 0.8
        assert float(result[key]) == pytest.approx(expected, abs=6e-5), key
