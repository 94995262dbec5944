"""The Keras weight converter without TensorFlow: a stand-in with the keras-io layer layout.

The real Keras model and ``.weights.h5`` files are covered by ``tests/parity/test_model.py``.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lightning_depth.convert.keras import keras_to_torch, keras_variables, torch_to_keras
from lightning_depth.models.autoencoder import DepthAutoencoder


class _Var:
    """Just what the converter uses of a Keras variable."""

    def __init__(self, shape: tuple, path: str, rng: np.random.Generator) -> None:
        self.value = rng.standard_normal(shape).astype(np.float32)
        self.path = path
        self.trainable = "moving" not in path

    @property
    def shape(self) -> tuple:
        return self.value.shape

    def numpy(self) -> np.ndarray:
        return self.value.copy()

    def assign(self, value: np.ndarray) -> None:
        assert value.shape == self.value.shape
        self.value = np.array(value, dtype=np.float32)


class LeakyReLU:  # the converter recognises Keras' LeakyReLU by its class name
    pass


def swish(x):  # Keras' Activation("swish") holds keras.activations.swish
    return x


def _fake_keras_model(depth: int, activation: str = "leaky_relu", in_channels: int = 3):
    """Attribute layout of keras-io's DepthEstimationModel, HWIO kernels, random values."""
    rng = np.random.default_rng(depth)
    filters = [16 * 2**i for i in range(depth + 1)]

    def act():
        if activation == "leaky_relu":
            return LeakyReLU()
        return SimpleNamespace(activation=swish)

    def conv(path, c_in, c_out, k=3):
        return SimpleNamespace(
            kernel=_Var((k, k, c_in, c_out), f"{path}/kernel", rng),
            bias=_Var((c_out,), f"{path}/bias", rng),
        )

    def bn(path, c):
        return SimpleNamespace(
            **{
                v: _Var((c,), f"{path}/{v}", rng)
                for v in ("gamma", "beta", "moving_mean", "moving_variance")
            }
        )

    def block(path, c_in, c_out):
        return SimpleNamespace(
            convA=conv(f"{path}/convA", c_in, c_out),
            bn2a=bn(f"{path}/bn2a", c_out),
            convB=conv(f"{path}/convB", c_out, c_out),
            bn2b=bn(f"{path}/bn2b", c_out),
            reluA=act(),
        )

    down_in = [in_channels, *filters[: depth - 1]]
    return SimpleNamespace(
        name="fake",
        downscale_blocks=[block(f"down{i}", down_in[i], filters[i]) for i in range(depth)],
        bottle_neck_block=SimpleNamespace(
            convA=conv("bn/convA", filters[depth - 1], filters[depth]),
            convB=conv("bn/convB", filters[depth], filters[depth]),
        ),
        upscale_blocks=[
            block(f"up{j}", filters[i + 1] + filters[i], filters[i])
            for j, i in enumerate(reversed(range(depth)))
        ],
        conv_layer=conv("head", filters[0], 1, k=1),
    )


@pytest.mark.parametrize("depth", [1, 3])
def test_keras_to_torch_maps_layers_by_role_and_transposes(depth):
    model = _fake_keras_model(depth)
    state = keras_to_torch(model, depth=depth)

    net = DepthAutoencoder(depth=depth)
    assert list(state) == list(net.state_dict())
    net.load_state_dict(state, strict=True)
    up0 = model.upscale_blocks[0]  # the deepest: takes the bottleneck output
    np.testing.assert_array_equal(
        state["up.0.conv_a.weight"].numpy(), up0.convA.kernel.value.transpose(3, 2, 0, 1)
    )
    np.testing.assert_array_equal(
        state["up.0.bn_b.running_var"].numpy(), up0.bn2b.moving_variance.value
    )
    np.testing.assert_array_equal(state["up.0.bn_a.weight"].numpy(), up0.bn2a.gamma.value)
    np.testing.assert_array_equal(state["up.0.bn_a.bias"].numpy(), up0.bn2a.beta.value)
    down = model.downscale_blocks[depth - 1]
    np.testing.assert_array_equal(
        state[f"down.{depth - 1}.bn_a.running_mean"].numpy(), down.bn2a.moving_mean.value
    )
    np.testing.assert_array_equal(state["head.bias"].numpy(), model.conv_layer.bias.value)
    # One element traced through the layouts: Keras [kh, kw, in, out] is PyTorch [out, in, kh, kw].
    kernel = model.bottle_neck_block.convB.kernel.value
    assert state["bottleneck.conv_b.weight"][5, 7, 0, 2].item() == kernel[0, 2, 7, 5]


def test_torch_to_keras_roundtrip():
    net = DepthAutoencoder(depth=2, activation="swish")
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    model = torch_to_keras(net, _fake_keras_model(2, "swish"))
    back = keras_to_torch(model, depth=2, activation="swish")
    for key, value in net.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(back[key], value), key
    assert keras_variables(model)["down.1.conv_b.weight"].shape == (3, 3, 32, 32)


def test_variant_mismatch_errors():
    with pytest.raises(ValueError, match=r"3-1-3 model \(3 down-scale blocks\), but depth=4"):
        keras_to_torch(_fake_keras_model(3), depth=4)
    with pytest.raises(ValueError, match="4-1-4 model .* the Keras model a 3-1-3 one"):
        torch_to_keras(DepthAutoencoder(depth=4), _fake_keras_model(3))
    with pytest.raises(ValueError, match="uses activation 'leaky_relu', expected 'swish'"):
        keras_to_torch(_fake_keras_model(2), activation="swish")
    with pytest.raises(ValueError, match="PyTorch model uses activation 'swish'"):
        torch_to_keras(DepthAutoencoder(depth=2, activation="swish"), _fake_keras_model(2))


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="without the attribute 'downscale_blocks'"):
        keras_to_torch(object())
    with pytest.raises(ValueError, match=r"no 'down.<i>.conv_a.weight'.*'net.' prefix"):
        state = {f"net.{k}": v for k, v in DepthAutoencoder(depth=2).state_dict().items()}
        torch_to_keras(state, _fake_keras_model(2))
    model = _fake_keras_model(2)
    model.upscale_blocks[1].convB.kernel.value = np.zeros((3, 3, 16, 8), np.float32)
    with pytest.raises(
        ValueError, match=r"up.1.conv_b.weight: \(8, 16, 3, 3\) vs \(16, 16, 3, 3\)"
    ):
        keras_to_torch(model)


def test_weights_file_errors(tmp_path, monkeypatch):
    pytest.importorskip("h5py")  # the parity extra; without it, the ImportError test below
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        keras_to_torch(tmp_path / "missing.weights.h5")
    bad = tmp_path / "notes.weights.h5"
    bad.write_text("not hdf5")
    with pytest.raises(ValueError, match=r"notes.weights.h5.*not a Keras 3 .weights.h5 file"):
        keras_to_torch(bad)


def test_missing_h5py_names_the_parity_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"lightning_depth\[parity\]"):
        keras_to_torch(tmp_path / "dem.weights.h5")


def _write_keras3_h5(path, model, up_container: str) -> None:
    """The layout Keras 3's ``save_weights`` writes for keras-io's model (see the parity test)."""
    import h5py

    def layer(group, variables):
        vars_group = group.create_group("vars")
        for i, var in enumerate(variables):
            vars_group.create_dataset(str(i), data=var.value)

    def block(group, blk):
        for role in ("convA", "convB"):
            conv = getattr(blk, role)
            layer(group.create_group(role), [conv.kernel, conv.bias])
        for role in ("bn2a", "bn2b"):
            bn = getattr(blk, role)
            layer(group.create_group(role), [bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance])

    with h5py.File(path, "w") as h5:
        for container, blocks, prefix in (
            ("downscale_blocks", model.downscale_blocks, "downscale_block"),
            (up_container, model.upscale_blocks, "upscale_block"),
        ):
            group = h5.require_group(container)
            # Written in scrambled order: the reader must order by the name's suffix.
            for i in reversed(range(len(blocks))):
                block(group.create_group(prefix if i == 0 else f"{prefix}_{i}"), blocks[i])
        bottleneck = h5.create_group("bottle_neck_block")
        for role in ("convA", "convB"):
            conv = getattr(model.bottle_neck_block, role)
            layer(bottleneck.create_group(role), [conv.kernel, conv.bias])
        layer(h5.create_group("conv_layer"), [model.conv_layer.kernel, model.conv_layer.bias])
        h5.create_group("optimizer").create_group("vars")


@pytest.mark.parametrize("up_container", ["layers", "upscale_blocks"])
def test_weights_file_layout(tmp_path, up_container):
    pytest.importorskip("h5py")
    model = _fake_keras_model(3)
    path = tmp_path / "dem.weights.h5"
    _write_keras3_h5(path, model, up_container)
    from_file = keras_to_torch(str(path), depth=3)
    from_model = keras_to_torch(model, depth=3)
    assert list(from_file) == list(from_model)
    for key, value in from_model.items():
        assert torch.equal(from_file[key], value), key
    with pytest.raises(ValueError, match=r"dem.weights.h5' holds a 3-1-3 model"):
        keras_to_torch(path, depth=4)
