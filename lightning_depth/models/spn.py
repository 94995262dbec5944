"""Left-to-right spatial propagation (SPN, Liu et al. 2017) as AnyNet uses it.

AnyNet's original refinement calls a compiled CUDA extension (``GateRecurrent2dnoind`` with
``horizontal=True, reverse=False`` in mileyan/AnyNet ``models/spn_t1``). This module computes
the same recurrence on any device and dtype. For column ``w`` and row ``r``::

    h[r, w] = (1 - g1 - g2 - g3) * x[r, w]
              + g1 * h[r - 1, w - 1] + g2 * h[r, w - 1] + g3 * h[r + 1, w - 1]

with the gates ``g1, g2, g3`` taken at the current pixel ``(r, w)``. As in the kernel's
``get_gate_sf``, a gate whose neighbour lies outside the image counts as 0, also inside the
``(1 - g1 - g2 - g3)`` factor: the first column passes ``x`` through, ``g1`` is 0 on the top
row and ``g3`` is 0 on the bottom row. Channels and batch entries are independent.

The columns depend on each other, so the loop over ``W`` stays; everything else (the masked
gates, the ``(1 - g1 - g2 - g3) * x`` term, the gate gradients) is vectorised. A custom
``autograd.Function`` with an explicit backward replaces autograd's per-column graph, which
is slower to build and walk back (forward + backward at 4 x 8 x 64 x 128 on CPU: 17 ms vs
75 ms for a column loop left to autograd).

Backends. On CPU, float32 and float64 tensors go by default (``backend="auto"``) to a small
compiled C kernel (:mod:`~lightning_depth.models.native`: forward and backward, one call each;
at AnyNet's 1/4 resolution of 384 x 1248, 0.4 ms instead of 4.2 ms forward on one core),
built with the system C compiler at the first use and cached; where it cannot be built (no
compiler), on other devices, for other dtypes and inside ``native.kernels_enabled(False)``, the
PyTorch form below runs. On CUDA, ``"auto"`` runs two Triton kernels (forward and backward,
the column loop inside each; :mod:`~lightning_depth.models.spn_triton`) where Triton imports,
for float16, bfloat16, float32 and float64, accumulating in float32 (float64).
``backend="torch"`` forces the PyTorch form, ``backend="native"`` the C kernel and
``backend="triton"`` the Triton kernels (an error if unavailable; ``"auto"`` takes them on
GPUs of compute capability 8.0 or newer). All compute the same
operations in the same order; they agree to float rounding (tests: 1e-6 relative in float32,
1e-13 in float64, gradients too; the Triton kernels in Triton's interpreter where no GPU is).
Under ``torch.compile`` the propagation stays outside the graph (a graph break) and runs
eagerly.

Export: under ``torch.export`` (ONNX) the column loop is a ``scan`` higher-order op, which
becomes one ONNX ``Scan`` node over a width that stays dynamic; unrolled, the in-place
column updates became hundreds of scatter nodes per export and minutes of export time.
Under ``torch.jit.trace`` (TorchScript) the loop is traced unrolled, outside the autograd
Function that tracing cannot save.
"""

from __future__ import annotations

import ctypes
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from lightning_depth.models import native, spn_triton
from lightning_depth.models.tracing import capture_mode

__all__ = ["SPN_BACKENDS", "SPNLeftToRight", "spn_backend", "spn_left_to_right"]

#: Accepted values of the ``backend`` argument.
SPN_BACKENDS = ("auto", "native", "torch", "triton")
#: dtypes the Triton kernels take
_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_inputs(x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor) -> None:
    for name, t in (("x", x), ("g1", g1), ("g2", g2), ("g3", g3)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"spn_left_to_right: {name} must be a torch.Tensor, got {type(t).__name__}"
            )
        if not t.is_floating_point():
            raise TypeError(
                f"spn_left_to_right: {name} must be a floating point tensor, got {t.dtype}"
            )
    if x.ndim != 4:
        raise ValueError(f"spn_left_to_right: x must have shape (B, C, H, W), got {tuple(x.shape)}")
    for name, t in (("g1", g1), ("g2", g2), ("g3", g3)):
        if t.shape != x.shape:
            raise ValueError(
                f"spn_left_to_right: {name} must have the shape of x (B, C, H, W) = "
                f"{tuple(x.shape)}, got {tuple(t.shape)}"
            )


def _masked_gates(
    g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column-major ``(W, B, C, H)`` copies of the gates, zero where the neighbour is outside."""
    # Copies (never views of the caller's tensors), since the masking below writes to them.
    g1 = g1.permute(3, 0, 1, 2).clone(memory_format=torch.contiguous_format)
    g2 = g2.permute(3, 0, 1, 2).clone(memory_format=torch.contiguous_format)
    g3 = g3.permute(3, 0, 1, 2).clone(memory_format=torch.contiguous_format)
    for g in (g1, g2, g3):
        g[0] = 0
    g1[..., 0] = 0
    g3[..., -1] = 0
    return g1, g2, g3


def _columns(
    x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Column-major ``(W, B, C, H)`` masked gates and the ``(1 - g1 - g2 - g3) * x`` term."""
    g1c, g2c, g3c = _masked_gates(g1, g2, g3)
    return g1c, g2c, g3c, (1 - g1c - g2c - g3c) * x.permute(3, 0, 1, 2)


def _propagate(
    x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The forward recurrence, in place over column-major buffers.

    Returns:
        ``(B, C, H, W)`` output and the ``(x, g1c, g2c, g3c, h)`` the backward needs.
    """
    g1c, g2c, g3c, h = _columns(x, g1, g2, g3)
    # h starts as the (1 - g1 - g2 - g3) * x term of every column; the loop then adds the
    # propagated neighbours column by column, in place.
    # Per-column views made once (unbind): the loop body is then three in-place kernels,
    # which matters with a few hundred columns of a few hundred values each.
    cur, up, down = h.unbind(0), h[..., 1:].unbind(0), h[..., :-1].unbind(0)
    gate2, gate1, gate3 = g2c.unbind(0), g1c[..., 1:].unbind(0), g3c[..., :-1].unbind(0)
    for w in range(1, h.shape[0]):
        cur[w].addcmul_(gate2[w], cur[w - 1])
        up[w].addcmul_(gate1[w], down[w - 1])
        down[w].addcmul_(gate3[w], up[w - 1])
    return h.permute(1, 2, 3, 0).contiguous(), (x, g1c, g2c, g3c, h)


def _column_step(
    h_prev: torch.Tensor, column: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """One column of the recurrence as a pure function (the ``scan`` body): ``(B, C, H)``."""
    base, g1, g2, g3 = column
    above = F.pad(h_prev[..., :-1], (1, 0))  # h[r - 1, w - 1]
    below = F.pad(h_prev[..., 1:], (0, 1))  # h[r + 1, w - 1]
    h = base + g2 * h_prev + g1 * above + g3 * below
    return h, h.clone()  # scan's outputs must not alias its carry


def _propagate_scan(
    x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor
) -> torch.Tensor:
    """The recurrence as ``torch.scan`` over the columns (for ``torch.export``/ONNX)."""
    from torch._higher_order_ops import scan  # torch >= 2.6; the export path needs it

    g1c, g2c, g3c, base = _columns(x, g1, g2, g3)
    # The first column's gates are zero, so a zero carry gives h[:, 0] = x[:, 0].
    _, h = scan(_column_step, base.new_zeros(base.shape[1:]), (base, g1c, g2c, g3c))
    return h.permute(1, 2, 3, 0)


class _SPNLeftToRight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, g1, g2, g3):
        out, saved = _propagate(x, g1, g2, g3)
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, g1c, g2c, g3c, h = ctx.saved_tensors
        xc = x.permute(3, 0, 1, 2)
        # dh[w] = grad_out[w] + d(later columns)/dh[w]: the same three-neighbour recurrence run
        # right to left with the gates of column w + 1.
        dh = grad_out.permute(3, 0, 1, 2).clone(memory_format=torch.contiguous_format)
        cur, up, down = dh.unbind(0), dh[..., 1:].unbind(0), dh[..., :-1].unbind(0)
        gate2, gate1, gate3 = g2c.unbind(0), g1c[..., 1:].unbind(0), g3c[..., :-1].unbind(0)
        for w in range(dh.shape[0] - 2, -1, -1):
            cur[w].addcmul_(gate2[w + 1], cur[w + 1])
            down[w].addcmul_(gate1[w + 1], up[w + 1])
            up[w].addcmul_(gate3[w + 1], down[w + 1])
        grad_x = grad_g1 = grad_g2 = grad_g3 = None
        if ctx.needs_input_grad[0]:
            grad_x = ((1 - g1c - g2c - g3c) * dh).permute(1, 2, 3, 0)
        # d h[w] / d g = neighbour - x; masked gates get no gradient.
        prev = torch.zeros_like(h)
        prev[1:] = h[:-1]
        minus_x = -xc
        if ctx.needs_input_grad[1]:
            grad_g1 = minus_x.clone()
            grad_g1[..., 1:] += prev[..., :-1]
            grad_g1.mul_(dh)
            grad_g1[0] = 0
            grad_g1[..., 0] = 0
            grad_g1 = grad_g1.permute(1, 2, 3, 0)
        if ctx.needs_input_grad[2]:
            grad_g2 = (prev + minus_x).mul_(dh)
            grad_g2[0] = 0
            grad_g2 = grad_g2.permute(1, 2, 3, 0)
        if ctx.needs_input_grad[3]:
            grad_g3 = minus_x.clone()
            grad_g3[..., :-1] += prev[..., 1:]
            grad_g3.mul_(dh)
            grad_g3[0] = 0
            grad_g3[..., -1] = 0
            grad_g3 = grad_g3.permute(1, 2, 3, 0)
        return grad_x, grad_g1, grad_g2, grad_g3


class _SPNLeftToRightNative(torch.autograd.Function):
    """The C kernels of :mod:`~lightning_depth.models.native`, forward and backward."""

    @staticmethod
    def forward(ctx, library, x, g1, g2, g3):
        out = native.spn_forward(library, x, g1, g2, g3)
        ctx.library = library
        ctx.save_for_backward(x, g1, g2, g3, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        grads = native.spn_backward(ctx.library, *ctx.saved_tensors, grad_out)
        return (None, *(g if need else None for g, need in zip(grads, ctx.needs_input_grad[1:])))


def _native_library(
    x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor, backend: str
) -> Optional[ctypes.CDLL]:
    """The C kernels' library if ``backend`` selects them for these inputs, else ``None``."""
    if backend not in SPN_BACKENDS:
        raise ValueError(
            f"spn_left_to_right: backend must be one of {SPN_BACKENDS}, got {backend!r}"
        )
    if backend in ("torch", "triton") or (backend == "auto" and not native.enabled()):
        return None
    if not native.supports(x, g1, g2, g3):
        if backend == "native":
            raise RuntimeError(
                "spn_left_to_right: backend='native' needs CPU float32 or float64 tensors of "
                f"one dtype, got x {x.dtype} on {x.device}, g1 {g1.dtype}, g2 {g2.dtype}, "
                f"g3 {g3.dtype}"
            )
        return None
    kernels = native.native_kernels()
    if not kernels.available and backend == "native":
        raise RuntimeError(f"spn_left_to_right: backend='native' is unavailable: {kernels.reason}")
    return kernels.library


#: the oldest CUDA compute capability ``backend="auto"`` runs the Triton kernels on (Ampere,
#: what current Triton releases support fully; older GPUs keep the PyTorch form unless
#: ``backend="triton"`` asks for the kernels)
TRITON_MIN_CAPABILITY = (8, 0)


def triton_gpu(device: torch.device) -> bool:
    """Whether ``backend="auto"`` may run the Triton kernels on CUDA ``device``."""
    return tuple(torch.cuda.get_device_capability(device)) >= TRITON_MIN_CAPABILITY


def _use_triton(
    x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor, backend: str
) -> bool:
    """Whether ``backend`` selects the Triton kernels for these inputs: ``"auto"`` on CUDA
    tensors where Triton imports (and unless ``native.kernels_enabled(False)``);
    ``"triton"`` always (an error where they cannot run)."""
    if backend not in ("auto", "triton"):
        return False
    tensors = (x, g1, g2, g3)
    dtypes = all(t.dtype in _TRITON_DTYPES for t in tensors)
    if backend == "auto":
        return (
            native.enabled()
            and all(t.is_cuda for t in tensors)
            and dtypes
            and triton_gpu(x.device)
            and spn_triton.triton_reason() is None
        )
    on_device = all(t.is_cuda for t in tensors) or (
        spn_triton.interpreted() and all(t.device.type == "cpu" for t in tensors)
    )
    if not (on_device and dtypes):
        raise RuntimeError(
            "spn_left_to_right: backend='triton' needs CUDA tensors (CPU ones only under "
            f"TRITON_INTERPRET=1) of float16, bfloat16, float32 or float64, got x {x.dtype} "
            f"on {x.device}, g1 {g1.dtype} on {g1.device}, g2 {g2.dtype}, g3 {g3.dtype}"
        )
    reason = spn_triton.triton_reason()
    if reason is not None:
        raise RuntimeError(f"spn_left_to_right: backend='triton' is unavailable: {reason}")
    return True


def spn_backend(
    x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor, backend: str = "auto"
) -> str:
    """The implementation :func:`spn_left_to_right` runs for these inputs: ``"native"`` (the C
    kernels), ``"triton"`` (the Triton kernels, on CUDA), ``"torch"`` (the PyTorch column
    loop), or under graph capture ``"scan"`` (``torch.export``) or ``"unrolled"``
    (``torch.jit.trace``).

    Raises:
        ValueError: ``backend`` is not one of :data:`SPN_BACKENDS`.
        RuntimeError: ``backend="native"`` for inputs the C kernels do not take (not CPU
            float32/float64 of one dtype), or where they could not be built (with the reason);
            ``backend="triton"`` for inputs not on CUDA or where Triton does not import.
    """
    mode = capture_mode()
    if mode is not None:
        return "scan" if mode == "export" else "unrolled"
    if _use_triton(x, g1, g2, g3, backend):
        return "triton"
    return "native" if _native_library(x, g1, g2, g3, backend) is not None else "torch"


# Opaque to torch.compile: dynamo cannot trace a ctypes call (nor should it unroll the PyTorch
# column loop), so a compiled model runs this piece eagerly, as a graph break.
@torch.compiler.disable
def _propagate_eager(
    x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor, backend: str
) -> torch.Tensor:
    if _use_triton(x, g1, g2, g3, backend):
        return spn_triton.spn_triton(x, g1, g2, g3)
    library = _native_library(x, g1, g2, g3, backend)
    if library is not None:
        return _SPNLeftToRightNative.apply(library, x, g1, g2, g3)
    return _SPNLeftToRight.apply(x, g1, g2, g3)


def spn_left_to_right(
    x: torch.Tensor,
    g1: torch.Tensor,
    g2: torch.Tensor,
    g3: torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """Left-to-right gated propagation with three neighbours (the original CUDA kernel's
    semantics, see the module docstring).

    Args:
        x: ``(B, C, H, W)`` input to propagate.
        g1: ``(B, C, H, W)`` gate for the upper-left neighbour ``h[r - 1, w - 1]``.
        g2: ``(B, C, H, W)`` gate for the left neighbour ``h[r, w - 1]``.
        g3: ``(B, C, H, W)`` gate for the lower-left neighbour ``h[r + 1, w - 1]``.
        backend: ``"auto"`` (on CPU the C kernel where it applies and could be built, on
            CUDA the Triton kernels where Triton imports, unless disabled by
            :func:`~lightning_depth.models.native.kernels_enabled`; else the PyTorch loop),
            ``"native"``, ``"triton"`` or ``"torch"``; see :func:`spn_backend`. Graph capture
            (export, tracing) always uses its own pure form.

    Returns:
        ``(B, C, H, W)`` propagated map, differentiable with respect to all four inputs.

    Example:
        >>> x = torch.ones(1, 1, 2, 3)
        >>> g = torch.full((1, 1, 2, 3), 0.5)
        >>> spn_left_to_right(x, g, g, g).shape
        torch.Size([1, 1, 2, 3])
    """
    _check_inputs(x, g1, g2, g3)
    if backend not in SPN_BACKENDS:
        raise ValueError(
            f"spn_left_to_right: backend must be one of {SPN_BACKENDS}, got {backend!r}"
        )
    mode = capture_mode()
    if mode == "export":
        return _propagate_scan(x, g1, g2, g3)
    if mode == "trace":
        return _propagate(x, g1, g2, g3)[0]
    return _propagate_eager(x, g1, g2, g3, backend)


class SPNLeftToRight(nn.Module):
    """Module form of :func:`spn_left_to_right` (no parameters).

    Args:
        backend: see :func:`spn_left_to_right`; an attribute, changeable later.
    """

    def __init__(self, backend: str = "auto") -> None:
        super().__init__()
        if backend not in SPN_BACKENDS:
            raise ValueError(
                f"SPNLeftToRight: backend must be one of {SPN_BACKENDS}, got {backend!r}"
            )
        self.backend = backend

    def forward(
        self, x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor
    ) -> torch.Tensor:
        return spn_left_to_right(x, g1, g2, g3, self.backend)
