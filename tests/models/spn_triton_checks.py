"""Checks of the Triton SPN kernels, run in a subprocess by ``test_spn_triton.py`` (Triton
reads ``TRITON_INTERPRET`` once, when a kernel is defined, so the interpreted CPU run needs a
fresh process). Prints one JSON line of measured errors; the test holds them to bounds.

    TRITON_INTERPRET=1 python -m tests.models.spn_triton_checks --device cpu
    python -m tests.models.spn_triton_checks --device cuda
    python -m tests.models.spn_triton_checks --compile   # ahead-of-time, no GPU needed
"""

from __future__ import annotations

import argparse
import json

import torch

from lightning_depth.models.anynet import AnyNet
from lightning_depth.models.spn import spn_backend, spn_left_to_right
from tests.models.test_spn import _reference


def _gates(shape, dtype, device, generator):
    """Input and gates normalised as AnyNet's (|g1| + |g2| + |g3| < 1)."""
    x, g1, g2, g3 = (
        torch.randn(*shape, dtype=torch.float64, generator=generator) for _ in range(4)
    )
    norm = g1.abs() + g2.abs() + g3.abs() + 1e-8
    return [t.to(device=device, dtype=dtype) for t in (x, g1 / norm, g2 / norm, g3 / norm)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def run(device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    out: dict = {"device": device}
    # Forward and backward against the PyTorch form (float32), several shapes: one row, one
    # column, a height that is not a power of 2.
    fwd, bwd = [], []
    for shape in ((2, 3, 5, 7), (1, 2, 1, 4), (1, 1, 6, 1), (1, 2, 37, 19)):
        inputs = [t.requires_grad_() for t in _gates(shape, torch.float32, device, g)]
        got = spn_left_to_right(*inputs, backend="triton")
        leaves = [t.detach().cpu().requires_grad_() for t in inputs]
        ref = spn_left_to_right(*leaves, backend="torch")
        fwd.append(_rel(got, ref))
        grad = torch.randn(shape, generator=g)
        got_grads = torch.autograd.grad(got, inputs, grad.to(device))
        ref_grads = torch.autograd.grad(ref, leaves, grad)
        bwd.append(max(_rel(a, b) for a, b in zip(got_grads, ref_grads)))
    out["forward_rel"], out["backward_rel"] = max(fwd), max(bwd)
    # The per-pixel reference of the original kernel, float64.
    inputs = _gates((1, 2, 4, 6), torch.float64, device, g)
    out["reference_rel_f64"] = _rel(
        spn_left_to_right(*inputs, backend="triton"), _reference(*(t.cpu() for t in inputs))
    )
    # Gradients by finite differences, float64.
    inputs = [t.requires_grad_() for t in _gates((1, 2, 4, 5), torch.float64, device, g)]
    out["gradcheck"] = bool(
        torch.autograd.gradcheck(lambda *t: spn_left_to_right(*t, backend="triton"), inputs)
    )
    # Half-precision inputs accumulate in float32: over a long row the result stays within
    # the output's rounding of the float32 recurrence, where the PyTorch form run in the half
    # dtype drifts further.
    for dtype in (torch.float16, torch.bfloat16):
        half = _gates((1, 2, 8, 300), dtype, device, g)
        exact = spn_left_to_right(*(t.float().cpu() for t in half), backend="torch")
        got = spn_left_to_right(*half, backend="triton")
        name = str(dtype).split(".")[-1]
        out[f"{name}_dtype"] = str(got.dtype).split(".")[-1]
        out[f"{name}_rel"] = _rel(got, exact)
        out[f"{name}_torch_rel"] = _rel(
            spn_left_to_right(*(t.cpu() for t in half), backend="torch"), exact
        )
    # Under autocast (float32 inputs) nothing changes.
    inputs = _gates((1, 2, 5, 9), torch.float32, device, g)
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        auto = spn_left_to_right(*inputs, backend="triton")
    out["autocast_dtype"] = str(auto.dtype).split(".")[-1]
    out["autocast_rel"] = _rel(auto, spn_left_to_right(*(t.cpu() for t in inputs), backend="torch"))
    # What "auto" picks here, and AnyNet with its SPN on the Triton kernels, training step
    # gradients included, against the PyTorch form.
    out["auto_backend"] = spn_backend(*inputs)
    torch.manual_seed(0)
    net = AnyNet(spn_channels=2).to(device)
    left, right = (torch.randn(1, 3, 32, 64, generator=g).to(device) for _ in range(2))
    results = {}
    for backend in ("triton", "torch"):
        net.spn.backend = backend
        net.zero_grad()
        preds = net(left, right)
        preds[-1].square().mean().backward()
        results[backend] = (preds[-1].detach(), net.spn.gate_net[0].weight.grad.clone())
    out["anynet_rel"] = _rel(results["triton"][0], results["torch"][0])
    out["anynet_grad_rel"] = _rel(results["triton"][1], results["torch"][1])
    return out


def compile_for_gpus(capabilities=(80, 90)) -> dict:
    """Compile both kernels ahead of time (no GPU needed: Triton ships ptxas) for each CUDA
    compute capability and input dtype; per case whether a cubin came out and whether the
    PTX spills to local memory."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from lightning_depth.models.spn_triton import _kernels

    forward_kernel, backward_kernel = _kernels()
    out = {}
    for capability in capabilities:
        for dtype in ("fp16", "bf16", "fp32", "fp64"):
            acc = "fp64" if dtype == "fp64" else "fp32"
            inputs = {f"{n}_ptr": f"*{dtype}" for n in ("x", "g1", "g2", "g3")}
            sizes = {"W": "i32", "H": "i32", "BLOCK_H": "constexpr"}
            signatures = {
                "forward": (forward_kernel, {**inputs, "h_ptr": f"*{acc}", **sizes}),
                "backward": (
                    backward_kernel,
                    {
                        **inputs,
                        "h_ptr": f"*{acc}",
                        "grad_ptr": f"*{dtype}",
                        **{f"{n}_ptr": f"*{acc}" for n in ("lam", "dx", "dg1", "dg2", "dg3")},
                        **sizes,
                    },
                ),
            }
            for name, (kernel, signature) in signatures.items():
                compiled = triton.compile(
                    ASTSource(fn=kernel, signature=signature, constexprs={"BLOCK_H": 128}),
                    target=GPUTarget("cuda", capability, 32),
                )
                out[f"sm{capability}_{dtype}_{name}"] = {
                    "cubin_bytes": len(compiled.asm["cubin"]),
                    "local_memory": ".local" in compiled.asm["ptx"],
                }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="compile for GPUs instead")
    args = parser.parse_args()
    print(json.dumps(compile_for_gpus() if args.compile else run(args.device)))


if __name__ == "__main__":
    main()
