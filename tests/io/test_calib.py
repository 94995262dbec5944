"""Calibration files: Middlebury 2014 calib.txt and KITTI 2012/2015, with real values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lightning_depth.io.calib import read_calib, read_kitti_calib, read_middlebury_calib
from lightning_depth.io.errors import DataError

# Middlebury 2014 Motorcycle, full resolution (the quarter-size pair scikit-image ships has
# f=994.978 cx=311.193 cy=254.877 doffs=31.086: these divided by 4). Its height is taken as 4 x
# the quarter image's 500 rows.
MOTORCYCLE = """cam0=[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]
cam1=[3979.911 0 1369.115; 0 3979.911 1019.507; 0 0 1]
doffs=124.343
baseline=193.001
width=2964
height=2000
ndisp=270
isint=0
"""

# KITTI 2015 calib_cam_to_cam (drive 2011_09_26): rectified projections of the colour cameras.
KITTI_2015 = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_rect_02: 1.242000e+03 3.750000e+02
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
S_rect_03: 1.242000e+03 3.750000e+02
P_rect_03: 7.215377e+02 0.000000e+00 6.095593e+02 -3.395242e+02 0.000000e+00 7.215377e+02 1.728540e+02 2.199936e+00 0.000000e+00 0.000000e+00 1.000000e+00 2.729905e-03
"""  # noqa: E501

# KITTI 2012-style calib/000000.txt (P0..P3, Tr_velo_to_cam): no image size recorded.
KITTI_2012 = """P0: 7.070493e+02 0.000000e+00 6.040814e+02 0.000000e+00 0.000000e+00 7.070493e+02 1.805066e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
P1: 7.070493e+02 0.000000e+00 6.040814e+02 -3.797842e+02 0.000000e+00 7.070493e+02 1.805066e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
P2: 7.070493e+02 0.000000e+00 6.040814e+02 4.575831e+01 0.000000e+00 7.070493e+02 1.805066e+02 -3.454157e-01 0.000000e+00 0.000000e+00 1.000000e+00 4.981016e-03
P3: 7.070493e+02 0.000000e+00 6.040814e+02 -3.341081e+02 0.000000e+00 7.070493e+02 1.805066e+02 2.330660e+00 0.000000e+00 0.000000e+00 1.000000e+00 3.201153e-03
Tr_velo_to_cam: 6.927964e-03 -9.999722e-01 -2.757829e-03 -2.457729e-02 -1.162982e-03 2.749836e-03 -9.999955e-01 -6.127237e-02 9.999753e-01 6.931141e-03 -1.143899e-03 -3.321029e-01
"""  # noqa: E501


def _file(tmp_path: Path, text: str, name: str = "calib.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_middlebury_motorcycle(tmp_path):
    camera = read_calib(_file(tmp_path, MOTORCYCLE))
    assert camera == read_middlebury_calib(tmp_path / "calib.txt")
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (3979.911, 3979.911, 1244.772, 1019.507)
    assert camera.baseline == pytest.approx(0.193001, rel=1e-12)  # millimetres -> metres
    assert camera.doffs == 124.343
    assert camera.size == (2000, 2964)
    # quarter size: scikit-image's calibration of its down-sampled pair
    quarter = camera.for_size(500, 741)
    assert quarter.fx == pytest.approx(994.978, abs=1e-3)
    assert quarter.cx == pytest.approx(311.193, abs=1e-3)
    assert quarter.cy == pytest.approx(254.877, abs=1e-3)
    assert quarter.doffs == pytest.approx(31.086, abs=1e-3)


def test_middlebury_doffs_from_the_principal_points(tmp_path):
    text = "\n".join(line for line in MOTORCYCLE.splitlines() if not line.startswith("doffs"))
    camera = read_calib(_file(tmp_path, text))
    assert camera.doffs == pytest.approx(1369.115 - 1244.772, abs=1e-9)


def test_kitti_2015_colour_cameras(tmp_path):
    camera = read_calib(_file(tmp_path, KITTI_2015, "000000.txt"))
    assert camera == read_kitti_calib(tmp_path / "000000.txt")
    assert (camera.fx, camera.cx, camera.cy) == (721.5377, 609.5593, 172.854)
    assert camera.baseline == pytest.approx((44.85728 + 339.5242) / 721.5377, rel=1e-9)
    assert 0.53 < camera.baseline < 0.54  # KITTI's ~0.54 m rig
    assert camera.doffs == 0.0
    assert camera.size == (375, 1242)  # S_rect_02 is width, height


def test_kitti_2012_p2_p3(tmp_path):
    camera = read_calib(_file(tmp_path, KITTI_2012, "000000.txt"))
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (707.0493, 707.0493, 604.0814, 180.5066)
    assert camera.baseline == pytest.approx((45.75831 + 334.1081) / 707.0493, rel=1e-9)
    assert 0.53 < camera.baseline < 0.54
    assert camera.size is None and camera.doffs == 0.0


@pytest.mark.parametrize(
    "text, message",
    [
        ("hello: world\n", "neither Middlebury .* nor KITTI"),
        (MOTORCYCLE.replace("0 0 1]\ncam1", "0]\ncam1", 1), "cam0 must hold 3x3 numbers"),
        (MOTORCYCLE.replace("baseline=193.001", "baseline=abc"), "baseline must be a number"),
        (MOTORCYCLE.replace("baseline=193.001", "baseline=0"), "baseline must be > 0"),
        (MOTORCYCLE.replace("3979.911 0 1244", "0 0 1244"), "focal lengths must be > 0"),
        ("cam0=[1 0 1; 0 1 1; 0 0 1]\n", "not a Middlebury calib.txt, missing cam1, baseline"),
        (KITTI_2015.replace("P_rect_02", "P_rect_XX").replace("P_rect_03", "P_rect_02")
         .replace("P_rect_XX", "P_rect_03"), "not a left/right pair"),
        ("P2: 1 2 3\nP3: 1 2 3\n", "P2 must hold 3x4 numbers"),
    ],
)  # fmt: skip
def test_bad_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = _file(tmp_path, text)
    with pytest.raises(DataError, match=f"calibration file {re.escape(str(path))}.*{message}"):
        read_calib(path)


def test_missing_file(tmp_path):
    missing = re.escape(str(tmp_path / "nope.txt"))
    with pytest.raises(DataError, match=f"calibration file {missing} does not exist"):
        read_calib(tmp_path / "nope.txt")
