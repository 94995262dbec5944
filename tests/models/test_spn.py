from __future__ import annotations

import pytest
import torch

from lightning_depth.models.spn import SPNLeftToRight, spn_left_to_right


def _reference(x, g1, g2, g3):
    """The CUDA kernel's left-to-right recurrence, one pixel at a time (float64)."""
    b_, c_, h_, w_ = x.shape
    out = torch.zeros_like(x)
    for b in range(b_):
        for c in range(c_):
            for w in range(w_):
                for r in range(h_):
                    a1 = float(g1[b, c, r, w]) if (r > 0 and w > 0) else 0.0
                    a2 = float(g2[b, c, r, w]) if w > 0 else 0.0
                    a3 = float(g3[b, c, r, w]) if (r < h_ - 1 and w > 0) else 0.0
                    value = (1 - a1 - a2 - a3) * float(x[b, c, r, w])
                    if w > 0:
                        if r > 0:
                            value += a1 * float(out[b, c, r - 1, w - 1])
                        value += a2 * float(out[b, c, r, w - 1])
                        if r < h_ - 1:
                            value += a3 * float(out[b, c, r + 1, w - 1])
                    out[b, c, r, w] = value
    return out


def _inputs(shape, dtype=torch.float64, device="cpu", requires_grad=False):
    return [
        torch.randn(*shape, dtype=dtype, device=device, requires_grad=requires_grad)
        for _ in range(4)
    ]


@pytest.mark.parametrize("shape", [(2, 2, 4, 5), (1, 1, 1, 3), (1, 3, 5, 1), (1, 1, 2, 2)])
def test_matches_per_pixel_loop(shape):
    x, g1, g2, g3 = _inputs(shape)
    out = spn_left_to_right(x, g1, g2, g3)
    torch.testing.assert_close(out, _reference(x, g1, g2, g3), rtol=1e-12, atol=1e-12)


def test_first_column_passes_through_and_zero_gates_are_identity():
    x, g1, g2, g3 = _inputs((1, 2, 3, 4))
    out = spn_left_to_right(x, g1, g2, g3)
    torch.testing.assert_close(out[..., 0], x[..., 0])
    zero = torch.zeros_like(x)
    torch.testing.assert_close(spn_left_to_right(x, zero, zero, zero), x)


def test_pure_left_gate_copies_from_the_left():
    # g2 = 1 everywhere: h[r, w] = h[r, w - 1], so every row repeats its first value.
    x = torch.randn(1, 1, 3, 5, dtype=torch.float64)
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    out = spn_left_to_right(x, zero, one, zero)
    torch.testing.assert_close(out, x[..., :1].expand_as(x))


@pytest.mark.parametrize("shape", [(1, 2, 3, 4), (2, 1, 1, 3), (1, 1, 4, 2)])
def test_gradcheck(shape):
    inputs = _inputs(shape, requires_grad=True)
    assert torch.autograd.gradcheck(spn_left_to_right, inputs)


def test_gradient_only_for_some_inputs():
    x, g1, g2, g3 = _inputs((1, 1, 3, 4))
    x.requires_grad_(True)
    out = spn_left_to_right(x, g1, g2, g3)
    (grad,) = torch.autograd.grad(out.sum(), x)
    eps = 1e-6
    x2 = x.detach().clone()
    x2[0, 0, 1, 2] += eps
    numeric = (spn_left_to_right(x2, g1, g2, g3).sum() - out.detach().sum()) / eps
    assert abs(float(grad[0, 0, 1, 2]) - float(numeric)) < 1e-5


def test_inputs_are_not_modified():
    inputs = _inputs((1, 1, 1, 3))  # permuted copies of such shapes are views without a copy
    before = [t.clone() for t in inputs]
    spn_left_to_right(*inputs)
    assert all(torch.equal(a, b) for a, b in zip(inputs, before))


def test_device_dtype_and_module(device, dtype):
    x, g1, g2, g3 = _inputs((2, 3, 6, 7), dtype=dtype, device=device)
    g1, g2, g3 = (g / 4 for g in (g1, g2, g3))
    out = SPNLeftToRight()(x, g1, g2, g3)
    assert out.dtype == dtype and out.device == x.device and out.shape == x.shape
    ref = _reference(*(t.double().cpu() for t in (x, g1, g2, g3)))
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(out.double().cpu(), ref, rtol=tol, atol=tol)


def test_errors_name_the_expected_shape():
    x = torch.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match=r"g2 must have the shape of x \(B, C, H, W\)"):
        spn_left_to_right(x, x, torch.zeros(1, 2, 3, 5), x)
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\)"):
        spn_left_to_right(x[0], x[0], x[0], x[0])
    with pytest.raises(TypeError, match="floating point"):
        spn_left_to_right(x.long(), x, x, x)


@pytest.mark.parametrize("shape", [(2, 2, 4, 5), (1, 3, 5, 1)])
def test_export_forms_match_per_pixel_loop(shape):
    """The scan form (torch.export / ONNX) and the unrolled form (jit.trace) compute the
    kernel's recurrence too."""
    from lightning_depth.models.spn import _propagate, _propagate_scan

    x, g1, g2, g3 = _inputs(shape)
    expected = _reference(x, g1, g2, g3)
    torch.testing.assert_close(_propagate_scan(x, g1, g2, g3), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(_propagate(x, g1, g2, g3)[0], expected, rtol=1e-12, atol=1e-12)
