"""Weights from the reference implementations: Keras (mono) and the original AnyNet.

``keras_to_torch``/``torch_to_keras`` import TensorFlow only when given a live Keras model;
reading a ``.weights.h5`` file needs h5py (the ``parity`` extra).
"""

from lightning_depth.convert.anynet import load_original_anynet
from lightning_depth.convert.keras import keras_to_torch, torch_to_keras

__all__ = ["keras_to_torch", "load_original_anynet", "torch_to_keras"]
