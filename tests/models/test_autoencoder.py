from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_depth.models.autoencoder import (
    BottleneckBlock,
    DepthAutoencoder,
    DownBlock,
    KerasBatchNorm2d,
    UpBlock,
    _upsample_nearest_2x_broadcast,
    count_parameters,
    optimize_for_cpu,
    upsample_nearest_2x,
)


@pytest.mark.parametrize(
    ("depth", "total", "trainable"), [(4, 1_966_465, 1_964_545), (3, 489_089, 488_193)]
)
def test_parameter_count_matches_keras(depth: int, total: int, trainable: int) -> None:
    net = DepthAutoencoder(depth=depth)
    assert count_parameters(net) == total
    assert count_parameters(net, trainable_only=True) == trainable


def test_submodule_names_for_weight_converter() -> None:
    net = DepthAutoencoder(depth=4)
    assert len(net.down) == 4 and len(net.up) == 4
    assert all(isinstance(b, DownBlock) for b in net.down)
    assert all(isinstance(b, UpBlock) for b in net.up)
    assert isinstance(net.bottleneck, BottleneckBlock)
    names = {n for n, _ in net.named_parameters()}
    for expected in (
        "down.0.conv_a.weight",
        "down.0.bn_a.weight",
        "down.3.conv_b.bias",
        "down.3.bn_b.bias",
        "bottleneck.conv_a.weight",
        "bottleneck.conv_b.bias",
        "up.0.conv_a.weight",
        "up.3.bn_b.weight",
        "head.weight",
        "head.bias",
    ):
        assert expected in names
    # up[0] is the deepest: bottleneck (256) + deepest skip (128) -> 128.
    assert net.up[0].conv_a.in_channels == 384 and net.up[0].conv_a.out_channels == 128
    assert net.up[3].conv_a.in_channels == 32 + 16 and net.up[3].conv_b.out_channels == 16
    assert (
        net.head.in_channels == 16 and net.head.out_channels == 1 and net.head.kernel_size == (1, 1)
    )
    assert net.bottleneck.conv_b.out_channels == 256


def test_batch_norm_uses_keras_defaults() -> None:
    bns = [m for m in DepthAutoencoder(depth=3).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 12
    for bn in bns:
        assert isinstance(bn, KerasBatchNorm2d)
        assert bn.eps == pytest.approx(1e-3)
        assert bn.momentum == pytest.approx(0.01)


def test_running_variance_follows_keras() -> None:
    # Keras: moving = moving * 0.99 + stat * 0.01 with the *biased* batch variance.
    bn = KerasBatchNorm2d(3, eps=1e-3, momentum=0.01).double()
    mean, var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for _ in range(3):
        x = 3.0 * torch.randn(2, 3, 2, 2, dtype=torch.float64) + 1.0
        out = bn(x)
        v, m = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        mean, var = mean * 0.99 + m * 0.01, var * 0.99 + v * 0.01
        expected = (x - m[:, None, None]) / torch.sqrt(v[:, None, None] + 1e-3)
        torch.testing.assert_close(out, expected)
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    assert bn.num_batches_tracked.item() == 3
    # Plain nn.BatchNorm2d would have used the unbiased variance (n = 8 here).
    assert isinstance(bn, nn.BatchNorm2d)


@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("activation", ["leaky_relu", "swish"])
@pytest.mark.parametrize("head", ["tanh", "linear", "scaled_tanh"])
def test_output_shape_and_head_range(
    depth: int, activation: str, head: str, device: torch.device, dtype: torch.dtype
) -> None:
    net = DepthAutoencoder(depth=depth, activation=activation, head=head, max_output=6.0)
    net = net.to(device, dtype)
    # A large input scale drives the head far beyond (-1, 1) unless tanh bounds it.
    x = 50.0 * torch.rand(2, 3, 16, 32, device=device, dtype=dtype)
    y = net(x)
    assert y.shape == (2, 1, 16, 32)
    assert torch.isfinite(y).all()
    bound = {"tanh": 1.0, "scaled_tanh": 6.0, "linear": float("inf")}[head]
    assert y.abs().max() <= bound


def test_heads_are_tanh_scaled_tanh_and_identity() -> None:
    torch.manual_seed(0)
    nets = {
        h: DepthAutoencoder(depth=3, head=h, max_output=6.0).eval()
        for h in ("tanh", "linear", "scaled_tanh")
    }
    state = nets["linear"].state_dict()
    for n in nets.values():
        n.load_state_dict(state)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        raw = nets["linear"](x)
        torch.testing.assert_close(nets["tanh"](x), torch.tanh(raw))
        torch.testing.assert_close(nets["scaled_tanh"](x), 6.0 * torch.tanh(raw))


def test_activations() -> None:
    leaky = DownBlock(3, 16, "leaky_relu").act
    swish = DownBlock(3, 16, "swish").act
    x = torch.tensor([-1.0, 2.0])
    torch.testing.assert_close(leaky(x), torch.tensor([-0.2, 2.0]))
    torch.testing.assert_close(swish(x), x * torch.sigmoid(x))


def test_down_block_adds_raw_conv_a_output() -> None:
    block = DownBlock(3, 4).eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        skip, pooled = block(x)
        d = block.conv_a(x)
        y = block.act(block.bn_b(block.conv_b(block.act(block.bn_a(d)))))
    torch.testing.assert_close(skip, y + d)
    torch.testing.assert_close(pooled, torch.nn.functional.max_pool2d(skip, 2))
    assert pooled.shape == (1, 4, 4, 4)


def test_up_block_concatenates_upsampled_then_skip() -> None:
    block = UpBlock(2 + 3, 4).eval()
    x = torch.rand(1, 2, 2, 2)
    skip = torch.rand(1, 3, 4, 4)
    up = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    with torch.no_grad():
        expected = block.act(
            block.bn_b(block.conv_b(block.act(block.bn_a(block.conv_a(torch.cat([up, skip], 1))))))
        )
        torch.testing.assert_close(block(x, skip), expected)


@pytest.mark.parametrize("depth", [3, 4])
def test_every_parameter_gets_a_gradient(depth: int) -> None:
    net = DepthAutoencoder(depth=depth, head="linear")
    y = net(torch.rand(2, 3, 32, 32))
    y.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_bad_spatial_size_raises_with_allowed_sizes() -> None:
    net = DepthAutoencoder(depth=4)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 16.*H=40, W=64"):
        net(torch.rand(1, 3, 40, 64))
    # 8 works for depth 3 but not depth 4.
    DepthAutoencoder(depth=3)(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(1, 3, 8, 8))


def test_bad_shape_raises() -> None:
    net = DepthAutoencoder(depth=3)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(1, 1, 32, 32\)"):
        net(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(3, 32, 32))


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        DepthAutoencoder(activation="relu")
    with pytest.raises(ValueError, match="head must be one of"):
        DepthAutoencoder(head="sigmoid")
    with pytest.raises(ValueError, match="depth must be >= 1"):
        DepthAutoencoder(depth=0)
    with pytest.raises(ValueError, match="max_output must be > 0"):
        DepthAutoencoder(head="scaled_tanh", max_output=0.0)


def test_in_channels() -> None:
    net = DepthAutoencoder(depth=3, in_channels=1)
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 1, 16, 16)


def test_channels_last_keeps_numerics() -> None:
    net = DepthAutoencoder(depth=3).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
        fast = optimize_for_cpu(net, channels_last=True)
        out = fast(x.contiguous(memory_format=torch.channels_last))
    assert fast.down[0].conv_a.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_broadcast_upsampling_equals_interpolate(channels_last: bool) -> None:

    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    ref = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    out = _upsample_nearest_2x_broadcast(x)
    assert torch.equal(out, ref) and torch.equal(upsample_nearest_2x(x), ref)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    g = torch.randn_like(ref)
    (grad_ref,) = torch.autograd.grad(ref, x, g)
    (grad_out,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(grad_out, grad_ref)
    # Each input pixel gets the sum of its 2x2 block's gradients.
    torch.testing.assert_close(grad_out[0, 0, 0, 0], g[0, 0, :2, :2].sum())


@pytest.mark.slow
def test_compiled_training_step_matches_eager() -> None:
    torch.manual_seed(0)
    net = DepthAutoencoder(depth=3)
    copy = DepthAutoencoder(depth=3)
    copy.load_state_dict(net.state_dict())
    fast = optimize_for_cpu(copy, channels_last=True, compile=True)
    x = torch.rand(2, 3, 32, 32)
    ref = net(x)
    out = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    ref.square().mean().backward()
    out.square().mean().backward()
    for (name, p), q in zip(net.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)
    for (name, b), c in zip(net.named_buffers(), fast.buffers()):
        torch.testing.assert_close(c, b, atol=1e-6, rtol=1e-5, msg=name)
