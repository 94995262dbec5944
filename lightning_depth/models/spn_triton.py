"""The SPN recurrence of :mod:`~lightning_depth.models.spn` as Triton kernels, for CUDA.

The PyTorch form launches three small kernels per column (about 940 launches per pass at
AnyNet's 1/4 resolution of 384 x 1248, 9.9 ms on an H100, most of it launch overhead). Here one
launch runs the whole forward and one the whole backward: one program per ``(batch, channel)``
plane, the loop over columns inside the kernel, each column's rows as one block.

Why a plane per program and not row blocks: the recurrence couples rows ``r - 1, r, r + 1`` of
column ``w - 1`` into row ``r`` of column ``w``, so after one column a row block would need its
neighbours' rows from other programs, which Triton cannot synchronise. A column of a plane has
``H`` values (96 at 384 x 1248), one block; the programs (``B * C``: 8 per image for SPN-8)
are few, but each launch replaces ~940.

Each column is written to global memory and read back, shifted by a row, for the next one
(a block cannot shift its registers); ``tl.debug_barrier()`` orders the write before the read
within the program. The data are laid out column-major, ``(B * C, W, H)``, so a column is
contiguous. Inputs may be float16, bfloat16, float32 or float64; the recurrence accumulates in
float32 (float64 for float64 inputs) and the result comes back in the input's dtype.

Written by hand because no library ships this recurrence (the original is a CUDA extension
of mileyan/AnyNet). Triton is imported only when these kernels are first used, so the package
imports without it. ``TRITON_INTERPRET=1`` (set before the first use) runs the kernels in
Triton's interpreter on CPU tensors: the tests check them that way where no GPU exists.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Optional

import torch
from torch.autograd.function import once_differentiable

__all__ = ["interpreted", "spn_triton", "triton_reason"]


def interpreted() -> bool:
    """True when Triton runs its interpreter (``TRITON_INTERPRET=1``): CPU tensors then."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.cache
def triton_reason() -> Optional[str]:
    """``None`` if Triton can be imported, else why not."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        return f"triton cannot be imported ({type(e).__name__}: {e})"
    return None


@functools.cache
def _kernels() -> tuple[Any, Any]:
    """The forward and backward kernels (defined at the first use: Triton reads
    ``TRITON_INTERPRET`` when a kernel is defined)."""
    import triton
    import triton.language as tl

    @triton.jit
    def forward_kernel(x_ptr, g1_ptr, g2_ptr, g3_ptr, h_ptr, W, H, BLOCK_H: tl.constexpr):
        acc = h_ptr.dtype.element_ty
        plane = tl.program_id(0).to(tl.int64) * W * H
        r = tl.arange(0, BLOCK_H)
        inside = r < H
        up = inside & (r > 0)  # g1's neighbour h[r - 1] exists
        down = (r + 1) < H  # g3's neighbour h[r + 1] exists
        # Column 0: every gate's neighbour is outside, so h = x.
        x0 = tl.load(x_ptr + plane + r, mask=inside, other=0.0).to(acc)
        tl.store(h_ptr + plane + r, x0, mask=inside)
        for w in range(1, W):
            tl.debug_barrier()  # column w - 1 is written before it is read shifted
            col = plane + w * H
            prev = col - H
            a1 = tl.load(g1_ptr + col + r, mask=up, other=0.0).to(acc)
            a2 = tl.load(g2_ptr + col + r, mask=inside, other=0.0).to(acc)
            a3 = tl.load(g3_ptr + col + r, mask=down, other=0.0).to(acc)
            xv = tl.load(x_ptr + col + r, mask=inside, other=0.0).to(acc)
            h_up = tl.load(h_ptr + prev + r - 1, mask=up, other=0.0)
            h_mid = tl.load(h_ptr + prev + r, mask=inside, other=0.0)
            h_down = tl.load(h_ptr + prev + r + 1, mask=down, other=0.0)
            h = (1.0 - a1 - a2 - a3) * xv + a1 * h_up + a2 * h_mid + a3 * h_down
            tl.store(h_ptr + col + r, h, mask=inside)

    @triton.jit
    def backward_kernel(
        x_ptr, g1_ptr, g2_ptr, g3_ptr, h_ptr, grad_ptr, lam_ptr,
        dx_ptr, dg1_ptr, dg2_ptr, dg3_ptr, W, H, BLOCK_H: tl.constexpr,
    ):  # fmt: skip
        acc = h_ptr.dtype.element_ty
        plane = tl.program_id(0).to(tl.int64) * W * H
        r = tl.arange(0, BLOCK_H)
        inside = r < H
        up = inside & (r > 0)
        down = (r + 1) < H
        for i in range(0, W):
            w = W - 1 - i
            col = plane + w * H
            # lam[w] = grad[w] + (column w + 1's gates)^T lam[w + 1]: row r reaches row r of
            # column w + 1 through its g2, row r + 1 through its g1 and row r - 1 through g3.
            lam = tl.load(grad_ptr + col + r, mask=inside, other=0.0).to(acc)
            has_next = (r * 0 + w) < W - 1  # (as a block: a scalar mask breaks the interpreter)
            nxt = col + H
            lam += tl.load(g2_ptr + nxt + r, mask=inside & has_next, other=0.0).to(acc) * (
                tl.load(lam_ptr + nxt + r, mask=inside & has_next, other=0.0)
            )
            lam += tl.load(g1_ptr + nxt + r + 1, mask=down & has_next, other=0.0).to(acc) * (
                tl.load(lam_ptr + nxt + r + 1, mask=down & has_next, other=0.0)
            )
            lam += tl.load(g3_ptr + nxt + r - 1, mask=up & has_next, other=0.0).to(acc) * (
                tl.load(lam_ptr + nxt + r - 1, mask=up & has_next, other=0.0)
            )
            tl.debug_barrier()  # every row has read lam[w + 1] before lam[w] is written
            tl.store(lam_ptr + col + r, lam, mask=inside)
            # Gradients at column w; its masked gates (column 0, g1 on the top row, g3 on the
            # bottom row) are 0 and get no gradient.
            has_prev = (r * 0 + w) > 0
            a1 = tl.load(g1_ptr + col + r, mask=up & has_prev, other=0.0).to(acc)
            a2 = tl.load(g2_ptr + col + r, mask=inside & has_prev, other=0.0).to(acc)
            a3 = tl.load(g3_ptr + col + r, mask=down & has_prev, other=0.0).to(acc)
            xv = tl.load(x_ptr + col + r, mask=inside, other=0.0).to(acc)
            tl.store(dx_ptr + col + r, (1.0 - a1 - a2 - a3) * lam, mask=inside)
            prev = col - H
            h_up = tl.load(h_ptr + prev + r - 1, mask=up & has_prev, other=0.0)
            h_mid = tl.load(h_ptr + prev + r, mask=inside & has_prev, other=0.0)
            h_down = tl.load(h_ptr + prev + r + 1, mask=down & has_prev, other=0.0)
            zero = tl.zeros([BLOCK_H], dtype=acc)
            tl.store(
                dg1_ptr + col + r, tl.where(up & has_prev, lam * (h_up - xv), zero), mask=inside
            )
            tl.store(dg2_ptr + col + r, tl.where(has_prev, lam * (h_mid - xv), zero), mask=inside)
            tl.store(
                dg3_ptr + col + r, tl.where(down & has_prev, lam * (h_down - xv), zero), mask=inside
            )
            tl.debug_barrier()  # lam[w] is written before the next column reads it

    return forward_kernel, backward_kernel


def _column_major(t: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> contiguous ``(B * C, W, H)``."""
    b, c, h, w = t.shape
    return t.permute(0, 1, 3, 2).reshape(b * c, w, h).contiguous()


def _back(t: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """Contiguous ``(B * C, W, H)`` -> ``(B, C, H, W)`` of ``dtype``."""
    b, c, h, w = shape
    return t.view(b, c, w, h).permute(0, 1, 3, 2).to(dtype).contiguous()


def _launch(kernel, planes: int, height: int, *args) -> None:
    import triton

    block = triton.next_power_of_2(max(height, 1))
    device = args[0].device
    # Triton launches on the current CUDA device: make it the tensors' (cuda:1 under DDP).
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        kernel[(planes,)](*args, BLOCK_H=block, num_warps=4 if block <= 512 else 8)


class _SPNTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, g1, g2, g3):
        forward_kernel, _ = _kernels()
        shape, planes = x.shape, x.shape[0] * x.shape[1]
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        xs, g1s, g2s, g3s = (_column_major(t) for t in (x, g1, g2, g3))
        h = torch.empty(xs.shape, dtype=acc, device=x.device)
        if h.numel():
            _launch(forward_kernel, planes, shape[2], xs, g1s, g2s, g3s, h, shape[3], shape[2])
        ctx.save_for_backward(xs, g1s, g2s, g3s, h)
        ctx.shape = shape
        ctx.dtypes = (x.dtype, g1.dtype, g2.dtype, g3.dtype)
        return _back(h, shape, x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        _, backward_kernel = _kernels()
        xs, g1s, g2s, g3s, h = ctx.saved_tensors
        shape, planes = ctx.shape, ctx.shape[0] * ctx.shape[1]
        grad = _column_major(grad_out)
        lam = torch.empty_like(h)
        grads = [torch.empty_like(h) for _ in range(4)]
        if h.numel():
            _launch(
                backward_kernel, planes, shape[2], xs, g1s, g2s, g3s, h, grad, lam, *grads,
                shape[3], shape[2],
            )  # fmt: skip
        return tuple(
            _back(g, shape, dtype) if need else None
            for g, dtype, need in zip(grads, ctx.dtypes, ctx.needs_input_grad)
        )


def spn_triton(
    x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor
) -> torch.Tensor:
    """:func:`~lightning_depth.models.spn.spn_left_to_right` in two Triton kernels (forward
    and backward), differentiable in all four inputs.

    Args:
        x, g1, g2, g3: ``(B, C, H, W)`` on a CUDA device (CPU tensors under
            ``TRITON_INTERPRET=1``), checked by the caller.

    Returns:
        ``(B, C, H, W)`` in ``x``'s dtype, accumulated in float32 (float64 for float64).
    """
    return _SPNTriton.apply(x, g1, g2, g3)
