"""The SPN's Triton kernels (models.spn_triton) against the PyTorch form and the original
kernel's per-pixel reference.

Where no CUDA device is given (the default ``--device cpu``), the kernels run in Triton's
interpreter on CPU tensors: the same kernel code, executed by numpy, so their logic (masks,
the column loops, the adjoint recurrence, the dtypes) is checked everywhere. The compiled GPU
form runs only with ``--device cuda`` on a machine with CUDA; a CPU run says it did not run it
(see the line this test prints). Speed is ``benchmarks/bench_gpu.py``'s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_depth.models import spn_triton
from lightning_depth.models.spn import spn_backend, spn_left_to_right

ROOT = Path(__file__).resolve().parents[2]


def _run_checks(*args: str, interpret: bool, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(cache)  # (not the user's ~/.triton)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "tests.models.spn_triton_checks", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def checks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    device = request.config.getoption("--device")
    cache = tmp_path_factory.mktemp("triton_cache")
    return _run_checks("--device", device, interpret=device == "cpu", cache=cache)


def test_triton_kernels_compile_for_a100_and_h100(tmp_path):
    """Ahead-of-time compilation to cubin (Triton's own ptxas, no GPU needed) catches what
    the interpreter lets through (types, masks, unsupported ops), for every input dtype, and
    shows the kernels keep their column in registers (no local-memory spills)."""
    compiled = _run_checks("--compile", interpret=False, cache=tmp_path)
    assert len(compiled) == 2 * 4 * 2  # sm_80, sm_90 x 4 dtypes x forward, backward
    for case, result in compiled.items():
        assert result["cubin_bytes"] > 1000 and not result["local_memory"], (case, result)


def test_triton_kernels_equal_the_pytorch_form(checks, capsys):
    with capsys.disabled():
        where = "on CUDA (compiled)" if checks["device"] == "cuda" else (
            "in Triton's interpreter on CPU; the compiled CUDA form was NOT run here "
            "(pytest --device cuda on a GPU machine runs it)"
        )  # fmt: skip
        print(f"\nTriton SPN kernels checked {where}")
    assert checks["forward_rel"] <= 1e-5 and checks["backward_rel"] <= 1e-5, checks
    assert checks["reference_rel_f64"] <= 1e-12 and checks["gradcheck"], checks
    assert checks["anynet_rel"] <= 1e-5 and checks["anynet_grad_rel"] <= 1e-4, checks
    assert checks["autocast_dtype"] == "float32" and checks["autocast_rel"] <= 1e-5, checks


def test_triton_half_inputs_accumulate_in_float32(checks):
    # within a few roundings of the output dtype of the float32 recurrence (fp16 eps 9.8e-4,
    # bf16 7.8e-3), and closer than the PyTorch form computed in the half dtype itself
    for name, eps in (("float16", 2**-10), ("bfloat16", 2**-7)):
        assert checks[f"{name}_dtype"] == name
        assert checks[f"{name}_rel"] <= eps, checks
        assert checks[f"{name}_rel"] < checks[f"{name}_torch_rel"], checks


def test_auto_picks_triton_only_on_cuda(checks):
    assert checks["auto_backend"] == ("triton" if checks["device"] == "cuda" else "native")


def test_triton_backend_refuses_what_it_cannot_run(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.zeros(1, 1, 2, 3)
    with pytest.raises(RuntimeError, match=r"backend='triton' needs CUDA tensors .* got x torch"):
        spn_left_to_right(x, x, x, x, backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(spn_triton, "triton_reason", lambda: "triton cannot be imported (test)")
    with pytest.raises(RuntimeError, match=r"'triton' is unavailable: triton cannot be imported"):
        spn_backend(x, x, x, x, backend="triton")


@pytest.mark.parametrize("capability, expected", [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_auto_takes_triton_from_ampere_on(monkeypatch, capability, expected):
    from lightning_depth.models import spn

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert spn.triton_gpu(torch.device("cuda", 0)) is expected
