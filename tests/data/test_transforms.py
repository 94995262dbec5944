from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightning_depth.data.transforms import hflip, resize_like_cv2, to_chw_tensor

# (source H, W) -> (output H, W): down, up, odd sizes, anisotropic, 2x exactly, degenerate.
SIZES = [
    ((48, 64), (32, 32)),
    ((48, 64), (24, 32)),
    ((37, 53), (91, 120)),
    ((11, 13), (33, 29)),
    ((64, 96), (17, 23)),
    ((5, 7), (3, 2)),
    ((1, 9), (4, 5)),
    ((30, 40), (30, 40)),
]
CHANNELS = [None, 1, 2, 3, 4]


def _cv2_resize(cv2, array: np.ndarray, size_hw: tuple[int, int], flag: int) -> np.ndarray:
    out = cv2.resize(array, (size_hw[1], size_hw[0]), interpolation=flag)
    return out[..., None] if array.ndim == 3 and out.ndim == 2 else out


def _source(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    # Up to log(300), the largest log-depth target.
    return (rng.random(shape, dtype=np.float32) * np.float32(np.log(300))).astype(dtype)


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("src,dst", SIZES)
def test_linear_uint8_matches_cv2_exactly(src, dst, channels):
    cv2 = pytest.importorskip("cv2")
    shape = src if channels is None else (*src, channels)
    a = _source(shape, np.uint8)
    out = resize_like_cv2(a, dst)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, _cv2_resize(cv2, a, dst, cv2.INTER_LINEAR))


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("src,dst", SIZES)
def test_linear_float32_matches_cv2(src, dst, channels):
    cv2 = pytest.importorskip("cv2")
    shape = src if channels is None else (*src, channels)
    a = _source(shape, np.float32)
    out = resize_like_cv2(a, dst)
    assert out.dtype == np.float32 and out.shape == (*dst, *shape[2:])
    np.testing.assert_allclose(out, _cv2_resize(cv2, a, dst, cv2.INTER_LINEAR), rtol=0, atol=1e-5)


def test_linear_float64_matches_cv2():
    cv2 = pytest.importorskip("cv2")
    a = _source((37, 53), np.float64)
    out = resize_like_cv2(a, (91, 120))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, _cv2_resize(cv2, a, (91, 120), cv2.INTER_LINEAR), atol=1e-6)


@pytest.mark.parametrize("channels", [None, 3])
@pytest.mark.parametrize("src,dst", SIZES)
def test_nearest_matches_cv2(src, dst, channels):
    cv2 = pytest.importorskip("cv2")
    shape = src if channels is None else (*src, channels)
    a = _source(shape, np.uint8)
    out = resize_like_cv2(a, dst, interpolation="nearest")
    np.testing.assert_array_equal(out, _cv2_resize(cv2, a, dst, cv2.INTER_NEAREST))


def test_linear_known_values():
    # 2 -> 4 pixels: half-pixel centres put outputs at -0.25 (clamped), 0.25, 0.75, 1.25.
    f = resize_like_cv2(np.array([[0.0, 1.0]], np.float32), (1, 4))
    np.testing.assert_allclose(f, [[0.0, 0.25, 0.75, 1.0]])
    # The 8-bit path rounds in fixed point: 255 * 0.25 = 63.75 -> 64, 255 * 0.75 -> 191.
    u = resize_like_cv2(np.array([[0, 255]], np.uint8), (1, 4))
    np.testing.assert_array_equal(u, [[0, 64, 191, 255]])
    # Vertically too (OpenCV keeps the weight and clamps rows there).
    v = resize_like_cv2(np.array([[0], [255]], np.uint8), (4, 1))
    np.testing.assert_array_equal(v[:, 0], [0, 64, 191, 255])


def test_linear_float_agrees_with_torch_bilinear():
    a = _source((37, 53), np.float32)
    ours = resize_like_cv2(a, (91, 120))
    ref = F.interpolate(
        torch.from_numpy(a)[None, None], size=(91, 120), mode="bilinear", align_corners=False
    )
    np.testing.assert_allclose(ours, ref[0, 0].numpy(), atol=5e-5)


def test_nearest_on_bool_mask():
    mask = np.zeros((4, 6), dtype=bool)
    mask[1, 3] = True
    out = resize_like_cv2(mask, (2, 3), interpolation="nearest")
    assert out.dtype == np.bool_
    # src index = floor(dst * 2): rows 0, 2 and columns 0, 2, 4.
    np.testing.assert_array_equal(out, mask[::2, ::2])
    up = resize_like_cv2(mask, (8, 12), interpolation="nearest")
    np.testing.assert_array_equal(up, mask.repeat(2, 0).repeat(2, 1))


def test_resize_rejects_bad_input():
    with pytest.raises(TypeError, match="uint8, float32 or float64"):
        resize_like_cv2(np.zeros((4, 4), np.int32), (2, 2))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        resize_like_cv2(np.zeros((2, 4, 4, 1), np.float32), (2, 2))
    with pytest.raises(ValueError, match="interpolation"):
        resize_like_cv2(np.zeros((4, 4), np.float32), (2, 2), interpolation="cubic")
    with pytest.raises(ValueError, match="size_hw"):
        resize_like_cv2(np.zeros((4, 4), np.float32), (0, 2))
    with pytest.raises(TypeError, match="numpy array"):
        resize_like_cv2(torch.zeros(4, 4), (2, 2))


def test_hflip_flips_all_together():
    image = torch.arange(2 * 3 * 4).reshape(2, 3, 4)
    mask = image[:1] > 5
    fi, fm = hflip(image, mask)
    assert torch.equal(fi[..., 0], image[..., -1]) and torch.equal(fi[..., -1], image[..., 0])
    assert torch.equal(fm, (fi[:1] > 5))
    assert torch.equal(hflip(fi)[0], image)


def test_to_chw_tensor():
    a = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    t = to_chw_tensor(a)
    assert t.shape == (3, 2, 4) and t[1, 1, 2] == a[1, 2, 1]
    assert to_chw_tensor(a[..., 0]).shape == (1, 2, 4)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        to_chw_tensor(np.zeros(3))
