"""Fixtures for the parity tests against the Keras reference in ``reference_keras/``.

Parity is never skipped: without TensorFlow the tests fail with the install hint. TensorFlow
is imported only when a parity test runs (``-m "not parity"`` runs pay nothing), and it is
configured first: oneDNN off and GPUs hidden (by ``reference_keras``) so its numerics are
plain float32, logs quiet.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Callable, Dict, Tuple

import pytest
import torch
from torch import nn

# Before any TensorFlow import, wherever it comes from.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

INSTALL_HINT = 'pip install -e ".[parity]" (or run `tox -e parity`)'

# Small, but deep BN layers of the 4-1-4 net still see 2 * 8 * 8 = 128 values per channel.
BATCH, HEIGHT, WIDTH = 2, 64, 64
VARIANTS = [(4, "leaky_relu"), (3, "leaky_relu"), (3, "swish")]
VARIANT_IDS = ["414-leaky", "313-leaky", "313-swish"]


@pytest.fixture(scope="session")
def rk() -> ModuleType:
    """The ``reference_keras`` package (TensorFlow/Keras); fails, never skips, without it."""
    try:
        import reference_keras
    except ImportError as err:
        problem = str(err)
    else:
        return reference_keras
    pytest.fail(
        f"parity tests need TensorFlow, Keras and OpenCV ({problem}); install them with "
        f"{INSTALL_HINT}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def tf(rk: ModuleType) -> ModuleType:
    import tensorflow

    return tensorflow


@pytest.fixture(scope="session")
def keras_model(rk: ModuleType) -> Callable[[int, str], object]:
    """``keras_model(depth, activation)``: a built, compiled reference model, cached.

    Cached models are shared: a test must set every weight (``torch_to_keras``) before use,
    and must not train them (build a fresh one with ``rk.build_model`` for that).
    """
    cache: Dict[Tuple[int, str], object] = {}

    def get(depth: int, activation: str) -> object:
        if (depth, activation) not in cache:
            cache[depth, activation] = rk.build_model(
                depth=depth, activation=activation, height=HEIGHT, width=WIDTH
            )
        return cache[depth, activation]

    return get


def randomize_(net: nn.Module, seed: int = 0, gamma: Tuple[float, float] = (0.5, 1.5)) -> nn.Module:
    """Give every weight and BN statistic a random, non-default value, in place.

    LeCun-scaled conv weights keep activations O(1) through the depth (He scaling doubles
    them down the residual blocks, and float32 rounding grows with them). BN gamma (drawn
    from ``gamma``), beta and the moving statistics are away from their defaults (1, 0, 0, 1),
    so a swapped or missing statistic shows.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * fan_in**-0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            elif isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                low, high = gamma
                module.weight.copy_(low + (high - low) * torch.rand(c, generator=gen))
                module.bias.copy_(torch.randn(c, generator=gen) * 0.2)
                module.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                module.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
    return net


def nchw_to_nhwc(x: torch.Tensor):
    """A torch ``(B, C, H, W)`` tensor as a float32 numpy ``(B, H, W, C)`` array for Keras."""
    return x.detach().permute(0, 2, 3, 1).contiguous().numpy()


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """``||a - b|| / ||b||`` in float64 (0 when both are zero)."""
    a, b = a.double(), b.double()
    denom = b.norm().item()
    return (a - b).norm().item() / denom if denom > 0 else (a - b).norm().item()


@pytest.fixture
def random_batch() -> Callable[[int], Tuple[torch.Tensor, torch.Tensor]]:
    """``random_batch(seed)``: images ``(B, 3, H, W)`` in [0, 1] and log-depth targets
    ``(B, 1, H, W)`` in [0.1, log(300)], smooth enough for SSIM and the edge term to matter."""

    def make(seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        image = torch.rand(BATCH, 3, HEIGHT, WIDTH, generator=gen)
        coarse = torch.rand(BATCH, 1, HEIGHT // 8, WIDTH // 8, generator=gen)
        target = nn.functional.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bilinear")
        target = 0.1 + (5.7 - 0.1) * target + 0.05 * torch.rand(target.shape, generator=gen)
        return image, target

    return make
