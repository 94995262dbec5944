"""AnyNet: anytime stereo disparity estimation (Wang et al., ICRA 2019).

A port of mileyan/AnyNet (``models/anynet.py``, ``models/submodules.py``) that runs on any
device and dtype: the SPN is :func:`~lightning_depth.models.spn.spn_left_to_right` instead of
a compiled CUDA extension, and no tensor is created on a fixed device.

Pipeline for a ``(B, 3, H, W)`` pair, ``H`` and ``W`` multiples of 16:

1. a small U-Net gives features at 1/16, 1/8 and 1/4 resolution (shared by both views);
2. stage 1: full L1 cost volume over ``maxdisplist[0]`` disparities at 1/16, a 3D network,
   ``softmax(-cost)`` regression, bilinear upsampling to full resolution (disparity scaled);
3. stages 2 and 3: residual cost volume over ``-(m-1) .. m-1`` around the previous estimate at
   1/8 and 1/4, the same head; the residual is added to the previous full-resolution estimate;
4. stage 4 (``spn_channels > 0``): spatial propagation of the stage-3 estimate at 1/4,
   gated by features of the left image.

Every stage returns a full-resolution ``(B, 1, H, W)`` disparity; ``stages=k`` stops after k.

CPU inference (eval mode, no gradients, float32/float64, eager) uses the C kernels of
:mod:`~lightning_depth.models.native` for the steps oneDNN handles poorly (the convolutions with
few output channels, the 3D layers' depth-tap sums with the next batch norm and ReLU, the 2x2
max pooling, the resizes, the SPN with its gate normalisation, and the gate network's 16-channel
convolutions by Winograd's algorithm): 1.7x faster at 384 x 1248, equal to the PyTorch forms
to float rounding (tests). Training, export, tracing, ``torch.compile``, other
devices and ``native.kernels_enabled(False)`` use the PyTorch forms (training keeps the SPN's
C kernels, forward and backward, by default).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_depth.models import native
from lightning_depth.models.conv3d import PreActConv3d, conv3d_depth_major, depth_taps
from lightning_depth.models.cost_volume import full_cost_volume, residual_cost_volume
from lightning_depth.models.spn import SPN_BACKENDS, spn_left_to_right

__all__ = [
    "AnyNet",
    "CostFilter3d",
    "PreActConv2d",
    "PreActConv3d",
    "SPNRefinement",
    "UNetFeatureExtractor",
    "conv3d_depth_major",
    "disparity_regression",
]


def float32_region(like: torch.Tensor) -> torch.autocast:
    """A region where autocast is off, for numerically sensitive steps (the inputs must be
    cast with :func:`full_precision` inside it)."""
    return torch.autocast(device_type=like.device.type, enabled=False)


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is half precision; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class PreActConv2d(nn.Module):
    """BatchNorm - ReLU - Conv2d without bias (the original ``preconv2d``).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: convolution stride (kernel 3, padding 1).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv.padding == (1, 1) and _frozen(self.bn):
            # Few output channels (the U-Net's with init_channels=1): the C kernel, with the
            # batch norm and ReLU applied to its input rows (inference on CPU; see
            # models.native).
            library = native.conv3x3_kernels(self.conv.weight, x)
            if library is not None:
                scale, shift = native.batch_norm_affine(self.bn)
                return native.conv3x3(
                    library, x, self.conv.weight, None, self.conv.stride[0], scale, shift
                )
        return self.conv(F.relu(self.bn(x), inplace=True))


def _frozen(bn: nn.Module) -> bool:
    """Whether a batch norm normalises with its running statistics (eval mode)."""
    return not bn.training and bn.running_mean is not None


class _DownBlock(nn.Module):
    """Max-pool by 2, then ``num_convs`` pre-activation convolutions."""

    def __init__(self, in_channels: int, out_channels: int, num_convs: int) -> None:
        super().__init__()
        layers = [
            PreActConv2d(in_channels if i == 0 else out_channels, out_channels)
            for i in range(num_convs)
        ]
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        library = native.inference_kernels(x)
        if library is not None:
            return self.convs(native.max_pool2x2(library, x))
        return self.convs(F.max_pool2d(x, 2, 2))


class _UpBlock(nn.Module):
    """Upsample the coarse map by 2 (bilinear, corners aligned), concatenate after the skip,
    two pre-activation convolutions (the original ``unetUp`` with ``is_deconv=False``)."""

    def __init__(self, skip_channels: int, coarse_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            PreActConv2d(skip_channels + coarse_channels, out_channels),
            PreActConv2d(out_channels, out_channels),
        )

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        # nn.UpsamplingBilinear2d, which the original uses here, always aligns corners. The
        # original also crops odd sizes; AnyNet's inputs are multiples of 16, so none occur.
        up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=True)
        return self.convs(torch.cat([skip, up], 1))


class UNetFeatureExtractor(nn.Module):
    """AnyNet's 2D U-Net (the original ``feature_extraction_conv``).

    With ``c = init_channels``: a 3x3 convolution (with bias) and a stride-2 pre-activation
    convolution to 1/2, three down blocks (max-pool + ``nblocks`` convolutions) to 1/4, 1/8,
    1/16 with ``2c, 4c, 8c`` channels, and two up blocks back to 1/8 (``4c``) and 1/4
    (``2c``).

    Args:
        init_channels: ``c`` above.
        nblocks: convolutions per down block.
    """

    def __init__(self, init_channels: int = 1, nblocks: int = 2) -> None:
        super().__init__()
        c = init_channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1), PreActConv2d(c, c, stride=2))
        self.encoder = nn.ModuleList(
            [
                _DownBlock(c, 2 * c, nblocks),
                _DownBlock(2 * c, 4 * c, nblocks),
                _DownBlock(4 * c, 8 * c, nblocks),
            ]
        )
        self.decoder = nn.ModuleList([_UpBlock(4 * c, 8 * c, 4 * c), _UpBlock(2 * c, 4 * c, 2 * c)])
        self.out_channels = (8 * c, 4 * c, 2 * c)

    def encode(self, *views: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features ``[1/16, 1/8, 1/4]`` (before the decoder) of the ``(B, 3, H, W)``
        views, stacked along the batch dimension (one pass, as for ``torch.cat(views)``)."""
        stem = self.stem[0]
        library = native.conv3x3_kernels(stem.weight, *views)
        if library is not None:
            # With few output channels, oneDNN runs at a few GFLOP/s in either layout; the C
            # kernel reads each NCHW view directly into its slice of the batch (inference on
            # CPU; see models.native).
            sizes = [v.shape[0] for v in views]
            x = views[0].new_empty((sum(sizes), stem.out_channels, *views[0].shape[-2:]))
            for view, part in zip(views, x.split(sizes)):
                native.conv3x3(library, view, stem.weight, stem.bias, out=part)
        else:
            # oneDNN's NCHW kernel for this 3-channel, full-resolution convolution is ~4x
            # slower on CPU than its channels-last one (measured: 41 ms vs 10 ms with the
            # layout change, 2 x 384 x 1248, one thread); the rest of the network stays NCHW.
            x = views[0] if len(views) == 1 else torch.cat(views, 0)
            x = stem(x.contiguous(memory_format=torch.channels_last))
        feats = [self.encoder[0](self.stem[1](x.contiguous()))]
        for block in self.encoder[1:]:
            feats.append(block(feats[-1]))
        return feats[::-1]

    def decode(self, feats: list[torch.Tensor], level: int) -> torch.Tensor:
        """Decoder output at ``level`` (1: 1/8, 2: 1/4); updates ``feats`` in place, so
        calling it for levels 1 then 2 computes each up block once."""
        feats[level] = self.decoder[level - 1](feats[level], feats[level - 1])
        return feats[level]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` -> ``[(B, 8c, H/16, W/16), (B, 4c, H/8, W/8), (B, 2c, H/4, W/4)]``."""
        feats = self.encode(x)
        self.decode(feats, 1)
        self.decode(feats, 2)
        return feats


class CostFilter3d(nn.Module):
    """3D network over a ``(B, D, H, W)`` cost volume (the original ``post_3dconvs``):
    pre-activation 3D convolutions ``1 -> channels``, ``layers x (channels -> channels)``,
    ``channels -> 1``.

    Args:
        channels: hidden channels.
        layers: hidden ``channels -> channels`` layers.
    """

    def __init__(self, channels: int, layers: int) -> None:
        super().__init__()
        sizes = [1] + [channels] * (layers + 1) + [1]
        self.layers = nn.Sequential(*[PreActConv3d(i, o) for i, o in zip(sizes[:-1], sizes[1:])])

    def forward(self, cost: torch.Tensor) -> torch.Tensor:
        """``(B, D, H, W)`` -> ``(B, D, H, W)``."""
        b, d, h, w = cost.shape
        # The volume arrives in float32 (see AnyNet.forward); a model cast to half precision
        # as a whole (deployment, no autocast) filters it in its own dtype.
        x = cost.reshape(b * d, 1, h, w).to(self.layers[0].conv.weight.dtype)
        library = None
        if all(_frozen(layer.bn) for layer in self.layers):
            library = native.inference_kernels(x, self.layers[1].conv.weight)
        if library is not None:
            return self._forward_fused(x, d, library).view(b, d, h, w)
        for layer in self.layers:
            x = layer.forward_depth_major(x, d)
        return x.view(b, d, h, w)

    def _forward_fused(self, x: torch.Tensor, depth: int, library) -> torch.Tensor:
        """:meth:`forward` (``(B * D, 1, H, W)`` -> ``(B * D, 1, H, W)``) with the depth-tap sum
        of each layer and the next layer's batch norm and ReLU in one C kernel pass (inference
        on CPU; see models.native): the PyTorch form's strided adds over channels-last slices
        and its channels-last batch norm cost more than the convolutions at 1/4 resolution."""
        layers = self.layers
        x = layers[0].forward_depth_major(x, depth)
        x = F.relu(layers[1].bn(x), inplace=True).contiguous(memory_format=torch.channels_last)
        for i in range(1, len(layers)):
            taps = depth_taps(x, layers[i].conv.weight)
            if i + 1 < len(layers):
                scale, shift = native.batch_norm_affine(layers[i + 1].bn)
                x = native.tap_sum(library, taps, depth, scale, shift)
            else:
                x = native.tap_sum(library, taps, depth)
        return x


def disparity_regression(cost: torch.Tensor, start: int) -> torch.Tensor:
    """Soft-argmin: ``sum_k softmax(-cost)_k * (start + k)``.

    Args:
        cost: ``(B, D, H, W)`` matching costs (low = good).
        start: value of channel 0 (0 for a full volume, ``-(m-1)`` for a residual one).

    Returns:
        ``(B, 1, H, W)`` expected disparity.
    """
    if cost.ndim != 4:
        raise ValueError(
            f"disparity_regression: cost must have shape (B, D, H, W), got {tuple(cost.shape)}"
        )
    # Float32 even under autocast: in bfloat16 the regressed disparity would be quantised to
    # 0.25-0.5 px at 32-64 px, and the softmax over costs loses its resolution.
    with float32_region(cost):
        cost = full_precision(cost)
        values = torch.arange(start, start + cost.shape[1], device=cost.device, dtype=cost.dtype)
        prob = F.softmax(-cost, dim=1)
        return (prob * values.view(1, -1, 1, 1)).sum(1, keepdim=True)


class SPNRefinement(nn.Module):
    """AnyNet's stage 4: left-to-right spatial propagation of a 1/4-resolution disparity.

    Gates ``G1, G2, G3`` (``channels`` each) come from a 4-layer CNN on the left image; each is
    divided by ``|G1| + |G2| + |G3| + 1e-8`` so the propagation is stable. The disparity is
    lifted to ``channels`` by a 3x3 convolution, propagated by
    :func:`~lightning_depth.models.spn.spn_left_to_right`, and projected back to 1 channel.

    Args:
        channels: SPN channels (the original ``spn_init_channels``).
        backend: the propagation's implementation (``"auto"``, ``"native"``, ``"triton"``,
            ``"torch"``, see :func:`~lightning_depth.models.spn.spn_left_to_right`); an
            attribute, changeable later (``model.spn.backend = "torch"``).
    """

    def __init__(self, channels: int = 8, backend: str = "auto") -> None:
        super().__init__()
        if backend not in SPN_BACKENDS:
            raise ValueError(
                f"SPNRefinement: backend must be one of {SPN_BACKENDS}, got {backend!r}"
            )
        c = channels
        self.channels = c
        self.backend = backend
        self.gate_net = nn.Sequential(
            nn.Conv2d(3, 2 * c, 3, 1, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, 2 * c, 3, 1, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, 2 * c, 3, 1, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, 3 * c, 3, 1, 1, bias=False),
        )
        self.lift = nn.Conv2d(1, c, 3, 1, 1, bias=False)
        self.project = nn.Conv2d(c, 1, 3, 1, 1, bias=False)
        # (the weights and their versions, their Winograd forms): see _winograd_weights
        self._winograd_cache: Optional[tuple[list, list[torch.Tensor]]] = None

    def gates(self, image: torch.Tensor) -> torch.Tensor:
        """The gate network: ``(B, 3, h, w)`` image -> ``(B, 3C, h, w)`` gates (channels-last),
        not normalised. In CPU inference its 16-channel convolutions (``C = 8``) run as
        :func:`~lightning_depth.models.native.winograd3x3`, each with the ReLU before it."""
        # Channels-last halves the gate network's CPU time (oneDNN, 3 input channels; measured
        # 11 ms -> 6 ms at 96 x 312).
        x = image.contiguous(memory_format=torch.channels_last)
        first, *rest = self.gate_net[::2]  # the convolutions; a ReLU between each two
        libraries = [native.winograd_kernels(conv.weight, x) for conv in rest]
        if any(library is None for library in libraries):
            return self.gate_net(x)
        x = first(x)
        for library, weight in zip(libraries, self._winograd_weights(rest)):
            x = native.winograd3x3(library, x, weight, relu_input=True, transformed=True)
        return x

    def _winograd_weights(self, convs: list[nn.Conv2d]) -> list[torch.Tensor]:
        """The convolutions' weights in Winograd form (~0.08 ms each to compute), kept until a
        weight changes: in place (its version counter moves) or replaced (a new storage; the
        cache holds the old one, so its address cannot be reused meanwhile)."""
        weights = [c.weight.detach() for c in convs]  # same storage and version counter
        cached = self._winograd_cache
        if cached is None or any(
            w.data_ptr() != old.data_ptr() or w._version != version or w.shape != old.shape
            or w.dtype != old.dtype
            for w, (old, version) in zip(weights, cached[0])
        ):  # fmt: skip
            key = [(w, w._version) for w in weights]
            self._winograd_cache = (key, [native.winograd_weights(w) for w in weights])
        return self._winograd_cache[1]

    def forward(self, image: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` image and ``(B, 1, h, w)`` disparity -> ``(B, 1, h, w)``."""
        gates = self.gates(image)
        # The gate normalisation and the recurrence run in float32, under autocast and in a
        # model cast to half precision as a whole: 1e-8 and long products of gates are beyond
        # half precision. (The 1-channel lift and projection use float32 weights for that.)
        with float32_region(gates):
            gates, disparity = full_precision(gates), full_precision(disparity)
            lift, project = full_precision(self.lift.weight), full_precision(self.project.weight)
            library = lift_kernels = None
            if self.backend in ("auto", "native"):
                library = native.inference_kernels(disparity, gates, project)
                lift_kernels = native.conv3x3_kernels(lift, disparity)
            if lift_kernels is not None:  # the lift in C where it has few channels
                lifted = native.conv3x3(lift_kernels, disparity, lift)
            else:
                lifted = _conv_float32(self.lift, disparity)
            if library is not None:
                # Inference on CPU: gate normalisation and propagation in one C pass over the
                # channels-last gates as they come, the 1-channel projection in C too (see
                # models.native).
                propagated = native.spn_forward_normalized(library, lifted, gates)
                return native.conv3x3(library, propagated, project)
            # The propagation takes NCHW planes.
            g1, g2, g3 = gates.contiguous().split(self.channels, dim=1)
            # The 1e-8 as a (1, 1, 1, 1) tensor, not a Python scalar: onnxscript's optimiser
            # (run by torch.onnx.export) rewrites "x + c" as "x" for any scalar c within 1e-8 of
            # 0, and where all gates are 0 (flat image regions) that export gave 0 / 0 = NaN.
            norm = g1.abs() + g2.abs() + g3.abs() + gates.new_full((1, 1, 1, 1), 1e-8)
            propagated = spn_left_to_right(lifted, g1 / norm, g2 / norm, g3 / norm, self.backend)
            return _conv_float32(self.project, propagated)


def _conv_float32(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` with float32 weights (the layer's own unless it was cast to half)."""
    return F.conv2d(x, full_precision(conv.weight), None, conv.stride, conv.padding)


class AnyNet(nn.Module):
    """AnyNet stereo network; see the module docstring for the pipeline.

    The defaults are the paper's and the original ``main.py``'s; the parameter count is 34,629
    without SPN and 43,269 with ``spn_channels=8``.

    Resampling conventions. The feature U-Net upsamples with corners aligned (the original's
    ``nn.UpsamplingBilinear2d``) and the residual warp normalises ``2 x / (W - 1) - 1`` with
    ``align_corners=True`` (the original's ``grid_sample`` predates the option); both are fixed.
    ``align_corners`` sets the remaining bilinear resizes (stage outputs to full resolution,
    previous estimates down to the next scale, image and disparity to 1/4 for the SPN), which
    the original writes as ``F.upsample(..., mode='bilinear')`` without the argument. Its
    default is ``False``: PyTorch 0.4.0 (which the repository first required) made
    ``align_corners=False`` the bilinear default, and PyTorch 1.0 (required later) kept it; the
    ``True`` behaviour was the default only up to 0.3.

    Args:
        init_channels: channels of the first U-Net convolution.
        nblocks: convolutions per U-Net down block.
        channels_3d: base channels of the 3D networks.
        layers_3d: hidden layers of each 3D network.
        growth_rate: per stage, the 3D network has ``channels_3d * growth_rate[i]`` channels.
        maxdisplist: stage 1's number of disparities at 1/16, then ``m`` for stages 2 and 3
            (residuals ``-(m-1) .. m-1``).
        spn_channels: SPN channels; 0 removes stage 4.
        align_corners: ``align_corners`` of the stage resizes (see above).
        spn_residual: ``False`` (the original): stage 4 is the SPN's 1/4-resolution output,
            upsampled. ``True``: the SPN's output is a correction, upsampled and added to
            stage 3's estimate, and its projection starts at zero, so an untrained stage 4
            equals stage 3. Same parameters.
    """

    def __init__(
        self,
        init_channels: int = 1,
        nblocks: int = 2,
        channels_3d: int = 4,
        layers_3d: int = 4,
        growth_rate: Sequence[int] = (4, 1, 1),
        maxdisplist: Sequence[int] = (12, 3, 3),
        spn_channels: int = 8,
        align_corners: bool = False,
        spn_residual: bool = False,
    ) -> None:
        super().__init__()
        if len(growth_rate) != 3 or len(maxdisplist) != 3:
            raise ValueError(
                f"AnyNet: growth_rate and maxdisplist need 3 entries (one per stage), got "
                f"{tuple(growth_rate)} and {tuple(maxdisplist)}"
            )
        if spn_channels < 0:
            raise ValueError(f"AnyNet: spn_channels must be >= 0, got {spn_channels}")
        self.init_channels = init_channels
        self.nblocks = nblocks
        self.channels_3d = channels_3d
        self.layers_3d = layers_3d
        self.growth_rate = tuple(int(g) for g in growth_rate)
        self.maxdisplist = tuple(int(m) for m in maxdisplist)
        self.spn_channels = int(spn_channels)
        self.align_corners = bool(align_corners)
        self.spn_residual = bool(spn_residual)

        self.feature_extractor = UNetFeatureExtractor(init_channels, nblocks)
        self.cost_filters = nn.ModuleList(
            [CostFilter3d(channels_3d * g, layers_3d) for g in self.growth_rate]
        )
        self.spn = SPNRefinement(spn_channels) if spn_channels > 0 else None
        self._init_weights()
        if self.spn is not None and self.spn_residual:
            nn.init.zeros_(self.spn.project.weight)

    #: H and W of the inputs must be multiples of this (the 1/16 feature scale).
    size_multiple = 16

    @property
    def num_stages(self) -> int:
        """Number of outputs of a full forward pass (3, or 4 with SPN)."""
        return 4 if self.spn is not None else 3

    def _init_weights(self) -> None:
        # The original's AnyNet.__init__ loop, which runs after the U-Net's own Kaiming init
        # and so overrides it: N(0, sqrt(2 / (k^2 * out))) for every conv, BN at (1, 0).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                n = math.prod(m.kernel_size) * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        library = native.inference_kernels(x)
        if library is not None:
            # PyTorch runs the 1-channel upsamplings to full resolution on one thread.
            return native.resize_bilinear(library, x, size, self.align_corners)
        return F.interpolate(x, size, mode="bilinear", align_corners=self.align_corners)

    def _check_inputs(self, left: torch.Tensor, right: torch.Tensor, stages: Optional[int]) -> int:
        for name, t in (("left", left), ("right", right)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"AnyNet: {name} must be a torch.Tensor, got {type(t).__name__}")
            if t.ndim != 4 or t.shape[1] != 3:
                raise ValueError(
                    f"AnyNet: {name} must have shape (B, 3, H, W), got {tuple(t.shape)}"
                )
        if left.shape != right.shape:
            raise ValueError(
                f"AnyNet: left and right must have the same shape (B, 3, H, W), got "
                f"{tuple(left.shape)} and {tuple(right.shape)}"
            )
        h, w = left.shape[-2:]
        if h % 16 or w % 16 or h == 0 or w == 0:
            raise ValueError(
                f"AnyNet: H and W must be positive multiples of 16, got H={h}, W={w}; pad the "
                "inputs with lightning_depth.models.padding.InputPadder(left.shape, multiple=16) "
                "and crop the outputs with its unpad()"
            )
        if stages is None:
            return self.num_stages
        if int(stages) != stages or not 1 <= stages <= self.num_stages:
            raise ValueError(
                f"AnyNet: stages must be an integer in 1..{self.num_stages}, got {stages}"
            )
        return int(stages)

    def _encode(self, left: torch.Tensor, right: torch.Tensor) -> list[list[torch.Tensor]]:
        if self.training:
            # Two passes, as the original: batch-norm statistics are per view while training.
            return [self.feature_extractor.encode(left), self.feature_extractor.encode(right)]
        # In eval mode one pass over both views (batch 2B) gives the same numbers with half
        # the calls.
        return [self.feature_extractor.encode(left, right)]

    def forward(
        self, left: torch.Tensor, right: torch.Tensor, stages: Optional[int] = None
    ) -> list[torch.Tensor]:
        """Disparities of the left view, one per stage.

        Args:
            left: ``(B, 3, H, W)`` left image (ImageNet-normalised), H and W multiples of 16.
            right: ``(B, 3, H, W)`` right image.
            stages: stop after this many stages (anytime inference); ``None``: all
                (3, or 4 with SPN).

        Returns:
            list of ``stages`` tensors ``(B, 1, H, W)``, disparities in pixels.
        """
        num = self._check_inputs(left, right, stages)
        height, width = left.shape[-2:]
        batch = left.shape[0]
        views = self._encode(left, right)
        preds: list[torch.Tensor] = []
        for scale in range(min(num, 3)):
            if scale > 0:
                # The decoder runs only as far as the requested stages need.
                for feats in views:
                    self.feature_extractor.decode(feats, scale)
            if len(views) == 2:
                fl, fr = views[0][scale], views[1][scale]
            else:
                fl, fr = views[0][scale][:batch], views[0][scale][batch:]
            h, w = fl.shape[-2:]
            # Cost volumes (L1 sums, bilinear warping by sub-pixel disparities) in float32
            # under autocast; the 3D filtering after them may run in half precision.
            with float32_region(fl):
                fl, fr = full_precision(fl), full_precision(fr)
                if scale == 0:
                    cost = full_cost_volume(fl, fr, self.maxdisplist[0])
                    start = 0
                else:
                    # Previous full-resolution estimate at this scale, in this scale's pixels.
                    prev = self._resize(preds[-1], (h, w)) * h / height
                    cost = residual_cost_volume(
                        fl, fr, full_precision(prev), self.maxdisplist[scale]
                    )
                    start = -self.maxdisplist[scale] + 1
            cost = self.cost_filters[scale](cost)
            low = disparity_regression(cost, start) * height / h
            up = self._resize(low, (height, width))
            preds.append(up if scale == 0 else up + preds[-1])
        if num == 4:
            quarter = (height // 4, width // 4)
            refined = self._resize(
                self.spn(self._resize(left, quarter), self._resize(preds[-1], quarter)),
                (height, width),
            )
            preds.append(preds[-1] + refined if self.spn_residual else refined)
        return preds
