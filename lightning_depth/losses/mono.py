"""The monocular depth loss of the keras-io example, every constant configurable.

Original (``DepthEstimationModel.calculate_loss``)::

    loss = 0.85 * mean(1 - tf.image.ssim(target, pred, max_val=256, filter_size=7,
                                         k1=0.01**2, k2=0.03**2))
         + 0.1  * mean(|target - pred|)
         + 0.9  * (mean(|dx_pred| e^{mean|dx_target|}) + mean(|dy_pred| e^{mean|dy_target|}))

Quirks of the original, kept by the defaults (``MonoDepthLoss()``) for parity:

- ``max_val=256`` (our ``data_range``) is the image *width*, not the range of the log-depth
  targets (about [0.1, 5.7]), and ``k1=0.01**2``, ``k2=0.03**2`` are squared once more by TF
  (``c = (k * data_range)**2``). The two quirks largely cancel: ``c1, c2 = 6.6e-4, 0.053``,
  near the standard constants for ``data_range = log(300)`` (``3.3e-3, 0.029``).
- the smoothness weights are two scalars for the whole batch, not per-pixel edge weights.
- invalid depth pixels (DIODE's mask) count in every term.

Recommended corrected configuration (``configs/mono/diode_414_corrected.yaml``)::

    MonoDepthLoss(ssim="tf", data_range="log_depth",  # log(300) ~ 5.704, the target range
                  ssim_k1=0.01, ssim_k2=0.03,                 # the standard SSIM constants
                  smoothness="edge_aware", use_mask=True)      # weights 0.85 / 0.1 / 0.9 kept
    DepthAutoencoder(head="linear")                           # or scaled_tanh, max_output=6.0

The term weights are the original's; they were not re-tuned for the corrected terms.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from lightning_depth.encoding import LOG_DEPTH_RANGE
from lightning_depth.losses.smoothness import depth_smoothness_edge_aware, depth_smoothness_faithful
from lightning_depth.losses.ssim import ssim_loss_kornia, ssim_loss_tf

__all__ = ["MonoDepthLoss", "mono_depth_loss"]

_SSIM = ("tf", "kornia")
_SMOOTHNESS = ("faithful", "edge_aware")


#: ``data_range`` names: ``"log_depth"`` is the log-depth targets' range, log(300).
_NAMED_RANGES = {"log_depth": LOG_DEPTH_RANGE}


def resolve_data_range(data_range: Union[float, str]) -> float:
    """SSIM's data range as a number: a float as is, or ``"log_depth"`` (log(300), the
    largest log-depth target; see :mod:`lightning_depth.encoding`)."""
    if isinstance(data_range, str):
        if data_range not in _NAMED_RANGES:
            raise ValueError(
                f"data_range must be a number or one of {sorted(_NAMED_RANGES)}, got {data_range!r}"
            )
        return _NAMED_RANGES[data_range]
    return float(data_range)


def _check_options(ssim: str, smoothness: str) -> None:
    if ssim not in _SSIM:
        raise ValueError(f"ssim must be one of {_SSIM}, got {ssim!r}")
    if smoothness not in _SMOOTHNESS:
        raise ValueError(f"smoothness must be one of {_SMOOTHNESS}, got {smoothness!r}")


def mono_depth_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    image: Optional[torch.Tensor] = None,
    ssim_weight: float = 0.85,
    l1_weight: float = 0.1,
    smoothness_weight: float = 0.9,
    ssim: str = "tf",
    data_range: Union[float, str] = 256.0,
    ssim_k1: float = 0.01**2,
    ssim_k2: float = 0.03**2,
    ssim_window: int = 7,
    smoothness: str = "faithful",
    use_mask: bool = False,
) -> dict[str, torch.Tensor]:
    """Weighted SSIM + L1 + smoothness loss; see :class:`MonoDepthLoss` for the arguments.

    Returns:
        dict of scalars: ``"loss"`` (weighted total) and the unweighted ``"ssim"``, ``"l1"``,
        ``"smoothness"`` terms.
    """
    _check_options(ssim, smoothness)
    for arg, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"mono_depth_loss: {arg} must be a torch.Tensor, got {type(x).__name__}"
            )
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(
                f"mono_depth_loss: {arg} must have shape (B, 1, H, W), got {tuple(x.shape)}"
            )
    if pred.shape != target.shape:
        raise ValueError(
            f"mono_depth_loss: pred and target must have the same shape (B, 1, H, W), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if use_mask and mask is None:
        raise ValueError("mono_depth_loss: use_mask=True needs mask (B, 1, H, W)")
    if smoothness == "edge_aware" and image is None:
        raise ValueError("mono_depth_loss: smoothness='edge_aware' needs image (B, C, H, W)")
    data_range = resolve_data_range(data_range)
    # Without use_mask the mask is ignored: the original counts every pixel.
    mask = mask if use_mask else None

    if ssim == "tf":
        l_ssim = ssim_loss_tf(
            pred, target, data_range, ssim_window, 1.5, ssim_k1, ssim_k2, mask=mask
        )
    else:
        l_ssim = ssim_loss_kornia(pred, target, data_range, ssim_window, mask=mask)

    abs_err = (target - pred).abs()
    if mask is None:
        l1 = abs_err.mean()
    else:
        valid = (mask if mask.dtype == torch.bool else mask != 0).to(abs_err.dtype)
        if valid.shape != abs_err.shape:
            raise ValueError(
                f"mono_depth_loss: mask must have shape {tuple(abs_err.shape)} like pred, got "
                f"{tuple(mask.shape)}"
            )
        l1 = (abs_err * valid).sum() / valid.sum().clamp(min=1.0)

    if smoothness == "faithful":
        l_smooth = depth_smoothness_faithful(pred, target, mask)
    else:
        l_smooth = depth_smoothness_edge_aware(pred, image, mask)

    loss = ssim_weight * l_ssim + l1_weight * l1 + smoothness_weight * l_smooth
    return {"loss": loss, "ssim": l_ssim, "l1": l1, "smoothness": l_smooth}


class MonoDepthLoss(nn.Module):
    """``ssim_weight * SSIM term + l1_weight * L1 + smoothness_weight * smoothness``.

    The defaults are the keras-io example's loss (see the module docstring for its quirks and
    the recommended corrected values).

    Terms:
        - SSIM, ``ssim="tf"``: ``mean(1 - SSIM)`` with ``tf.image.ssim`` semantics
          (:func:`~lightning_depth.losses.ssim.ssim_loss_tf`; "valid" windows,
          ``c = (k * data_range)**2``). ``ssim="kornia"``: kornia's standard SSIM loss
          ``(1 - SSIM) / 2`` (:func:`~lightning_depth.losses.ssim.ssim_loss_kornia`; "same"
          reflect padding, the standard constants 0.01/0.03, so ``ssim_k1``/``ssim_k2`` are
          ignored, sigma 1.5). Note the ``/ 2`` when comparing weights.
        - L1: ``mean(|target - pred|)``.
        - smoothness, ``"faithful"``: the original's target-weighted gradient penalty
          (:func:`~lightning_depth.losses.smoothness.depth_smoothness_faithful`);
          ``"edge_aware"``: image-guided smoothness of the prediction
          (:func:`~lightning_depth.losses.smoothness.depth_smoothness_edge_aware`), needs
          ``image``.

    Masks (``use_mask=True``): L1 is the mean over valid pixels; SSIM the mean over windows
    that lie entirely on valid pixels; smoothness the means over differences between two valid
    pixels. All means are pooled over the batch; a batch without any valid pixel gives 0.
    With ``use_mask=False`` (the original) a mask passed to ``forward`` is ignored.

    Args:
        ssim_weight: weight of the SSIM term (0.85).
        l1_weight: weight of the L1 term (0.1).
        smoothness_weight: weight of the smoothness term (0.9).
        ssim: ``"tf"`` or ``"kornia"``.
        data_range: SSIM dynamic range L; the original's 256 is the image width, corrected:
            ``"log_depth"`` (log(300), the log-depth target range).
        ssim_k1: SSIM k1 (``"tf"`` only); original ``0.01**2``, corrected 0.01.
        ssim_k2: SSIM k2 (``"tf"`` only); original ``0.03**2``, corrected 0.03.
        ssim_window: SSIM window size (7).
        smoothness: ``"faithful"`` or ``"edge_aware"`` (corrected).
        use_mask: count only valid pixels (corrected: True).

    Example:
        >>> loss_fn = MonoDepthLoss()
        >>> pred, target = torch.zeros(2, 1, 32, 32), torch.ones(2, 1, 32, 32)
        >>> round(float(loss_fn(pred, target)["l1"]), 3)
        1.0
    """

    def __init__(
        self,
        ssim_weight: float = 0.85,
        l1_weight: float = 0.1,
        smoothness_weight: float = 0.9,
        ssim: str = "tf",
        data_range: Union[float, str] = 256.0,
        ssim_k1: float = 0.01**2,
        ssim_k2: float = 0.03**2,
        ssim_window: int = 7,
        smoothness: str = "faithful",
        use_mask: bool = False,
    ) -> None:
        super().__init__()
        _check_options(ssim, smoothness)
        self.ssim_weight = ssim_weight
        self.l1_weight = l1_weight
        self.smoothness_weight = smoothness_weight
        self.ssim = ssim
        self.data_range = resolve_data_range(data_range)
        self.ssim_k1 = ssim_k1
        self.ssim_k2 = ssim_k2
        self.ssim_window = ssim_window
        self.smoothness = smoothness
        self.use_mask = use_mask

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        image: Optional[torch.Tensor] = None,
    ) -> dict[str, torch.Tensor]:
        """Args:
            pred: ``(B, 1, H, W)`` predicted log-depth.
            target: ``(B, 1, H, W)`` target log-depth.
            mask: ``(B, 1, H, W)`` bool validity (used only with ``use_mask=True``).
            image: ``(B, C, H, W)`` input image (needed by ``smoothness="edge_aware"``).

        Returns:
            dict of scalars ``"loss"``, ``"ssim"``, ``"l1"``, ``"smoothness"``.
        """
        return mono_depth_loss(
            pred,
            target,
            mask=mask,
            image=image,
            ssim_weight=self.ssim_weight,
            l1_weight=self.l1_weight,
            smoothness_weight=self.smoothness_weight,
            ssim=self.ssim,
            data_range=self.data_range,
            ssim_k1=self.ssim_k1,
            ssim_k2=self.ssim_k2,
            ssim_window=self.ssim_window,
            smoothness=self.smoothness,
            use_mask=self.use_mask,
        )
