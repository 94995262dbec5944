from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lightning_depth.models.anynet import (
    AnyNet,
    CostFilter3d,
    PreActConv3d,
    conv3d_depth_major,
    disparity_regression,
)


def _pair(batch=2, height=64, width=128, device="cpu", dtype=torch.float32):
    gen = torch.Generator().manual_seed(1)
    left = torch.randn(batch, 3, height, width, generator=gen)
    right = torch.randn(batch, 3, height, width, generator=gen)
    return left.to(device, dtype), right.to(device, dtype)


@pytest.mark.parametrize(
    "spn_channels, expected", [(0, 34_629), (1, 34_827), (2, 35_277), (4, 36_933), (8, 43_269)]
)
def test_parameter_count_matches_original(spn_channels, expected):
    model = AnyNet(spn_channels=spn_channels)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.num_stages == (4 if spn_channels else 3)


def test_forward_shapes_and_anytime_stages(device, dtype):
    model = AnyNet(spn_channels=2).to(device, dtype).eval()
    left, right = _pair(device=device, dtype=dtype)
    with torch.no_grad():
        full = model(left, right)
        assert len(full) == 4
        for out in full:
            assert out.shape == (2, 1, 64, 128) and out.dtype == dtype and out.device == left.device
            assert torch.isfinite(out).all()
        for k in (1, 2, 3):
            early = model(left, right, stages=k)
            assert len(early) == k
            for a, b in zip(early, full):
                torch.testing.assert_close(a, b)


def test_stages_differ_and_stage1_range():
    model = AnyNet(spn_channels=2).eval()
    left, right = _pair()
    with torch.no_grad():
        outs = model(left, right)
    # Stage 1 is a soft-argmin over 12 disparities at 1/16, scaled by 16.
    assert outs[0].min() >= 0 and outs[0].max() <= 11 * 16
    for a, b in zip(outs[:-1], outs[1:]):
        assert not torch.allclose(a, b)


def test_eval_batching_of_views_matches_training_path():
    # Eval runs both views through the U-Net as one batch; with frozen batch-norm statistics
    # that must equal two separate passes.
    model = AnyNet(spn_channels=2)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.eval()
    left, right = _pair()
    with torch.no_grad():
        model.eval()
        batched = model(left, right)
        model.train()
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                m.eval()
        separate = model(left, right)
    for a, b in zip(batched, separate):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_backward_reaches_every_parameter():
    model = AnyNet(spn_channels=2).train()
    left, right = _pair()
    outs = model(left, right)
    sum(o.abs().mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_align_corners_option():
    left, right = _pair(batch=1)
    torch.manual_seed(0)
    a = AnyNet(spn_channels=0).eval()
    assert a.align_corners is False
    b = AnyNet(spn_channels=0, align_corners=True).eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert not torch.allclose(a(left, right, stages=1)[0], b(left, right, stages=1)[0])


def test_spn_residual_adds_the_spn_output_to_stage_3():
    torch.manual_seed(0)
    model = AnyNet(spn_channels=2, spn_residual=True).eval()
    assert sum(p.numel() for p in model.parameters()) == 35_277  # same parameters
    left, right = _pair(batch=1)
    with torch.no_grad():
        # The projection starts at zero: an untrained stage 4 is stage 3.
        assert (model.spn.project.weight == 0).all()
        outs = model(left, right)
        torch.testing.assert_close(outs[3], outs[2], rtol=0, atol=0)
        torch.nn.init.normal_(model.spn.project.weight, 0.0, 0.1)
        outs = model(left, right)
        quarter = (16, 32)
        spn = model.spn(
            F.interpolate(left, quarter, mode="bilinear", align_corners=False),
            F.interpolate(outs[2], quarter, mode="bilinear", align_corners=False),
        )
        expected = outs[2] + F.interpolate(spn, (64, 128), mode="bilinear", align_corners=False)
    assert spn.abs().max() > 1e-3
    torch.testing.assert_close(outs[3], expected, rtol=1e-5, atol=1e-5)
    # The original form upsamples the SPN's output alone.
    original = AnyNet(spn_channels=2).eval()
    assert original.spn_residual is False and (original.spn.project.weight != 0).any()
    original.load_state_dict(model.state_dict())
    with torch.no_grad():
        upsampled = F.interpolate(spn, (64, 128), mode="bilinear", align_corners=False)
        torch.testing.assert_close(original(left, right)[3], upsampled, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv3d_depth_major_equals_conv3d(in_channels, channels_last):
    x = torch.randn(2, in_channels, 5, 6, 7, dtype=torch.float64)  # (B, C, D, H, W)
    w = torch.randn(4, in_channels, 3, 3, 3, dtype=torch.float64)
    expected = F.conv3d(x, w, padding=1)
    depth_major = x.transpose(1, 2).reshape(10, in_channels, 6, 7)
    if channels_last:
        depth_major = depth_major.contiguous(memory_format=torch.channels_last)
    out = conv3d_depth_major(depth_major, w, 5).view(2, 5, 4, 6, 7).transpose(1, 2)
    torch.testing.assert_close(out, expected)
    one = conv3d_depth_major(x[:, :, :1].transpose(1, 2).reshape(2, in_channels, 6, 7), w, 1)
    torch.testing.assert_close(one, F.conv3d(x[:, :, :1], w, padding=1)[:, :, 0])


@pytest.mark.parametrize("in_channels", [1, 2])
def test_conv3d_depth_major_gradcheck(in_channels):
    x = torch.randn(2 * 3, in_channels, 3, 4, dtype=torch.float64).contiguous(
        memory_format=torch.channels_last
    )
    w = torch.randn(2, in_channels, 3, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: conv3d_depth_major(a, b, 3), (x.requires_grad_(), w.requires_grad_())
    )


def test_preact_conv3d_and_cost_filter_equal_reference():
    layer = PreActConv3d(2, 3).double()
    layer.bn.running_mean.uniform_(-1, 1)
    layer.bn.running_var.uniform_(0.5, 2)
    layer.eval()
    x = torch.randn(2, 2, 4, 5, 6, dtype=torch.float64)
    bn = layer.bn
    expected = layer.conv(
        F.relu(F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False))
    )
    torch.testing.assert_close(layer(x), expected)

    net = CostFilter3d(channels=4, layers=2).double().train()
    cost = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    ref = cost.unsqueeze(1)
    for unit in net.layers:
        ref = unit.conv(F.relu(F.batch_norm(ref, None, None, unit.bn.weight, unit.bn.bias, True)))
    torch.testing.assert_close(net(cost), ref.squeeze(1))


def test_disparity_regression_hand_example():
    cost = torch.zeros(1, 3, 1, 2)
    cost[0, :, 0, 1] = torch.tensor([0.0, 100.0, 100.0])  # nearly one-hot on channel 0
    out = disparity_regression(cost, start=-1)
    torch.testing.assert_close(out, torch.tensor([[[[0.0, -1.0]]]]))  # uniform -> mean of -1, 0, 1


def test_input_errors():
    model = AnyNet(spn_channels=0)
    left, right = _pair(batch=1)
    with pytest.raises(ValueError, match=r"left and right must have the same shape \(B, 3, H, W\)"):
        model(left, right[..., :112])
    with pytest.raises(ValueError, match="multiples of 16.*InputPadder"):
        model(left[..., :60, :], right[..., :60, :])
    with pytest.raises(ValueError, match=r"left must have shape \(B, 3, H, W\)"):
        model(left[:, :1], right[:, :1])
    with pytest.raises(ValueError, match=r"stages must be an integer in 1\.\.3"):
        model(left, right, stages=4)
    with pytest.raises(ValueError, match="need 3 entries"):
        AnyNet(maxdisplist=(12, 3))


def test_autocast_keeps_regression_and_spn_in_float32() -> None:
    """Under bfloat16 autocast the 3D filtering runs in half precision, but the regressed
    disparities, the cost volumes and the SPN stay float32 (no 0.25-0.5 px quantisation)."""
    torch.manual_seed(0)
    net = AnyNet(spn_channels=2).eval()
    left, right = torch.randn(1, 3, 64, 128), torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        reference = net(left, right)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(left, right)
    for k, (a, b) in enumerate(zip(reference, mixed)):
        assert b.dtype == torch.float32, k
        # bfloat16 convolutions move the estimate a little: measured < 1% for the regression
        # stages, 3.6% after the SPN, whose gates come from bfloat16 convolutions
        bound = 0.05 if k == 3 else 0.02
        assert (a - b).abs().mean() < bound * a.abs().mean(), k
        assert not torch.equal(b, b.to(torch.bfloat16).float()), k


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_model_cast_to_half_keeps_float32_islands(half) -> None:
    """A model cast to half precision as a whole (deployment, no autocast) runs: the volumes,
    regression and SPN stay float32 and the result stays close to the float32 model's."""
    torch.manual_seed(0)
    net = AnyNet(spn_channels=2).eval()
    left, right = torch.randn(1, 3, 64, 128), torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        reference = net(left, right)
        low = copy.deepcopy(net).to(half)(left.to(half), right.to(half))
    for k, (a, b) in enumerate(zip(reference, low)):
        assert b.dtype == torch.float32, k
        assert (a - b).abs().mean() < 0.05 * a.abs().mean(), k


def test_sum_depth_taps_capture_form_equals_eager() -> None:
    """The pure form used under graph capture computes what the in-place Function does."""
    from lightning_depth.models.conv3d import _sum_depth_taps, _SumDepthTaps

    taps = torch.randn(2 * 5, 3 * 4, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(_sum_depth_taps(taps, 5), _SumDepthTaps.apply(taps, 5))
    torch.testing.assert_close(_sum_depth_taps(taps, 1), _SumDepthTaps.apply(taps, 1))
