"""SSIM with ``tf.image.ssim`` semantics, kornia's standard SSIM loss, and optional masks.

The keras-io depth example trains with ``1 - tf.image.ssim(target, pred, max_val=256,
filter_size=7, k1=0.01**2, k2=0.03**2)``. :func:`ssim_tf` reproduces TensorFlow's computation
step by step (``_fspecial_gauss``, ``_ssim_helper`` and ``_ssim_per_channel`` in
``tensorflow/python/ops/image_ops_impl.py``):

- window: a ``filter_size x filter_size`` Gaussian (``filter_sigma``) normalised to sum 1;
- ``reducer``: a per-channel ("depthwise") correlation with the window, "valid" only, so the
  SSIM map is ``(H - filter_size + 1) x (W - filter_size + 1)``;
- with ``c1 = (k1 * data_range)**2`` and ``c2 = (k2 * data_range)**2`` (``compensation = 1``)::

      mu_x, mu_y = reducer(x), reducer(y)
      luminance  = (2 mu_x mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
      cs         = (2 reducer(x y) - 2 mu_x mu_y + c2)
                   / (reducer(x**2 + y**2) - (mu_x**2 + mu_y**2) + c2)
      ssim       = mean over H, W, then over channels, of luminance * cs.

Masks: a window counts only when every pixel under it is valid (the mask eroded by the
window), so invalid pixels never enter a counted window and get no gradient; the counted
windows are averaged.
"""

from __future__ import annotations

from typing import Optional

import kornia
import torch
import torch.nn.functional as F
from kornia.filters import filter2d
from torch import nn

__all__ = [
    "SSIMLossTF",
    "gaussian_window_tf",
    "masked_mean",
    "ssim_loss_kornia",
    "ssim_loss_tf",
    "ssim_tf",
    "ssim_tf_map",
    "window_validity",
]


def _check_pair(img1: torch.Tensor, img2: torch.Tensor, min_size: int, name: str) -> None:
    for arg, x in (("img1", img1), ("img2", img2)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"{name}: {arg} must have shape (B, C, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{name}: {arg} must be a floating point tensor, got {x.dtype}")
    if img1.shape != img2.shape:
        raise ValueError(
            f"{name}: img1 and img2 must have the same shape (B, C, H, W), got "
            f"{tuple(img1.shape)} and {tuple(img2.shape)}"
        )
    h, w = img1.shape[-2:]
    if h < min_size or w < min_size:
        raise ValueError(
            f"{name}: images must be at least {min_size}x{min_size} (the SSIM window), got "
            f"H={h}, W={w}"
        )


def check_mask(mask: torch.Tensor, like: torch.Tensor, name: str) -> torch.Tensor:
    """Validate a (B, 1 or C, H, W) mask and return it as bool."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}: mask must be a torch.Tensor, got {type(mask).__name__}")
    b, c, h, w = like.shape
    if (
        mask.ndim != 4
        or mask.shape[0] != b
        or mask.shape[1] not in (1, c)
        or mask.shape[-2:] != (h, w)
    ):
        raise ValueError(
            f"{name}: mask must have shape ({b}, 1, {h}, {w}) or ({b}, {c}, {h}, {w}) like the "
            f"images, got {tuple(mask.shape)}"
        )
    return mask if mask.dtype == torch.bool else mask != 0


def gaussian_window_tf(
    size: int,
    sigma: float,
    device: Optional[torch.device] = None,
    dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """TensorFlow's ``_fspecial_gauss``: a ``(size, size)`` Gaussian normalised to sum 1.

    Built by hand as TF does (a softmax of ``-(x**2 + y**2) / (2 sigma**2)``) rather than with
    ``kornia.filters.get_gaussian_kernel2d``: kornia's outer product of two normalised 1-D
    windows differs from TF's by float rounding, and it refuses even sizes, which TF accepts.

    Returns:
        ``(size, size)`` window.
    """
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2.0
    g = coords.square() * (-0.5 / sigma**2)
    g = (g[None, :] + g[:, None]).reshape(-1)
    return torch.softmax(g, dim=0).reshape(size, size)


def ssim_tf_map(
    img1: torch.Tensor,
    img2: torch.Tensor,
    data_range: float,
    filter_size: int = 7,
    filter_sigma: float = 1.5,
    k1: float = 0.01**2,
    k2: float = 0.03**2,
) -> torch.Tensor:
    """The SSIM map of ``tf.image.ssim(..., return_index_map=True)``, channels kept.

    Half precision inputs are computed in float32 (with autocast off): the variance terms
    subtract nearly equal numbers and lose every digit in bfloat16.

    Args:
        img1: ``(B, C, H, W)`` floating images, H and W >= ``filter_size``.
        img2: ``(B, C, H, W)``, same shape.
        data_range: the dynamic range L of the images (sets ``c1 = (k1 L)**2``, ``c2 = (k2 L)**2``).
        filter_size: window size.
        filter_sigma: window standard deviation.
        k1: luminance constant (the keras-io example passes ``0.01**2``; TF's default is 0.01).
        k2: contrast constant (the example passes ``0.03**2``; TF's default is 0.03).

    Returns:
        ``(B, C, H - filter_size + 1, W - filter_size + 1)`` map of ``luminance * cs``.
    """
    _check_pair(img1, img2, filter_size, "ssim_tf")
    if not data_range > 0:
        raise ValueError(f"ssim_tf: data_range must be > 0, got {data_range}")
    if img1.dtype in (torch.float16, torch.bfloat16):
        img1 = img1.float()
    if img2.dtype in (torch.float16, torch.bfloat16):
        img2 = img2.float()
    img2 = img2.to(img1.dtype)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    channels = img1.shape[1]
    window = gaussian_window_tf(filter_size, filter_sigma, device=img1.device, dtype=img1.dtype)
    with torch.autocast(device_type=img1.device.type, enabled=False):
        # TF's four reductions, done in one depthwise correlation over stacked channels.
        stacked = torch.cat([img1, img2, img1 * img2, img1.square() + img2.square()], dim=1)
        reduced = filter2d(stacked, window[None], padding="valid")
    mean0, mean1, mean_xy, mean_sq = reduced.split(channels, dim=1)
    num0 = mean0 * mean1 * 2.0
    den0 = mean0.square() + mean1.square()
    luminance = (num0 + c1) / (den0 + c1)
    num1 = mean_xy * 2.0
    cs = (num1 - num0 + c2) / (mean_sq - den0 + c2)
    return luminance * cs


def window_validity(mask: torch.Tensor, filter_size: int, padding: str = "valid") -> torch.Tensor:
    """Which SSIM windows lie entirely on valid pixels (the mask eroded by the window).

    Args:
        mask: ``(B, C, H, W)`` bool, True where valid.
        filter_size: window size.
        padding: ``"valid"`` (windows fully inside the image, TF's map) or ``"same"`` (one
            window per pixel; pixels outside the image count as valid, which is exact for
            kornia's reflect padding since the reflected pixels lie inside the same window).

    Returns:
        ``(B, C, H', W')`` float, 1.0 where the window is fully valid, the map's size.
    """
    invalid = (~mask).to(torch.float32)
    pad = filter_size // 2 if padding == "same" else 0
    return 1.0 - F.max_pool2d(invalid, kernel_size=filter_size, stride=1, padding=pad)


def masked_mean(
    values: torch.Tensor, weights: torch.Tensor, dims: Optional[tuple[int, ...]] = None
) -> torch.Tensor:
    """``sum(values * weights) / sum(weights)`` over ``dims`` (all if None); where the weights
    sum to zero the result is 0 for the pooled mean (keeping the graph) and NaN per sample."""
    weights = weights.to(values.dtype)
    if dims is None:
        total = weights.sum()
        # clamp keeps 0/0 out of the graph; a zero total gives 0 with zero gradient.
        return (values * weights).sum() / total.clamp(min=1.0)
    total = weights.sum(dim=dims)
    out = (values * weights).sum(dim=dims) / total.clamp(min=1.0)
    return torch.where(total > 0, out, torch.full_like(out, float("nan")))


def ssim_tf(
    img1: torch.Tensor,
    img2: torch.Tensor,
    data_range: float,
    filter_size: int = 7,
    filter_sigma: float = 1.5,
    k1: float = 0.01**2,
    k2: float = 0.03**2,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Per-image SSIM exactly as ``tf.image.ssim`` (see the module docstring for the formula).

    Args:
        img1: ``(B, C, H, W)`` images (channels first; TF's are channels last).
        img2: ``(B, C, H, W)``.
        data_range: dynamic range L.
        filter_size: window size (TF's default 11; the example uses 7).
        filter_sigma: window standard deviation.
        k1: luminance constant; the default ``0.01**2`` is the example's (squared) value.
        k2: contrast constant; the default ``0.03**2`` is the example's (squared) value.
        mask: optional ``(B, 1 or C, H, W)`` validity mask; then each image's SSIM is the mean
            over windows lying entirely on valid pixels (NaN if it has none).

    Returns:
        ``(B,)`` SSIM per image.

    Example:
        >>> x = torch.rand(2, 1, 16, 16)
        >>> ssim_tf(x, x, data_range=1.0)
        tensor([1., 1.])
    """
    ssim_map = ssim_tf_map(img1, img2, data_range, filter_size, filter_sigma, k1, k2)
    if mask is None:
        return ssim_map.mean(dim=(-2, -1)).mean(dim=-1)
    valid = window_validity(check_mask(mask, img1, "ssim_tf"), filter_size)
    return masked_mean(ssim_map, valid.expand_as(ssim_map), dims=(1, 2, 3))


def ssim_loss_tf(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    filter_size: int = 7,
    filter_sigma: float = 1.5,
    k1: float = 0.01**2,
    k2: float = 0.03**2,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``mean(1 - ssim_tf(target, pred))``, the keras-io example's SSIM term.

    Args:
        pred: ``(B, C, H, W)`` prediction.
        target: ``(B, C, H, W)`` target.
        data_range, filter_size, filter_sigma, k1, k2: as :func:`ssim_tf`.
        mask: optional ``(B, 1 or C, H, W)`` mask; then the mean of ``1 - SSIM`` over all
            windows of the batch that lie entirely on valid pixels (0 if there are none).

    Returns:
        scalar loss.
    """
    # The original calls tf.image.ssim(target, pred): keep the argument order for parity.
    if mask is None:
        return (1.0 - ssim_tf(target, pred, data_range, filter_size, filter_sigma, k1, k2)).mean()
    ssim_map = ssim_tf_map(target, pred, data_range, filter_size, filter_sigma, k1, k2)
    valid = window_validity(check_mask(mask, pred, "ssim_loss_tf"), filter_size)
    return masked_mean(1.0 - ssim_map, valid.expand_as(ssim_map))


def ssim_loss_kornia(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = 7,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """kornia's standard SSIM loss ``clamp((1 - SSIM) / 2, 0, 1)`` (``kornia.losses.ssim_loss``).

    Standard constants ``c1 = (0.01 L)**2``, ``c2 = (0.03 L)**2``, sigma 1.5 and "same"
    (reflect) padding. Note the ``/ 2``: this is the Monodepth convention, half of ``1 - SSIM``.

    Args:
        pred: ``(B, C, H, W)``.
        target: ``(B, C, H, W)``.
        data_range: dynamic range L.
        window_size: odd window size.
        mask: optional ``(B, 1 or C, H, W)`` mask; then the mean over pixels whose window lies
            entirely on valid pixels (0 if there are none).

    Returns:
        scalar loss.
    """
    _check_pair(pred, target, window_size // 2 + 1, "ssim_loss_kornia")
    if mask is None:
        return kornia.losses.ssim_loss(pred, target, window_size, max_val=float(data_range))
    valid = window_validity(check_mask(mask, pred, "ssim_loss_kornia"), window_size, padding="same")
    loss_map = kornia.losses.ssim_loss(
        pred, target, window_size, max_val=float(data_range), reduction="none"
    )
    return masked_mean(loss_map, valid.expand_as(loss_map))


class SSIMLossTF(nn.Module):
    """Module form of :func:`ssim_loss_tf`: ``mean(1 - tf.image.ssim(target, pred))``.

    Args:
        data_range: dynamic range L (the example uses 256, the image width).
        filter_size: window size.
        filter_sigma: window standard deviation.
        k1: luminance constant (example: ``0.01**2``).
        k2: contrast constant (example: ``0.03**2``).
    """

    def __init__(
        self,
        data_range: float = 256.0,
        filter_size: int = 7,
        filter_sigma: float = 1.5,
        k1: float = 0.01**2,
        k2: float = 0.03**2,
    ) -> None:
        super().__init__()
        self.data_range = data_range
        self.filter_size = filter_size
        self.filter_sigma = filter_sigma
        self.k1 = k1
        self.k2 = k2

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return ssim_loss_tf(
            pred,
            target,
            self.data_range,
            self.filter_size,
            self.filter_sigma,
            self.k1,
            self.k2,
            mask,
        )
