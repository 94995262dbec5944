"""The SPN's C kernels (models.native) against the PyTorch form and a per-pixel reference, and
the choice between them (backend, fallback)."""

from __future__ import annotations

import tempfile

import pytest
import torch

from lightning_depth.models import native
from lightning_depth.models.spn import spn_backend, spn_left_to_right
from tests.models.test_spn import _reference


@pytest.fixture
def kernels() -> native.NativeKernels:
    built = native.native_kernels()
    assert built.available, f"the C kernels must build on the test machine: {built.reason}"
    return built


@pytest.fixture
def no_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine without a C compiler."""
    unavailable = native.NativeKernels(None, "no C compiler found on PATH (test)")
    monkeypatch.setattr(native, "native_kernels", lambda: unavailable)


def _gates(shape, dtype, generator):
    """Random input and gates normalised as AnyNet's (|g1| + |g2| + |g3| < 1)."""
    x, g1, g2, g3 = (torch.randn(*shape, dtype=dtype, generator=generator) for _ in range(4))
    norm = g1.abs() + g2.abs() + g3.abs() + 1e-8
    return x, g1 / norm, g2 / norm, g3 / norm


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("shape", [(2, 2, 4, 5), (1, 1, 1, 3), (1, 3, 5, 1), (1, 1, 2, 2)])
def test_native_matches_per_pixel_loop(kernels, shape):
    gen = torch.Generator().manual_seed(0)
    x, g1, g2, g3 = (torch.randn(*shape, dtype=torch.float64, generator=gen) for _ in range(4))
    assert spn_backend(x, g1, g2, g3) == "native"
    out = spn_left_to_right(x, g1, g2, g3, backend="native")
    torch.testing.assert_close(out, _reference(x, g1, g2, g3), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("precision, tol", [(torch.float32, 1e-6), (torch.float64, 1e-13)])
@pytest.mark.parametrize("shape", [(1, 8, 96, 312), (3, 2, 17, 29)])
def test_native_and_torch_forms_agree(kernels, precision, tol, shape):
    """Forward and all four gradients, at AnyNet's quarter resolution of 384 x 1248 too."""
    gen = torch.Generator().manual_seed(1)
    inputs = _gates(shape, precision, gen)
    grad_out = torch.randn(*shape, dtype=precision, generator=gen)
    results = {}
    for backend in ("native", "torch"):
        leaves = [t.clone().requires_grad_() for t in inputs]
        out = spn_left_to_right(*leaves, backend=backend)
        grads = torch.autograd.grad(out, leaves, grad_out)
        results[backend] = (out.detach(), *grads)
    for fast, slow in zip(results["native"], results["torch"]):
        assert _rel(fast, slow) <= tol


@pytest.mark.parametrize("shape", [(1, 2, 3, 4), (2, 1, 1, 3), (1, 1, 4, 2)])
def test_native_gradcheck(kernels, shape):
    gen = torch.Generator().manual_seed(2)
    inputs = [t.requires_grad_() for t in _gates(shape, torch.float64, gen)]
    assert torch.autograd.gradcheck(
        lambda *a: spn_left_to_right(*a, backend="native"), inputs, eps=1e-6, atol=1e-8
    )


def test_native_gradient_for_some_inputs_only(kernels):
    gen = torch.Generator().manual_seed(3)
    x, g1, g2, g3 = _gates((1, 2, 3, 4), torch.float64, gen)
    g2.requires_grad_(True)
    out = spn_left_to_right(x, g1, g2, g3, backend="native")
    (grad,) = torch.autograd.grad(out.sum(), g2)
    # Central difference at one gate, computed with the PyTorch form.
    eps = 1e-6
    plus, minus = g2.detach().clone(), g2.detach().clone()
    plus[0, 1, 2, 3] += eps
    minus[0, 1, 2, 3] -= eps
    numeric = (
        spn_left_to_right(x, g1, plus, g3, backend="torch").sum()
        - spn_left_to_right(x, g1, minus, g3, backend="torch").sum()
    ) / (2 * eps)
    assert abs(float(grad[0, 1, 2, 3]) - float(numeric)) < 1e-8


@pytest.mark.parametrize(
    "shape", [(2, 3, 7, 11), (1, 8, 96, 312), (1, 2, 1, 4), (3, 8, 5, 6), (2, 16, 4, 9)]
)
@pytest.mark.parametrize("precision", [torch.float32, torch.float64])
def test_normalising_kernel_equals_normalised_gates(kernels, shape, precision):
    """SPNRefinement's inference path: channels-last gates, divided by |g1| + |g2| + |g3| +
    1e-8; the same operations as the plane kernel, so equal to it (vectorised where the
    channels fill whole vectors, 8 floats or 4 doubles; scalar steps otherwise)."""
    gen = torch.Generator().manual_seed(4)
    b, c, h, w = shape
    x = torch.randn(*shape, generator=gen).to(precision)
    gates = torch.randn(b, 3 * c, h, w, generator=gen).to(precision)
    gates[0, :, 0, 1] = 0.0  # all gates 0: a = 0 / 1e-8 = 0
    gates[-1, c : 2 * c, -1, -1] = -0.0
    gates = gates.contiguous(memory_format=torch.channels_last)
    g1, g2, g3 = gates.split(c, 1)
    norm = g1.abs() + g2.abs() + g3.abs() + 1e-8
    out = native.spn_forward_normalized(kernels.library, x, gates)
    assert out.is_contiguous(memory_format=torch.channels_last)
    planes = native.spn_forward(kernels.library, x, g1 / norm, g2 / norm, g3 / norm)
    assert torch.equal(out, planes)
    if h * w <= 100:
        expected = _reference(*(t.double() for t in (x, g1 / norm, g2 / norm, g3 / norm)))
        assert _rel(out.double(), expected) <= 1e-6
    with pytest.raises(ValueError, match=r"gates must be \(B, 3C, H, W\)"):
        native.spn_forward_normalized(kernels.library, x, gates[:, 1:])


def test_inputs_are_not_modified_by_native(kernels):
    gen = torch.Generator().manual_seed(5)
    inputs = [t.requires_grad_() for t in _gates((1, 2, 3, 4), torch.float32, gen)]
    before = [t.detach().clone() for t in inputs]
    spn_left_to_right(*inputs, backend="native").sum().backward()
    assert all(torch.equal(a.detach(), b) for a, b in zip(inputs, before))


def test_auto_uses_native_on_cpu_and_torch_otherwise(kernels):
    x = torch.zeros(1, 1, 2, 3)
    assert spn_backend(x, x, x, x) == "native"
    assert spn_backend(x, x, x, x, backend="torch") == "torch"
    half = x.bfloat16()
    assert spn_backend(half, half, half, half) == "torch"
    with pytest.raises(RuntimeError, match="needs CPU float32 or float64 tensors of one dtype"):
        spn_left_to_right(half, half, half, half, backend="native")
    with pytest.raises(RuntimeError, match="needs CPU float32 or float64"):
        spn_left_to_right(x, x, x, x.double(), backend="native")
    with pytest.raises(
        ValueError, match=r"backend must be one of \('auto', 'native', 'torch', 'triton'\)"
    ):
        spn_left_to_right(x, x, x, x, backend="cuda")


def test_fallback_without_a_compiler(no_kernels):
    gen = torch.Generator().manual_seed(6)
    x, g1, g2, g3 = (torch.randn(1, 2, 3, 4, dtype=torch.float64, generator=gen) for _ in range(4))
    assert spn_backend(x, g1, g2, g3) == "torch"
    torch.testing.assert_close(
        spn_left_to_right(x, g1, g2, g3), _reference(x, g1, g2, g3), rtol=1e-12, atol=1e-12
    )
    with pytest.raises(RuntimeError, match=r"unavailable: no C compiler found on PATH \(test\)"):
        spn_left_to_right(x, g1, g2, g3, backend="native")


def test_build_reports_a_missing_compiler(tmp_path):
    built = native.build_native_kernels(compilers=("no-such-cc",), cache_dir=tmp_path)
    assert not built.available
    assert built.reason == "no C compiler found on PATH (looked for no-such-cc)"
    assert list(tmp_path.iterdir()) == []


def test_build_reports_a_failing_compiler(tmp_path):
    built = native.build_native_kernels(compilers=("false",), cache_dir=tmp_path)
    assert not built.available
    assert (
        "building the C kernels failed" in built.reason and "false failed (exit 1)" in built.reason
    )


def test_build_caches_by_source_hash(kernels, tmp_path):
    first = native.build_native_kernels(cache_dir=tmp_path)
    assert first.available and first.path.parent == tmp_path
    mtime = first.path.stat().st_mtime_ns
    second = native.build_native_kernels(cache_dir=tmp_path)
    assert second.path == first.path and second.path.stat().st_mtime_ns == mtime
    # Only the library is left: the build folder is removed.
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]
    x = torch.ones(1, 1, 2, 3)
    zero = torch.zeros_like(x)
    torch.testing.assert_close(native.spn_forward(second.library, x, zero, zero, zero), x)


def test_kernels_can_be_disabled_in_a_block(kernels):
    x = torch.zeros(1, 1, 2, 3)
    with native.kernels_enabled(False):
        assert not native.enabled()
        assert spn_backend(x, x, x, x) == "torch"
        assert spn_backend(x, x, x, x, backend="native") == "native"  # explicit wins
        assert native.inference_kernels(x) is None
    assert native.enabled() and spn_backend(x, x, x, x) == "native"
    assert native.inference_kernels(x) is kernels.library


def test_build_falls_back_to_a_temporary_folder(kernels, tmp_path, monkeypatch):
    """A cache folder that cannot be written (here: a file) leaves a temporary one."""
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(blocked))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    built = native.build_native_kernels()
    assert built.available
    assert built.path.parent.parent == tmp_path
    assert built.path.parent.name.startswith("lightning_depth_native_")


def _mapped_libgomp() -> set[str]:
    with open("/proc/self/maps") as maps:
        return {line.split()[-1] for line in maps if "libgomp" in line.split()[-1]}


def test_kernels_share_pytorchs_openmp_pool(kernels):
    """Built with OpenMP, the kernels bind to the libgomp PyTorch already loaded: a second
    OpenMP runtime would start a second pool of threads competing with PyTorch's."""
    assert native.uses_openmp(kernels.library)
    libraries = _mapped_libgomp()
    assert len(libraries) == 1, libraries
    assert "torch" in next(iter(libraries))


def _forked_spn(kernels, inputs, connection) -> None:
    # as a plain list: a tensor would travel through shared memory the child's exit frees
    out = native.spn_forward(kernels.library, *inputs)
    connection.send((native.uses_openmp(kernels.library), out.tolist()))


def test_forked_child_splits_with_python_threads(kernels):
    """In a forked child (a data-loader worker) the parent's OpenMP threads are gone; the
    kernels fall back to Python threads there and give the parent's result, not a hang."""
    import multiprocessing

    gen = torch.Generator().manual_seed(5)
    inputs = _gates((2, 3, 9, 11), torch.float64, gen)
    expected = native.spn_forward(kernels.library, *inputs)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_forked_spn, args=(kernels, inputs, sender))
    child.start()
    assert receiver.poll(60), "the forked child did not answer within 60 s (a hung pool?)"
    used_openmp, result = receiver.recv()
    result = torch.tensor(result, dtype=torch.float64)
    child.join(10)
    assert child.exitcode == 0
    assert not used_openmp
    torch.testing.assert_close(result, expected, rtol=0, atol=0)
    torch.testing.assert_close(result, _reference(*inputs), rtol=1e-12, atol=1e-12)
