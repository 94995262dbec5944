"""The U-Net style depth autoencoder of the keras-io "Monocular Depth Estimation" example.

A PyTorch port of ``DepthEstimationModel`` in keras-team/keras-io
``examples/vision/depth_estimation.py``: residual down blocks, a plain bottleneck, up blocks
with skip concatenation and a 1x1 head. Submodule names are fixed (``down``, ``bottleneck``,
``up``, ``head`` and ``conv_a``/``bn_a``/``conv_b``/``bn_b`` inside blocks) because the Keras
weight converter matches on them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BottleneckBlock",
    "KerasBatchNorm2d",
    "DepthAutoencoder",
    "DownBlock",
    "UpBlock",
    "count_parameters",
    "make_activation",
    "optimize_for_cpu",
    "upsample_nearest_2x",
]

_ACTIVATIONS = ("leaky_relu", "swish")
_HEADS = ("tanh", "linear", "scaled_tanh")

# Keras BatchNormalization defaults: epsilon=1e-3 and a moving average with momentum 0.99,
# which is PyTorch's momentum 1 - 0.99 (PyTorch weighs the *new* batch statistic).
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def make_activation(name: str) -> nn.Module:
    """The block activation: ``"leaky_relu"`` (negative slope 0.2, as Keras' LeakyReLU(0.2))
    or ``"swish"`` (SiLU, ``x * sigmoid(x)``)."""
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "swish":
        return nn.SiLU()
    raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {name!r}")


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    # padding=1 on a 3x3 stride-1 kernel is Keras' padding="same" (symmetric for odd kernels).
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=True)


class KerasBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose running variance averages the *biased* batch variance.

    Both frameworks normalise a training batch with its biased variance, but PyTorch feeds
    the unbiased one (``var * n / (n - 1)``, ``n = B * H * W``) into the running average and
    Keras the biased one. The difference is small at 256x256 but large on the deep, small
    feature maps of tiny test inputs, and it shows in eval mode after training; this layer
    follows Keras. It rescales PyTorch's update in place (O(C) work, no extra pass over the
    activations), so ``num_batches_tracked``, ``SyncBatchNorm`` conversion and state dicts
    are unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.track_running_stats and self.momentum is not None):
            return super().forward(x)
        self._check_input_dim(x)
        self.num_batches_tracked.add_(1)
        n = x.numel() // x.shape[1]
        # The kernel updates this copy, (1 - m) old + m v n / (n - 1); autograd keeps it, so
        # the buffer itself is what gets rewritten below.
        updated_var = self.running_var.clone()
        out = F.batch_norm(
            x, self.running_mean, updated_var, self.weight, self.bias, True, self.momentum, self.eps
        )
        with torch.no_grad():
            keep = (1.0 - self.momentum) * self.running_var
            self.running_var.copy_(keep + (updated_var - keep) * ((n - 1) / n))
        return out


def _bn(channels: int) -> nn.BatchNorm2d:
    return KerasBatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def upsample_nearest_2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling (Keras' ``UpSampling2D((2, 2))``), ``(B, C, H, W) ->
    (B, C, 2H, 2W)``, keeping the memory format of ``x``.

    Eager mode calls ``F.interpolate(x, scale_factor=2, mode="nearest")``. Under
    ``torch.compile`` the same values come from a broadcast and a reshape, whose gradient is a
    plain sum over each 2x2 block: inductor (CPU) lowers the gradient of ``interpolate`` to a
    serial scatter-add loop, which took about a third of the element-wise time of the
    compiled training step. The gradients agree up to float rounding.
    """
    if not torch.compiler.is_compiling():
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return _upsample_nearest_2x_broadcast(x)


def _upsample_nearest_2x_broadcast(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # Repeat in the (B, H, W, C) view so the result stays channels-last.
        nhwc = x.permute(0, 2, 3, 1)
        up = nhwc[:, :, None, :, None, :].expand(b, h, 2, w, 2, c).reshape(b, 2 * h, 2 * w, c)
        return up.permute(0, 3, 1, 2)
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


class DownBlock(nn.Module):
    """Residual down block: ``conv_a -> bn_a -> act -> conv_b -> bn_b -> act``, plus the raw
    output of ``conv_a`` (before its BN) as a residual, then a 2x2 max pool.

    Args:
        in_channels: input channels.
        out_channels: filters of both convolutions.
        activation: ``"leaky_relu"`` or ``"swish"``.

    Returns (forward):
        ``(skip, pooled)``: ``(B, out, H, W)`` and ``(B, out, H/2, W/2)``.
    """

    def __init__(
        self, in_channels: int = 3, out_channels: int = 16, activation: str = "leaky_relu"
    ) -> None:
        super().__init__()
        self.conv_a = _conv3x3(in_channels, out_channels)
        self.bn_a = _bn(out_channels)
        self.conv_b = _conv3x3(out_channels, out_channels)
        self.bn_b = _bn(out_channels)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.conv_a(x)
        x = self.act(self.bn_a(d))
        x = self.act(self.bn_b(self.conv_b(x)))
        skip = x + d
        return skip, F.max_pool2d(skip, kernel_size=2, stride=2)


class BottleneckBlock(nn.Module):
    """Bottleneck: ``conv_a -> act -> conv_b -> act`` (no batch norm).

    Args:
        in_channels: input channels.
        out_channels: filters of both convolutions.
        activation: ``"leaky_relu"`` or ``"swish"``.
    """

    def __init__(
        self, in_channels: int = 128, out_channels: int = 256, activation: str = "leaky_relu"
    ) -> None:
        super().__init__()
        self.conv_a = _conv3x3(in_channels, out_channels)
        self.conv_b = _conv3x3(out_channels, out_channels)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_b(self.act(self.conv_a(x))))


class UpBlock(nn.Module):
    """Up block: nearest 2x upsample, concatenate ``[upsampled, skip]`` on channels, then
    ``conv_a -> bn_a -> act -> conv_b -> bn_b -> act``.

    Args:
        in_channels: channels of the upsampled input plus channels of the skip.
        out_channels: filters of both convolutions.
        activation: ``"leaky_relu"`` or ``"swish"``.

    Returns (forward):
        ``(B, out, 2h, 2w)`` for inputs ``x (B, c, h, w)`` and ``skip (B, s, 2h, 2w)``.
    """

    def __init__(
        self, in_channels: int = 384, out_channels: int = 128, activation: str = "leaky_relu"
    ) -> None:
        super().__init__()
        self.conv_a = _conv3x3(in_channels, out_channels)
        self.bn_a = _bn(out_channels)
        self.conv_b = _conv3x3(out_channels, out_channels)
        self.bn_b = _bn(out_channels)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = upsample_nearest_2x(x)
        x = torch.cat([x, skip], dim=1)
        x = self.act(self.bn_a(self.conv_a(x)))
        return self.act(self.bn_b(self.conv_b(x)))


class DepthAutoencoder(nn.Module):
    """Monocular depth autoencoder (keras-io ``DepthEstimationModel``): image -> log-depth.

    Filters are ``16 * 2**i`` for the ``depth`` down/up levels and ``16 * 2**depth`` in the
    bottleneck: ``depth=4`` is the paper's 4-1-4 net (16-32-64-128, bottleneck 256,
    1,966,465 values of which 1,964,545 trainable) and ``depth=3`` the 3-1-3 net (16-32-64,
    bottleneck 128, 489,089 values), counted like Keras' "Total params" (parameters plus BN
    running mean and variance, see :func:`count_parameters`).

    Heads:
        - ``"tanh"`` (faithful default): ``tanh(conv1x1(x))``, as the original. Its output
          lies in (-1, 1), but the targets are log-depth in [0.1, log(300) ~ 5.7], so most of
          the target range is out of reach (keras-io issue 1338).
        - ``"linear"``: ``conv1x1(x)``, no activation; the recommended corrected head.
        - ``"scaled_tanh"``: ``max_output * tanh(conv1x1(x))``, bounded but able to reach the
          targets with e.g. ``max_output=6.0`` (just above log(300)).

    Args:
        depth: number of down (and up) levels, >= 1; H and W must be multiples of
            ``2**depth``.
        activation: ``"leaky_relu"`` (negative slope 0.2, the original) or ``"swish"`` (SiLU).
        in_channels: input channels (3 for RGB).
        head: ``"tanh"``, ``"linear"`` or ``"scaled_tanh"``, see above.
        max_output: output scale of the ``"scaled_tanh"`` head (ignored by the others).

    Shapes:
        ``(B, in_channels, H, W) -> (B, 1, H, W)``.

    Example:
        >>> net = DepthAutoencoder(depth=3).eval()
        >>> net(torch.rand(2, 3, 32, 64)).shape
        torch.Size([2, 1, 32, 64])
    """

    def __init__(
        self,
        depth: int = 4,
        activation: str = "leaky_relu",
        in_channels: int = 3,
        head: str = "tanh",
        max_output: float = 1.0,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        if head not in _HEADS:
            raise ValueError(f"head must be one of {_HEADS}, got {head!r}")
        if head == "scaled_tanh" and not max_output > 0:
            raise ValueError(f"max_output must be > 0 for the scaled_tanh head, got {max_output}")
        self.depth = depth
        self.in_channels = in_channels
        self.head_type = head
        self.max_output = float(max_output)

        filters = [16 * 2**i for i in range(depth + 1)]
        down_in = [in_channels, *filters[: depth - 1]]
        self.down = nn.ModuleList(
            [DownBlock(c_in, c_out, activation) for c_in, c_out in zip(down_in, filters[:depth])]
        )
        self.bottleneck = BottleneckBlock(filters[depth - 1], filters[depth], activation)
        # up[0] is the deepest: it takes the bottleneck output and the deepest skip.
        self.up = nn.ModuleList(
            [
                UpBlock(filters[i + 1] + filters[i], filters[i], activation)
                for i in reversed(range(depth))
            ]
        )
        self.head = nn.Conv2d(filters[0], 1, kernel_size=1)

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (``2**depth``)."""
        return 2**self.depth

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"DepthAutoencoder expects images of shape (B, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(
                f"DepthAutoencoder(depth={self.depth}) needs H and W divisible by 2**depth = {m} "
                f"(e.g. 256x256 or {m}x{2 * m}), got H={h}, W={w}; resize or pad the input to a "
                f"multiple of {m}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args:
            x: images ``(B, in_channels, H, W)``, H and W multiples of ``2**depth``.

        Returns:
            log-depth ``(B, 1, H, W)``.
        """
        self._check_input(x)
        skips = []
        for block in self.down:
            skip, x = block(x)
            skips.append(skip)
        x = self.bottleneck(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = block(x, skip)
        x = self.head(x)
        if self.head_type == "tanh":
            return torch.tanh(x)
        if self.head_type == "scaled_tanh":
            return self.max_output * torch.tanh(x)
        return x


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of values in a model, counted like Keras' ``model.summary()``.

    Args:
        model: any module.
        trainable_only: count only parameters with ``requires_grad`` (Keras' "Trainable
            params"); otherwise count every parameter plus the running mean and variance of
            each batch norm layer (Keras' "Total params"; ``num_batches_tracked`` has no Keras
            counterpart and is left out).

    Returns:
        the count, e.g. 1,966,465 (1,964,545 trainable) for ``DepthAutoencoder(depth=4)``.
    """
    if trainable_only:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            total += module.running_mean.numel() + module.running_var.numel()
    return total


def optimize_for_cpu(
    model: nn.Module, channels_last: bool = True, compile: bool = False
) -> nn.Module:
    """Speed-ups for CPU training and inference that keep the numerics of the network.

    - ``channels_last``: convert weights to the channels-last (NHWC) memory format, which
      oneDNN convolutions, batch norm and pooling use without reordering every tensor. Feed
      inputs with ``x.contiguous(memory_format=torch.channels_last)`` too (the
      ``MonoDepthModule(channels_last=True)`` option does both). Results equal the default
      layout up to float rounding.
    - ``compile``: wrap in ``torch.compile`` (inductor; on CPU it needs a C++ compiler). It
      fuses batch norm, activations, residual adds and concatenations into a few loops (and
      :func:`upsample_nearest_2x` switches to a form whose gradient compiles well). The first
      step compiles (about 20-60 s for the 4-1-4 net).

    Outside this function: ``torch.optim.Adam(..., fused=True)``, and on a CPU shared with
    other processes ``export OMP_WAIT_POLICY=PASSIVE`` before starting Python (OpenMP threads
    then sleep instead of spinning while they wait). ``benchmarks/bench_mono.py`` measures
    each of these (4-1-4, batch 8, 256x256, 2 shared cores, step FLOP/s over matmul FLOP/s):
    plain eager about 0.4, with all of them about 0.75.

    Args:
        model: the network (modified in place by ``channels_last``).
        channels_last: convert to channels-last.
        compile: return ``torch.compile(model)``.

    Returns:
        the model, or its compiled wrapper (which shares the parameters).
    """
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model)
    return model
