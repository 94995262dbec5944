"""The keras-io "Monocular Depth Estimation" example, written faithfully with TensorFlow/Keras 3.

It is the reference the PyTorch port in ``lightning_depth`` is tested against
(``tests/parity``); it is not part of the installed package. See ``README.md``.

TensorFlow is configured here, before it is first imported, so that its numerics are plain
float32 on the CPU: oneDNN's fused/reordered kernels are off and GPUs are hidden from
TensorFlow (only from TensorFlow: PyTorch in the same process still sees them).
"""

from __future__ import annotations

import os

# Must be set before TensorFlow is imported; setdefault leaves an explicit choice alone.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

try:
    tf.config.set_visible_devices([], "GPU")
except RuntimeError:
    # TensorFlow was initialised before this import; its device choice can no longer change.
    pass

from reference_keras.data import load_sample  # noqa: E402
from reference_keras.model import (  # noqa: E402
    BottleNeckBlock,
    DepthEstimationModel,
    DownscaleBlock,
    UpscaleBlock,
    build_model,
)

__all__ = [
    "BottleNeckBlock",
    "DepthEstimationModel",
    "DownscaleBlock",
    "UpscaleBlock",
    "build_model",
    "load_sample",
]
