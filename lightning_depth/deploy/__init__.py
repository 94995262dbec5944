"""Deployment: export to ONNX / TorchScript, int8 quantisation and pruning.

``lightning_depth export ...`` runs :func:`lightning_depth.deploy.export.main` and
``lightning_depth compress ...`` :func:`lightning_depth.deploy.compress.main`.
"""
