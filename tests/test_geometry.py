import math

import pytest
import torch

from lightning_depth.geometry import Camera, backproject, default_intrinsics, disparity_to_depth


def test_default_intrinsics_values():
    k = default_intrinsics(4, 10)
    assert torch.equal(k, torch.tensor([[8.0, 0.0, 4.5], [0.0, 8.0, 1.5], [0.0, 0.0, 1.0]]))
    k = default_intrinsics(4, 10, focal=5.0, cx=1.0, cy=2.0, dtype=torch.float64)
    assert k.dtype == torch.float64 and k[0, 0] == 5 and k[0, 2] == 1 and k[1, 2] == 2


def test_default_intrinsics_rejects_bad_values():
    with pytest.raises(ValueError, match="focal must be > 0"):
        default_intrinsics(4, 10, focal=-1.0)
    with pytest.raises(ValueError, match="height, width >= 1"):
        default_intrinsics(0, 10)


def test_backproject_matches_pinhole_formula(device, dtype):
    depth = torch.rand(2, 1, 3, 5, device=device, dtype=dtype) + 0.5
    k = default_intrinsics(3, 5, focal=2.0, cx=1.5, cy=0.5, device=device, dtype=dtype)
    points = backproject(depth, k)
    assert points.shape == (2, 3, 5, 3)
    v, u = 2, 4
    z = depth[1, 0, v, u]
    expected = torch.stack([(u - 1.5) * z / 2.0, (v - 0.5) * z / 2.0, z])
    torch.testing.assert_close(points[1, v, u], expected)
    # Back-projected points project back to their pixel.
    proj = points[..., :2] / points[..., 2:] * 2.0 + torch.tensor([1.5, 0.5], device=device)
    uu, vv = torch.meshgrid(torch.arange(3.0), torch.arange(5.0), indexing="ij")
    torch.testing.assert_close(proj[0, ..., 0].cpu(), vv.to(dtype), atol=1e-5, rtol=0)
    torch.testing.assert_close(proj[0, ..., 1].cpu(), uu.to(dtype), atol=1e-5, rtol=0)


def test_backproject_errors():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        backproject(torch.ones(1, 3, 4), default_intrinsics(3, 4))
    with pytest.raises(ValueError, match=r"\(3, 3\) or \(B, 3, 3\)"):
        backproject(torch.ones(2, 1, 3, 4), torch.eye(3).expand(3, 3, 3))
    with pytest.raises(TypeError):
        backproject([1.0], default_intrinsics(3, 4))


def test_disparity_to_depth():
    disp = torch.tensor([[[[2.0, 0.05, -1.0, math.nan]]]])
    depth, valid = disparity_to_depth(disp, focal=100.0, baseline=0.5, min_disparity=0.1)
    assert valid.tolist() == [[[[True, False, False, False]]]]
    assert depth[0, 0, 0, 0] == 25.0 and (depth[~valid] == 0).all()
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        disparity_to_depth(torch.ones(2, 2), 1.0, 1.0)
    with pytest.raises(ValueError, match="baseline must be > 0"):
        disparity_to_depth(disp, 1.0, 0.0)


def test_camera_depth_adds_doffs():
    # Middlebury: Z = baseline * f / (d + doffs); literal numbers, not the code's formula
    camera = Camera(fx=994.978, fy=994.978, cx=311.193, cy=254.877, baseline=0.193001, doffs=31.086)
    depth, valid = camera.depth(torch.tensor([[[[60.0, 0.05]]]], dtype=torch.float64))
    assert valid.tolist() == [[[[True, False]]]]
    assert float(depth[0, 0, 0, 0]) == pytest.approx(994.978 * 0.193001 / 91.086, rel=1e-12)
    with pytest.raises(ValueError, match="no baseline"):
        Camera(1.0, 1.0, 0.0, 0.0).depth(torch.ones(1, 1, 1, 1))


def test_camera_for_size_scales_a_resize_and_refuses_a_crop():
    camera = Camera(
        fx=400.0, fy=410.0, cx=200.0, cy=150.0, baseline=0.1, doffs=8.0, size=(300, 400)
    )
    assert camera.for_size(300, 400) is camera
    half = camera.for_size(150, 200)
    assert (half.fx, half.fy, half.cx, half.cy, half.doffs) == (200.0, 205.0, 100.0, 75.0, 4.0)
    assert half.baseline == 0.1 and half.size == (150, 200)
    with pytest.raises(ValueError, match=r"300x400 \(HxW\) images but the map is 300x350.*crop"):
        camera.for_size(300, 350)


def test_camera_for_size_without_a_size_checks_the_principal_point():
    camera = Camera(fx=700.0, fy=700.0, cx=604.0, cy=180.0)
    assert camera.for_size(375, 1242) is camera
    with pytest.raises(ValueError, match=r"principal point \(cx=604, cy=180\) lies outside the "
                                         r"100x200 \(HxW\) image.*calib_size"):  # fmt: skip
        camera.for_size(100, 200)
    with pytest.raises(ValueError, match="size must be"):
        Camera(1.0, 1.0, 0.0, 0.0, size=(0, 4))
