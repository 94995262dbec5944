"""Which graph capture, if any, is running: the few ops with a fast in-place eager form
(the SPN column loop, the 3D-convolution depth taps) switch to a pure form under capture."""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["capture_mode"]


def capture_mode() -> Optional[str]:
    """``"export"`` under ``torch.export`` (and so ONNX export), ``"trace"`` under
    ``torch.jit.trace``, else ``None`` (eager, autograd)."""
    # torch.compiler.is_exporting exists from torch 2.5; earlier versions never export here.
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    if is_exporting is not None and is_exporting():
        return "export"
    if torch.jit.is_tracing():
        return "trace"
    return None
