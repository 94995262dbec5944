"""DepthAutoencoder computes what the keras-io DepthEstimationModel computes.

Random non-default weights (conv kernels, biases, BN gamma/beta and moving statistics) are set
on the PyTorch net and copied into the Keras reference; outputs are compared on random images,
float32, CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_depth.convert.keras import keras_to_torch, keras_variables, torch_to_keras
from lightning_depth.models.autoencoder import DepthAutoencoder, count_parameters
from tests.parity.conftest import (
    BATCH,
    HEIGHT,
    VARIANT_IDS,
    VARIANTS,
    WIDTH,
    nchw_to_nhwc,
    randomize_,
)

pytestmark = pytest.mark.parity

FORWARD_ATOL = 1e-5


@pytest.mark.parametrize(("depth", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_eval_forward_matches(keras_model, depth, activation):
    net = randomize_(DepthAutoencoder(depth=depth, activation=activation), seed=depth).eval()
    model = torch_to_keras(net, keras_model(depth, activation))
    x = torch.rand(BATCH, 3, HEIGHT, WIDTH)

    with torch.no_grad():
        ours = nchw_to_nhwc(net(x))
    theirs = model(nchw_to_nhwc(x), training=False).numpy()

    assert ours.shape == theirs.shape == (BATCH, HEIGHT, WIDTH, 1)
    # The random weights must drive the output well away from a constant, or the check is void.
    assert ours.std() > 0.05
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=FORWARD_ATOL)


@pytest.mark.parametrize(("depth", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_train_forward_matches(keras_model, depth, activation):
    """Training mode normalises with the batch statistics, not the moving ones.

    BN gamma is drawn from [0.25, 0.75] here: with unit-variance batch statistics the
    activations are larger than in eval mode, and at gamma ~ 1 each framework's float32 output
    is already 6-9e-6 from the float64 one (measured), too close to the 1e-5 tolerance. With
    the smaller gamma the frameworks agree to <= 5e-6 while the output still varies (std ~0.3).
    """
    net = DepthAutoencoder(depth=depth, activation=activation)
    randomize_(net, seed=10 + depth, gamma=(0.25, 0.75))
    model = torch_to_keras(net, keras_model(depth, activation))
    x = torch.rand(BATCH, 3, HEIGHT, WIDTH)

    with torch.no_grad():
        ours = nchw_to_nhwc(net.train()(x))
        eval_out = nchw_to_nhwc(net.eval()(x))
    theirs = model(nchw_to_nhwc(x), training=True).numpy()

    # Batch statistics differ from the random moving ones: the two modes must differ.
    assert np.abs(ours - eval_out).max() > 1e-2
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=FORWARD_ATOL)


@pytest.mark.parametrize(("depth", "expected"), [(4, 1_966_465), (3, 489_089)], ids=["414", "313"])
def test_parameter_count_matches_keras(keras_model, depth, expected):
    """Keras counts the BN moving mean and variance as (non-trainable) parameters."""
    model = keras_model(depth, "leaky_relu")
    net = DepthAutoencoder(depth=depth)
    assert model.count_params() == expected
    assert count_parameters(net) == expected
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert count_parameters(net, trainable_only=True) == trainable


def test_roundtrip_torch_keras_torch(keras_model):
    net = randomize_(DepthAutoencoder(depth=3, activation="swish"), seed=3)
    model = torch_to_keras(net, keras_model(3, "swish"))
    back = keras_to_torch(model, depth=3, activation="swish")

    state = net.state_dict()
    assert set(back) == set(state)
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        assert back[key].dtype == value.dtype, key
        assert torch.equal(back[key], value), key
    # Layouts really are transposed, not just reshaped: Keras holds conv_a as HWIO.
    kernel = keras_variables(model)["down.1.conv_a.weight"].numpy()
    assert kernel.shape == (3, 3, 16, 32)
    np.testing.assert_array_equal(kernel[1, 2, 5, 7], state["down.1.conv_a.weight"][7, 5, 1, 2])


def test_weights_file_saved_by_reference_loads(keras_model, tmp_path):
    """A ``.weights.h5`` saved by the reference loads into DepthAutoencoder: same outputs."""
    model = keras_model(4, "leaky_relu")
    # Non-default Keras-side weights, BN moving statistics included.
    rng = np.random.default_rng(0)
    for name, variable in keras_variables(model).items():
        scale = 0.05 if name.endswith("weight") and len(variable.shape) == 4 else 0.2
        value = rng.normal(size=variable.shape) * scale
        if name.endswith("running_var") or (name.endswith("weight") and len(variable.shape) == 1):
            value = 0.5 + rng.random(size=variable.shape)
        variable.assign(value.astype(np.float32))
    path = tmp_path / "dem.weights.h5"
    model.save_weights(str(path))

    net = DepthAutoencoder(depth=4, activation="leaky_relu").eval()
    net.load_state_dict(keras_to_torch(path, depth=4), strict=True)
    x = torch.rand(BATCH, 3, HEIGHT, WIDTH)
    with torch.no_grad():
        ours = nchw_to_nhwc(net(x))
    theirs = model(nchw_to_nhwc(x), training=False).numpy()
    assert ours.std() > 0.05
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=FORWARD_ATOL)
    # The file and the live model give identical tensors.
    from_model = keras_to_torch(model)
    from_file = keras_to_torch(str(path))
    assert all(torch.equal(from_model[k], from_file[k]) for k in from_model)


def test_variant_mismatch_is_a_clear_error(keras_model, tmp_path):
    model = keras_model(3, "leaky_relu")
    path = tmp_path / "dem313.weights.h5"
    model.save_weights(str(path))
    with pytest.raises(ValueError, match=r"3-1-3 model .* depth=4 \(4-1-4\)"):
        keras_to_torch(path, depth=4)
    with pytest.raises(ValueError, match=r"3-1-3 model .* depth=4 \(4-1-4\)"):
        keras_to_torch(model, depth=4)
    with pytest.raises(ValueError, match="4-1-4 model .* the Keras model a 3-1-3 one"):
        torch_to_keras(DepthAutoencoder(depth=4), model)
    with pytest.raises(ValueError, match="activation 'leaky_relu', expected 'swish'"):
        keras_to_torch(model, activation="swish")
    with pytest.raises(ValueError, match="PyTorch model uses activation 'swish'"):
        torch_to_keras(DepthAutoencoder(depth=3, activation="swish"), model)
    # A 3-1-3 state dict does not load into a 4-1-4 DepthAutoencoder either.
    with pytest.raises(RuntimeError, match="down.3"):
        DepthAutoencoder(depth=4).load_state_dict(keras_to_torch(path))
