"""Deployment: export to ONNX / TorchScript with the contract inside, a small runtime, int8
quantisation and pruning.

``lightning_depth export ...`` runs :func:`lightning_depth.deploy.export.main`,
``lightning_depth predict --model FILE.onnx ...``
:func:`lightning_depth.deploy.predict_command.main` and ``lightning_depth compress ...``
:func:`lightning_depth.deploy.compress.main`.

:func:`load` (from :mod:`lightning_depth.deploy.runtime`, which needs only numpy and
onnxruntime, or torch for TorchScript files) runs an exported file with checked inputs::

    from lightning_depth.deploy import load

    model = load("stereo.onnx")
    disparity = model(left, right)  # uint8 RGB (H, W, 3) -> float32 (H, W), in model.unit
"""

from lightning_depth.deploy.runtime import DeployedModel, load, read_metadata

__all__ = ["DeployedModel", "load", "read_metadata"]
