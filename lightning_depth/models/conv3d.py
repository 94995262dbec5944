"""AnyNet's 3D convolutions as 2D ones over a depth-major volume.

A ``(B, C, D, H, W)`` cost volume is kept as ``(B * D, C, H, W)`` (depth slices stacked in
the batch dimension) between the layers of :class:`~lightning_depth.models.anynet.CostFilter3d`;
a 3x3x3 convolution is one 2D convolution with the three depth taps as extra output channels,
then a sum of the taps of neighbouring slices (:func:`conv3d_depth_major`). Same numbers as
``nn.Conv3d`` (tests), several times faster on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from lightning_depth.models.tracing import capture_mode

__all__ = ["PreActConv3d", "conv3d_depth_major", "depth_taps"]


class _SumDepthTaps(torch.autograd.Function):
    """``out[d] = taps[d - 1, tap 0] + taps[d, tap 1] + taps[d + 1, tap 2]`` per volume.

    An explicit backward (one gradient buffer, three shifted copies) instead of autograd's
    slice backwards, which zero-fill a full-size buffer per slice: that was ~10% of a training
    step on CPU.
    """

    @staticmethod
    def forward(ctx, taps: torch.Tensor, depth: int) -> torch.Tensor:
        n, c3, h, w = taps.shape
        o = c3 // 3
        t = taps.view(n // depth, depth, 3, o, h, w)
        ctx.depth = depth
        ctx.memory_format = _memory_format(taps)
        out = torch.empty(
            (n, o, h, w), dtype=taps.dtype, device=taps.device, memory_format=ctx.memory_format
        )
        v = out.view(n // depth, depth, o, h, w)
        v.copy_(t[:, :, 1])
        v[:, 1:] += t[:, :-1, 0]
        v[:, :-1] += t[:, 1:, 2]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        n, o, h, w = grad_out.shape
        depth = ctx.depth
        grad = torch.empty(
            (n, 3 * o, h, w),
            dtype=grad_out.dtype,
            device=grad_out.device,
            memory_format=ctx.memory_format,
        )
        gv = grad.view(n // depth, depth, 3, o, h, w)
        g = grad_out.reshape(n // depth, depth, o, h, w)
        gv[:, :, 1] = g
        gv[:, :-1, 0] = g[:, 1:]
        gv[:, -1, 0] = 0
        gv[:, 1:, 2] = g[:, :-1]
        gv[:, 0, 2] = 0
        return grad, None


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def conv3d_depth_major(x: torch.Tensor, weight: torch.Tensor, depth: int) -> torch.Tensor:
    """3x3x3 convolution (stride 1, zero padding 1, no bias) of a depth-major volume.

    Equals ``F.conv3d`` on ``(B, C, D, H, W)``, but takes and returns the volume as
    ``(B * D, C, H, W)`` (depth slices stacked in the batch dimension) and runs as one 2D
    convolution with the three depth taps as extra output channels, then adds the taps of the
    neighbouring slices. Why: on CPU, ``F.conv3d`` sends batch-1 volumes to a slow im2col path
    (oneDNN is used only above a size heuristic), 20-40x slower than this at AnyNet's sizes;
    2D convolutions with a batch > 1 always reach oneDNN. Channels-last ``x`` (as
    :class:`CostFilter3d` passes it) stays channels-last.

    Args:
        x: ``(B * D, C, H, W)`` volume, depth-major.
        weight: ``(O, C, 3, 3, 3)`` ``nn.Conv3d`` weight.
        depth: ``D``.

    Returns:
        ``(B * D, O, H, W)``.
    """
    n, c, h, w = x.shape
    o = weight.shape[0]
    if weight.shape[1:] != (c, 3, 3, 3) or n % depth:
        raise ValueError(
            f"conv3d_depth_major: need x (B * D, C, H, W) with D = {depth} and weight "
            f"(O, C, 3, 3, 3), got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    if c == 1:
        # One input channel: the depth slices become the input channels of a 2D convolution
        # with a banded weight (output slice d sees input slices d-1..d+1). It writes the
        # depth-major output directly, and oneDNN handles it 2-3x faster (forward and
        # backward) than a convolution with one input channel.
        out = F.conv2d(x.reshape(n // depth, depth, h, w), _banded_weight(weight, depth), padding=1)
        return out.view(n, o, h, w)
    taps = depth_taps(x, weight)
    if capture_mode() is not None:
        return _sum_depth_taps(taps, depth)
    return _SumDepthTaps.apply(taps, depth)


def depth_taps(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The 2D convolution of :func:`conv3d_depth_major` before the tap sum.

    Args:
        x: ``(B * D, C, H, W)`` volume, depth-major.
        weight: ``(O, C, 3, 3, 3)`` ``nn.Conv3d`` weight.

    Returns:
        ``(B * D, 3 * O, H, W)``: output channel block ``k`` holds depth tap ``k``.
    """
    o, c = weight.shape[:2]
    # (O, C, kd, kh, kw) -> (kd * O, C, kh, kw)
    return F.conv2d(x, weight.permute(2, 0, 1, 3, 4).reshape(3 * o, c, 3, 3), padding=1)


def _sum_depth_taps(taps: torch.Tensor, depth: int) -> torch.Tensor:
    """:class:`_SumDepthTaps`' forward without in-place updates, for graph capture (an
    in-place slice update becomes a scatter node in an exported graph)."""
    n, c3, h, w = taps.shape
    t = taps.reshape(n // depth, depth, 3, c3 // 3, h, w)
    zero = torch.zeros_like(t[:, :1, 0])
    above = torch.cat([zero, t[:, :-1, 0]], 1)  # out[d] += taps[d - 1, tap 0]
    below = torch.cat([t[:, 1:, 2], zero], 1)  # out[d] += taps[d + 1, tap 2]
    return (t[:, :, 1] + above + below).reshape(n, c3 // 3, h, w)


def _banded_weight(weight: torch.Tensor, depth: int) -> torch.Tensor:
    """``(O, 1, 3, 3, 3)`` -> ``(D * O, D, 3, 3)`` with ``[d * O + o, d + k - 1] = weight[o, 0, k]``."""
    o = weight.shape[0]
    band = weight.new_zeros(depth, o, depth + 2, 3, 3)
    for d in range(depth):
        band[d, :, d : d + 3] = weight[:, 0]
    return band[:, :, 1 : depth + 1].reshape(depth * o, depth, 3, 3)


class PreActConv3d(nn.Module):
    """BatchNorm - ReLU - Conv3d (3x3x3, no bias) (the original ``batch_relu_conv3d``).

    ``forward`` takes ``(B, C, D, H, W)``; :class:`CostFilter3d` calls
    :meth:`forward_depth_major` to keep the volume as ``(B * D, C, H, W)`` between layers.
    ``bn`` is a ``BatchNorm2d`` applied to that depth-major layout: it computes the same
    statistics as the original's ``BatchNorm3d`` on ``(B, C, D, H, W)`` and has the same
    parameters, buffers and state-dict keys.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False)

    def forward_depth_major(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        """``(B * D, C, H, W)`` -> ``(B * D, O, H, W)``."""
        x = F.relu(self.bn(x), inplace=True)
        if x.shape[1] > 1:
            # oneDNN's channels-last kernels are 1.5-3x faster than NCHW ones for these few
            # channels, backward more so (measured on CPU).
            x = x.contiguous(memory_format=torch.channels_last)
        return conv3d_depth_major(x, self.conv.weight, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, D, H, W)`` -> ``(B, O, D, H, W)``."""
        b, c, d, h, w = x.shape
        x = x.transpose(1, 2).reshape(b * d, c, h, w)
        out = self.forward_depth_major(x, d)
        return out.reshape(b, d, -1, h, w).transpose(1, 2)
