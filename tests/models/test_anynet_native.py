"""AnyNet's CPU inference kernels (models.native) against PyTorch's operators, and the whole
network with them against the network without them."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lightning_depth.models import native
from lightning_depth.models.anynet import AnyNet
from lightning_depth.models.conv3d import _SumDepthTaps, depth_taps


@pytest.fixture
def library():
    built = native.native_kernels()
    assert built.available, f"the C kernels must build on the test machine: {built.reason}"
    return built.library


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def _eval_bn(channels: int, generator: torch.Generator) -> torch.nn.BatchNorm2d:
    bn = torch.nn.BatchNorm2d(channels).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5, generator=generator)
        bn.running_var.uniform_(0.5, 2.0, generator=generator)
        bn.weight.uniform_(0.5, 1.5, generator=generator)
        bn.bias.uniform_(-0.2, 0.2, generator=generator)
    return bn


@pytest.mark.parametrize(
    "channels, outputs, stride, size",
    [
        (3, 1, 1, (12, 17)),
        (1, 2, 2, (9, 14)),
        (8, 1, 1, (5, 6)),
        (6, 2, 1, (7, 9)),
        (12, 4, 1, (6, 5)),
    ],
)
@pytest.mark.parametrize("precision", [torch.float32, torch.float64])
@pytest.mark.parametrize("preact", [False, True])
def test_conv3x3_equals_conv2d(library, channels, outputs, stride, size, precision, preact):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, channels, *size, generator=gen).to(precision)
    weight = torch.randn(outputs, channels, 3, 3, generator=gen).to(precision)
    bias = torch.randn(outputs, generator=gen).to(precision)
    bn = _eval_bn(channels, gen).to(precision)
    with torch.no_grad():
        inputs = F.relu(bn(x)) if preact else x
        expected = F.conv2d(inputs, weight, bias, stride=stride, padding=1)
        scale, shift = native.batch_norm_affine(bn) if preact else (None, None)
        out = native.conv3x3(library, x, weight, bias, stride, scale, shift)
    assert out.shape == expected.shape and out.dtype == precision
    assert _rel(out, expected) <= (1e-6 if precision == torch.float32 else 1e-14)


def test_conv3x3_split_over_threads_is_exact(library):
    """The output rows split between threads give the one-thread result, bit for bit."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 70, 33, generator=gen)
    weight = torch.randn(1, 3, 3, 3, generator=gen)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.conv3x3(library, x, weight, stride=2)
        torch.set_num_threads(2)
        two = native.conv3x3(library, x, weight, stride=2)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_conv3x3_writes_into_a_slice_and_checks_it(library):
    x = torch.randn(1, 3, 4, 5)
    weight = torch.randn(1, 3, 3, 3)
    batch = torch.full((2, 1, 4, 5), float("nan"))
    native.conv3x3(library, x, weight, out=batch[1:])
    torch.testing.assert_close(batch[1:], F.conv2d(x, weight, padding=1))
    assert batch[0].isnan().all()
    with pytest.raises(ValueError, match=r"out must be a contiguous torch.float32 tensor of shape"):
        native.conv3x3(library, x, weight, out=torch.empty(1, 1, 4, 4))
    with pytest.raises(
        ValueError, match=r"weight must be \(O, C, 3, 3\) with C = 3, got \(2, 2, 3, 3\)"
    ):
        native.conv3x3(library, x, torch.randn(2, 2, 3, 3))


@pytest.mark.parametrize("depth, channels", [(5, 4), (12, 16), (5, 1), (1, 3)])
@pytest.mark.parametrize("affine", [False, True])
def test_tap_sum_equals_sum_depth_taps_and_batch_norm(library, depth, channels, affine):
    gen = torch.Generator().manual_seed(2)
    taps = torch.randn(2 * depth, 3 * channels, 6, 7, generator=gen)
    taps = taps.contiguous(memory_format=torch.channels_last)
    bn = _eval_bn(channels, gen)
    with torch.no_grad():
        summed = _SumDepthTaps.apply(taps, depth)
        expected = F.relu(bn(summed)) if affine else summed
        scale, shift = native.batch_norm_affine(bn) if affine else (None, None)
        out = native.tap_sum(library, taps, depth, scale, shift)
    assert out.is_contiguous(memory_format=torch.channels_last)
    if affine:  # the affine step may round differently from PyTorch's batch norm (1 ulp)
        assert _rel(out, expected) <= 1e-6
    else:  # the same additions in the same order
        assert torch.equal(out, expected)


def test_tap_sum_hand_example(library):
    # One volume, depth 3, one channel, one pixel: taps (d, k) = 10 d + k.
    taps = torch.tensor([10.0 * d + k for d in range(3) for k in range(3)]).view(3, 3, 1, 1)
    out = native.tap_sum(library, taps, 3).flatten().tolist()
    # out[d] = taps[d, 1] + taps[d - 1, 0] + taps[d + 1, 2]
    assert out == [1 + 12, 11 + 0 + 22, 21 + 10]


@pytest.mark.parametrize("shape", [(2, 1, 192, 624), (1, 3, 7, 9), (2, 2, 2, 5)])
def test_max_pool2x2_equals_max_pool2d(library, shape):
    x = torch.randn(*shape)
    x.view(-1)[:: max(1, x.numel() // 7)] = float("nan")
    out = native.max_pool2x2(library, x)
    expected = F.max_pool2d(x, 2, 2)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)


def test_max_pool2x2_needs_two_rows(library):
    with pytest.raises(ValueError, match=r"H, W >= 2, got \(2, 2, 1, 5\)"):
        native.max_pool2x2(library, torch.zeros(2, 2, 1, 5))


def test_inference_kernels_only_where_no_gradient_or_capture_is_involved(library):
    x = torch.zeros(1, 1, 2, 2)
    w = torch.zeros(1, 1, 3, 3, requires_grad=True)
    assert native.inference_kernels(x) is library
    assert native.inference_kernels(x, w) is None  # autograd would need the graph
    with torch.no_grad():
        assert native.inference_kernels(x, w) is library
    assert native.inference_kernels(x, x.double()) is None
    assert native.inference_kernels(x.bfloat16()) is None
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert native.inference_kernels(x) is None


def test_conv3x3_kernels_only_for_few_output_channels(library):
    x = torch.zeros(1, 2, 4, 4)
    assert native.conv3x3_kernels(torch.zeros(8, 2, 3, 3), x) is library
    assert native.conv3x3_kernels(torch.zeros(16, 2, 3, 3), x) is None  # oneDNN is faster
    assert native.conv3x3_kernels(torch.zeros(1, 2, 3, 3), x.double()) is None  # mixed dtypes


@pytest.mark.parametrize("size", [(7, 9), (12, 20), (2, 3), (1, 1)])
@pytest.mark.parametrize("outputs", [16, 24])
@pytest.mark.parametrize("precision, tol", [(torch.float32, 1e-6), (torch.float64, 1e-14)])
@pytest.mark.parametrize("relu", [False, True])
def test_winograd3x3_equals_conv2d(library, size, outputs, precision, tol, relu):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 16, *size, generator=gen).to(precision)
    weight = torch.randn(outputs, 16, 3, 3, generator=gen).to(precision)
    expected = F.conv2d(F.relu(x) if relu else x, weight, padding=1)
    out = native.winograd3x3(library, x, weight, relu_input=relu)
    assert out.shape == expected.shape and out.dtype == precision
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert _rel(out, expected) <= tol
    transformed = native.winograd_weights(weight)
    assert torch.equal(native.winograd3x3(library, x, transformed, relu, transformed=True), out)


def test_winograd_weights_hand_example():
    """G g G^T of the all-ones 3x3 kernel: G's row sums (1, 3/2, 1/2, 1), outer product."""
    rows = torch.tensor([1.0, 1.5, 0.5, 1.0], dtype=torch.float64)
    u = native.winograd_weights(torch.ones(1, 1, 3, 3, dtype=torch.float64))
    assert u.shape == (16, 1, 1)
    torch.testing.assert_close(u.reshape(4, 4), torch.outer(rows, rows), rtol=0, atol=0)
    # Position-major, then input, then output channel: a kernel of input 1, output 2 only.
    weight = torch.zeros(3, 2, 3, 3, dtype=torch.float64)
    weight[2, 1] = 1.0
    u = native.winograd_weights(weight)
    assert u.shape == (16, 2, 3)
    torch.testing.assert_close(u[:, 1, 2].reshape(4, 4), torch.outer(rows, rows))
    assert u[:, 0].abs().sum() == 0 and u[:, 1, :2].abs().sum() == 0


def test_winograd3x3_split_over_threads_is_exact(library):
    gen = torch.Generator().manual_seed(7)
    x, weight = torch.randn(2, 16, 9, 31, generator=gen), torch.randn(24, 16, 3, 3, generator=gen)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.winograd3x3(library, x, weight)
        torch.set_num_threads(2)
        two = native.winograd3x3(library, x, weight)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_winograd_kernels_only_for_the_gate_networks_shapes(library):
    x = torch.zeros(1, 16, 4, 4)
    assert native.winograd_kernels(torch.zeros(16, 16, 3, 3), x) is library
    assert native.winograd_kernels(torch.zeros(24, 16, 3, 3), x) is library
    for shape in [(8, 16, 3, 3), (32, 16, 3, 3), (16, 8, 3, 3), (16, 16, 1, 1)]:
        assert native.winograd_kernels(torch.zeros(shape), x) is None
    assert native.winograd_kernels(torch.zeros(16, 16, 3, 3), x.double()) is None
    with pytest.raises(ValueError, match=r"weight must be \(O, 16, 3, 3\).*got weight \(8, 16"):
        native.winograd3x3(library, x, torch.zeros(8, 16, 3, 3))


def test_spn_gates_follow_weight_changes(library):
    """The gate network's Winograd form recomputes its transformed weights after an in-place
    change and after a load, and equals the plain gate network throughout."""
    model = AnyNet(spn_channels=8).eval()
    image = torch.randn(1, 3, 10, 14, generator=torch.Generator().manual_seed(8))
    calls = []
    original = native.winograd_weights

    def counted(weight):
        calls.append(weight.shape)
        return original(weight)

    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(native, "winograd_weights", counted)
        for step in range(3):
            gates = model.spn.gates(image)
            expected = model.spn.gate_net(image)
            assert _rel(gates, expected) <= 1e-6
            if step == 0:
                model.spn.gate_net[4].weight.mul_(-2.0)  # in place
            elif step == 1:
                state = {k: v.clone() * 0.5 for k, v in model.spn.state_dict().items()}
                model.spn.load_state_dict(state)
        model.spn.gates(image)  # unchanged weights: the kept forms
    assert len(calls) == 9  # three convolutions, transformed at steps 0, 1 and 2 only


def test_winograd_runs_in_inference_of_the_spn8_only(library, monkeypatch):
    calls = []
    original = native.winograd3x3
    monkeypatch.setattr(native, "winograd3x3", lambda *a, **k: calls.append(1) or original(*a, **k))
    left, right = torch.randn(1, 3, 32, 64), torch.randn(1, 3, 32, 64)
    model = AnyNet(spn_channels=8).eval()
    with torch.no_grad():
        model(left, right)
    assert len(calls) == 3  # 16 -> 16, 16 -> 16, 16 -> 24
    model(left, right)[-1].sum().backward()  # with gradients: the plain gate network
    with torch.no_grad():
        AnyNet(spn_channels=4).eval()(left, right)  # 8- and 12-channel layers: oneDNN
    assert len(calls) == 3


def _model_with_statistics(spn_channels: int = 8, init_channels: int = 1) -> AnyNet:
    """AnyNet with non-trivial batch-norm statistics, so that each affine step matters."""
    model = AnyNet(init_channels=init_channels, spn_channels=spn_channels).eval()
    gen = torch.Generator().manual_seed(3)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.load_state_dict(_eval_bn(module.num_features, gen).state_dict())
    return model


@pytest.mark.parametrize("precision, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
@pytest.mark.parametrize("init_channels", [1, 2])  # 2: U-Net layers of 2-16 outputs, mixed
def test_anynet_with_and_without_kernels_agree(library, monkeypatch, precision, tol, init_channels):
    model = _model_with_statistics(init_channels=init_channels).to(precision)
    gen = torch.Generator().manual_seed(4)
    left, right = (torch.randn(2, 3, 64, 128, generator=gen).to(precision) for _ in range(2))
    with torch.no_grad():
        fast = model(left, right)
        monkeypatch.setattr(native, "native_kernels", lambda: native.NativeKernels(None, "test"))
        plain = model(left, right)
    assert len(fast) == 4
    for a, b in zip(fast, plain):
        assert _rel(a, b) <= tol


def test_anynet_kernels_are_used_in_inference(library, monkeypatch):
    """Each kernel runs in an eval forward pass without gradients, none with them."""
    calls = []
    for name in (
        "conv3x3",
        "tap_sum",
        "max_pool2x2",
        "spn_forward_normalized",
        "spn_forward",
        "resize_bilinear",
    ):
        original = getattr(native, name)
        monkeypatch.setattr(
            native, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k)
        )
    model = _model_with_statistics(spn_channels=2)
    left, right = torch.randn(1, 3, 32, 64), torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        model(left, right)
    # The convolutions with at most 8 outputs: stem (x2 views), stride-2 stem, 2 in each of
    # the three down blocks (2, 4 and 8 outputs), 2 in each up block (4 and 2), SPN
    # lift and projection (not the gate network's 16 and 24); 3 x 5 tap sums; 3 pools; 1 SPN;
    # resizes.
    assert sorted(set(calls)) == [
        "conv3x3",
        "max_pool2x2",
        "resize_bilinear",
        "spn_forward_normalized",
        "tap_sum",
    ]
    assert calls.count("conv3x3") == 15 and calls.count("tap_sum") == 15
    # 3 stage outputs up, 2 estimates down, image, estimate down and result up for the SPN.
    assert calls.count("resize_bilinear") == 8
    calls.clear()
    model(left, right)[-1].sum().backward()  # eval mode with gradients: PyTorch forms
    # except where no gradient flows (the input image's resize for the SPN), and the SPN's
    # autograd Function (its forward kernel).
    assert calls == ["resize_bilinear", "spn_forward"]


def test_anynet_training_step_unchanged_by_kernels(library, monkeypatch):
    """Training mode never takes the inference kernels: same loss and gradients."""
    model = _model_with_statistics(spn_channels=2).train()
    twin = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(5)
    left, right = (torch.randn(2, 3, 32, 64, generator=gen) for _ in range(2))
    loss = sum(out.mean() for out in model(left, right))
    loss.backward()
    loss = loss.detach()
    monkeypatch.setattr(native, "native_kernels", lambda: native.NativeKernels(None, "test"))
    twin_loss = sum(out.mean() for out in twin(left, right))
    twin_loss.backward()
    twin_loss = twin_loss.detach()
    assert abs(float(loss) - float(twin_loss)) <= 1e-6 * abs(float(twin_loss))
    # All gradients together: a few are sums that nearly cancel (rounding-level values).
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    twin_grads = torch.cat([p.grad.flatten() for p in twin.parameters()])
    assert _rel(grads, twin_grads) <= 1e-5


def test_depth_taps_blocks_hold_the_depth_taps():
    # depth_taps output block k is the 2D convolution with the depth tap k of the weight.
    x = torch.randn(3, 2, 5, 6)
    weight = torch.randn(4, 2, 3, 3, 3)
    taps = depth_taps(x, weight)
    for k in range(3):
        torch.testing.assert_close(
            taps[:, 4 * k : 4 * k + 4], F.conv2d(x, weight[:, :, k], padding=1)
        )


def _conv_in_child(x, weight, expected) -> None:
    out = native.conv3x3(native.native_kernels().library, x, weight)
    raise SystemExit(0 if torch.equal(out, expected) else 1)


def test_kernels_split_over_threads_in_a_forked_child(library):
    """Threads do not survive a fork: a forked child (a data-loader worker) must not wait on
    the parent's worker threads."""
    import multiprocessing

    x, weight = torch.randn(1, 3, 64, 33), torch.randn(1, 3, 3, 3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        expected = native.conv3x3(library, x, weight)  # starts the parent's workers
        child = multiprocessing.get_context("fork").Process(
            target=_conv_in_child, args=(x, weight, expected)
        )
        child.start()
        child.join(timeout=120)
        hung = child.is_alive()
        if hung:
            child.kill()
            child.join()
    finally:
        torch.set_num_threads(threads)
    assert not hung and child.exitcode == 0


@pytest.mark.parametrize(
    "shape, size",
    [
        ((1, 1, 24, 78), (384, 1248)),
        ((1, 3, 64, 96), (16, 24)),
        ((2, 1, 7, 9), (13, 5)),
        ((1, 2, 1, 4), (3, 8)),
        ((1, 1, 5, 5), (5, 5)),
    ],
)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("precision, tol", [(torch.float32, 1e-6), (torch.float64, 1e-14)])
def test_resize_bilinear_equals_interpolate(library, shape, size, align_corners, precision, tol):
    x = (torch.rand(*shape, generator=torch.Generator().manual_seed(6)) * 50).to(precision)
    out = native.resize_bilinear(library, x, size, align_corners)
    expected = F.interpolate(x, size, mode="bilinear", align_corners=align_corners)
    assert out.shape == expected.shape and out.dtype == precision
    assert _rel(out, expected) <= tol


_FAULTS = """
import resource, sys, torch
from lightning_depth.models import native
applied = native.retain_freed_memory() if sys.argv[1] == "retain" else None
for _ in range(3):  # 200 blocks of 100 KB (under the mmap threshold: from the heap), freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones(25_000) for _ in range(200)]
    del blocks
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(applied, faults)
"""


def test_retain_freed_memory_avoids_page_faults():
    """By default glibc returns the freed 20 MB at the top of the heap to the system, and the
    next round faults its ~4,900 pages in again (4,611-4,636 here; 3,707 in some runs, when
    part of the heap's top was not returned); retained, the round reuses them (0)."""
    runs = {}
    for mode in ("default", "retain"):
        done = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True
        )
        runs[mode] = done.stdout.split()
    if sys.platform != "linux":  # not glibc: nothing to set, and said so
        assert runs["retain"][0] == "False"
        return
    assert runs["retain"][0] == "True"
    assert int(runs["default"][1]) >= 3000 and int(runs["retain"][1]) < 100
