"""Lightning training for monocular and stereo depth estimation.

The task modules are imported lazily so that ``import lightning_depth`` (and the ``synth``
command) stay light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MonoDepthModule": "lightning_depth.tasks.mono",
    "StereoDepthModule": "lightning_depth.tasks.stereo",
}

__all__ = ["MonoDepthModule", "StereoDepthModule", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lightning_depth' has no attribute {name!r}")
