"""Weights between the keras-io ``DepthEstimationModel`` and :class:`DepthAutoencoder`.

Layers are matched by structure and name, never by a flat position list:

==========================================  ==========================================
Keras (``reference_keras``, keras-io)        PyTorch (``DepthAutoencoder``)
==========================================  ==========================================
``downscale_blocks[i].convA`` / ``convB``   ``down.i.conv_a`` / ``conv_b``
``downscale_blocks[i].bn2a`` / ``bn2b``     ``down.i.bn_a`` / ``bn_b``
``bottle_neck_block.convA`` / ``convB``     ``bottleneck.conv_a`` / ``conv_b``
``upscale_blocks[i]`` (0 = deepest)          ``up.i`` (0 = deepest), same roles
``conv_layer``                               ``head``
==========================================  ==========================================

Conv kernels go from Keras' ``(kh, kw, in, out)`` (HWIO) to PyTorch's ``(out, in, kh, kw)``
(OIHW); batch norm ``gamma, beta, moving_mean, moving_variance`` become ``weight, bias,
running_mean, running_var``. Activations hold no weights, so a LeakyReLU checkpoint loads into
a Swish model without complaint: pass ``activation`` to have a Keras model's checked.

Neither function imports TensorFlow: a Keras model is read and written through its layer
attributes, and a ``.weights.h5`` file is read with h5py (installed with the ``parity`` extra).
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from lightning_depth.models.autoencoder import DepthAutoencoder

__all__ = ["keras_to_torch", "keras_variables", "read_keras_weights", "torch_to_keras"]

_PARITY_HINT = 'pip install "lightning_depth[parity]" (or pip install -e ".[parity]")'

# Keras attribute -> PyTorch submodule, inside a block.
_BLOCK_ROLES = {"convA": "conv_a", "bn2a": "bn_a", "convB": "conv_b", "bn2b": "bn_b"}
_BOTTLENECK_ROLES = {"convA": "conv_a", "convB": "conv_b"}
# Keras model attribute holding a list of blocks -> PyTorch ModuleList.
_BLOCK_LISTS = {"downscale_blocks": "down", "upscale_blocks": "up"}
_CONV_VARS = {"kernel": "weight", "bias": "bias"}
# Keras' BatchNormalization creates its variables in this order (the .weights.h5 order).
_BN_VARS = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}

KerasWeights = Dict[str, np.ndarray]
PathLike = Union[str, "os.PathLike[str]"]


# -- the Keras side, as a flat dict keyed by Keras attribute path -------------------------
# e.g. "downscale_blocks.0.bn2a.moving_mean", "bottle_neck_block.convA.kernel",
# "conv_layer.bias": one format for both a live Keras model and a .weights.h5 file.


def _keras_layers(model: Any) -> List[Tuple[str, Any, Dict[str, str]]]:
    """``(keras path, layer, {keras var: torch var})`` for every weighted layer of the model."""
    for attr in ("downscale_blocks", "bottle_neck_block", "upscale_blocks", "conv_layer"):
        if not hasattr(model, attr):
            raise TypeError(
                f"expected a keras-io DepthEstimationModel (reference_keras.DepthEstimationModel), "
                f"got {type(model).__name__} without the attribute {attr!r}"
            )
    out = []
    for list_attr in _BLOCK_LISTS:
        for i, block in enumerate(getattr(model, list_attr)):
            for role in _BLOCK_ROLES:
                vars_ = _BN_VARS if role.startswith("bn") else _CONV_VARS
                out.append((f"{list_attr}.{i}.{role}", getattr(block, role), vars_))
    for role in _BOTTLENECK_ROLES:
        out.append(
            (f"bottle_neck_block.{role}", getattr(model.bottle_neck_block, role), _CONV_VARS)
        )
    out.append(("conv_layer", model.conv_layer, _CONV_VARS))
    return out


def keras_variables(keras_model: Any) -> Dict[str, Any]:
    """The variables of a built Keras ``DepthEstimationModel``, keyed by PyTorch name.

    Args:
        keras_model: a built keras-io ``DepthEstimationModel``.

    Returns:
        ``{DepthAutoencoder state-dict name: Keras variable}``, e.g. ``"down.0.conv_a.weight"``
        -> ``downscale_blocks[0].convA.kernel`` (HWIO, while the PyTorch tensor is OIHW). Useful
        to pair gradients or optimizer slots; ``num_batches_tracked`` has no entry.
    """
    out = {}
    for path, layer, vars_ in _keras_layers(keras_model):
        for var in vars_:
            variable = getattr(layer, var, None)
            if variable is None:
                raise ValueError(
                    f"Keras layer {path} has no variable {var!r}: build the model (call it on an "
                    "input) before converting"
                )
            out[_torch_name(f"{path}.{var}")] = variable
    return out


def _read_keras_model(model: Any) -> KerasWeights:
    weights: KerasWeights = {}
    for path, layer, vars_ in _keras_layers(model):
        for var in vars_:
            variable = getattr(layer, var, None)
            if variable is None:
                raise ValueError(
                    f"Keras layer {path} has no variable {var!r}: build the model (call it on an "
                    "input) before converting"
                )
            weights[f"{path}.{var}"] = np.asarray(variable.numpy(), dtype=np.float32)
    return weights


_BLOCK_GROUP = re.compile(r"^(downscale|upscale)_block(?:_(\d+))?$")


def read_keras_weights(path: PathLike) -> KerasWeights:
    """Read a Keras 3 ``.weights.h5`` file saved by ``DepthEstimationModel.save_weights``.

    Keras 3 stores each layer's variables under its attribute path (``bottle_neck_block/convA/
    vars/0``), and the blocks of a list as ``<container>/downscale_block``,
    ``downscale_block_1``, ... in list order. The container is the first model attribute
    (alphabetically) that lists the block: ``downscale_blocks`` for the down blocks, but the
    up blocks land in ``layers`` (``Model.layers`` sorts before ``upscale_blocks``). So blocks
    are found by their group name in any top-level container, ordered by the numeric suffix.

    Args:
        path: the ``.weights.h5`` file.

    Returns:
        ``{keras attribute path: array}``, e.g. ``"downscale_blocks.0.convA.kernel"``.

    Raises:
        ImportError: h5py is missing (install the ``parity`` extra).
        FileNotFoundError: no such file.
        ValueError: the file is not a Keras 3 weights file of a DepthEstimationModel.
    """
    try:
        import h5py
    except ImportError as err:
        raise ImportError(f"reading Keras .weights.h5 files needs h5py: {_PARITY_HINT}") from err
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such Keras weights file: {path!r}")

    def bad(problem: str) -> ValueError:
        return ValueError(
            f"{path!r} is not a Keras 3 .weights.h5 file of the keras-io DepthEstimationModel "
            f"(saved with model.save_weights): {problem}"
        )

    def layer_vars(group: Any, where: str, names: Mapping[str, str]) -> KerasWeights:
        if "vars" not in group:
            raise bad(f"no group {where}/vars")
        stored = group["vars"]
        if len(stored) != len(names):
            raise bad(f"{where} holds {len(stored)} variables, expected {len(names)}")
        return {
            f"{name}": np.asarray(stored[str(k)], dtype=np.float32) for k, name in enumerate(names)
        }

    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise bad(f"h5py cannot open it ({err})") from err
    with h5:
        blocks: Dict[str, Dict[int, Any]] = {"downscale": {}, "upscale": {}}
        for container in h5.values():
            if not isinstance(container, h5py.Group):
                continue
            for name, group in container.items():
                match = _BLOCK_GROUP.match(name)
                if match is None:
                    continue
                kind, index = match.group(1), int(match.group(2) or 0)
                if index in blocks[kind]:
                    raise bad(f"two groups for {kind}_block number {index}")
                blocks[kind][index] = (f"{container.name.lstrip('/')}/{name}", group)

        weights: KerasWeights = {}
        for kind, list_attr in (("downscale", "downscale_blocks"), ("upscale", "upscale_blocks")):
            if not blocks[kind]:
                raise bad(f"no {kind}_block groups")
            for i, index in enumerate(sorted(blocks[kind])):
                where, group = blocks[kind][index]
                for role in _BLOCK_ROLES:
                    if role not in group:
                        raise bad(f"no group {where}/{role}")
                    vars_ = _BN_VARS if role.startswith("bn") else _CONV_VARS
                    for var, value in layer_vars(group[role], f"{where}/{role}", vars_).items():
                        weights[f"{list_attr}.{i}.{role}.{var}"] = value
        for role in _BOTTLENECK_ROLES:
            where = f"bottle_neck_block/{role}"
            if where not in h5:
                raise bad(f"no group {where}")
            for var, value in layer_vars(h5[where], where, _CONV_VARS).items():
                weights[f"bottle_neck_block.{role}.{var}"] = value
        if "conv_layer" not in h5:
            raise bad("no group conv_layer")
        for var, value in layer_vars(h5["conv_layer"], "conv_layer", _CONV_VARS).items():
            weights[f"conv_layer.{var}"] = value
    return weights


# -- the mapping ---------------------------------------------------------------------------


def _torch_name(keras_name: str) -> str:
    """``"upscale_blocks.2.bn2b.moving_variance"`` -> ``"up.2.bn_b.running_var"``."""
    parts = keras_name.split(".")
    var = parts[-1]
    torch_var = _BN_VARS.get(var) or _CONV_VARS[var]
    if parts[0] in _BLOCK_LISTS:
        return f"{_BLOCK_LISTS[parts[0]]}.{parts[1]}.{_BLOCK_ROLES[parts[2]]}.{torch_var}"
    if parts[0] == "bottle_neck_block":
        return f"bottleneck.{_BOTTLENECK_ROLES[parts[1]]}.{torch_var}"
    return f"head.{torch_var}"


def _keras_depth(names: Any) -> Tuple[int, int]:
    """Number of down- and up-scale blocks among Keras weight names."""

    def count(list_attr: str) -> int:
        return len({n.split(".")[1] for n in names if n.startswith(list_attr + ".")})

    return count("downscale_blocks"), count("upscale_blocks")


def _variant(depth: int) -> str:
    return f"{depth}-1-{depth}"


def _keras_activation(model: Any) -> Optional[str]:
    """The activation of a Keras DepthEstimationModel, from its first block's layer."""
    layer = model.downscale_blocks[0].reluA
    if type(layer).__name__ == "LeakyReLU":
        return "leaky_relu"
    name = getattr(getattr(layer, "activation", None), "__name__", "")
    return "swish" if name in ("swish", "silu") else None


def _torch_activation(module: nn.Module) -> Optional[str]:
    act = getattr(module.down[0], "act", None) if hasattr(module, "down") else None
    if isinstance(act, nn.LeakyReLU):
        return "leaky_relu"
    return "swish" if isinstance(act, nn.SiLU) else None


def keras_to_torch(
    keras_model_or_weights_file: Union[Any, PathLike],
    depth: Optional[int] = None,
    activation: Optional[str] = None,
) -> Dict[str, torch.Tensor]:
    """A :class:`DepthAutoencoder` state dict from Keras weights.

    Args:
        keras_model_or_weights_file: a built keras-io ``DepthEstimationModel`` (e.g.
            ``reference_keras.build_model()``), or the path of a ``.weights.h5`` file it saved.
        depth: the variant expected (4 for 4-1-4, 3 for 3-1-3); None takes it from the weights.
        activation: ``"leaky_relu"`` or ``"swish"``: checked against a Keras model's layers.
            Weights files do not record the activation, so it is not checked for them.

    Returns:
        ``{name: tensor}`` (float32) for ``DepthAutoencoder(depth, activation).load_state_dict``
        with ``strict=True``; ``num_batches_tracked`` is 0 (Keras has no counterpart and the
        fixed BN momentum makes it unused).

    Raises:
        ValueError: the weights are another variant than ``depth`` (e.g. 3-1-3 weights for
            ``depth=4``), or shapes do not fit a DepthAutoencoder, or the activation differs.
        ImportError: a weights file is given and h5py is missing (``parity`` extra).

    Example:
        >>> net = DepthAutoencoder(depth=4)  # doctest: +SKIP
        >>> net.load_state_dict(keras_to_torch("model.weights.h5", depth=4))  # doctest: +SKIP
    """
    source = keras_model_or_weights_file
    if isinstance(source, (str, os.PathLike)):
        weights = read_keras_weights(source)
        what = repr(os.fspath(source))
    else:
        weights = _read_keras_model(source)
        what = f"the Keras model {getattr(source, 'name', type(source).__name__)!r}"
        if activation is not None:
            found = _keras_activation(source)
            if found != activation:
                raise ValueError(f"{what} uses activation {found!r}, expected {activation!r}")

    n_down, n_up = _keras_depth(weights)
    if n_down != n_up:
        raise ValueError(f"{what} has {n_down} down-scale but {n_up} up-scale blocks")
    if depth is not None and n_down != depth:
        raise ValueError(
            f"{what} holds a {_variant(n_down)} model ({n_down} down-scale blocks), but "
            f"depth={depth} ({_variant(depth)}) was asked for"
        )
    in_channels = weights["downscale_blocks.0.convA.kernel"].shape[2]
    # Shapes of the target model, without allocating its weights.
    with torch.device("meta"):
        expected = DepthAutoencoder(depth=n_down, in_channels=in_channels).state_dict()

    state: Dict[str, torch.Tensor] = {}
    mismatches = []
    for name, value in weights.items():
        key = _torch_name(name)
        if value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if key not in expected or tuple(expected[key].shape) != tuple(tensor.shape):
            want = tuple(expected[key].shape) if key in expected else "no such tensor"
            mismatches.append(f"{name} -> {key}: {tuple(tensor.shape)} vs {want}")
        state[key] = tensor
    if mismatches:
        raise ValueError(
            f"{what} does not fit DepthAutoencoder(depth={n_down}): "
            + "; ".join(mismatches[:5])
            + (f" (and {len(mismatches) - 5} more)" if len(mismatches) > 5 else "")
        )
    for key in expected:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"{what} lacks weights for {missing[:5]}")
    return {key: state[key] for key in expected}


def torch_to_keras(
    state_dict_or_module: Union[Mapping[str, torch.Tensor], nn.Module], keras_model: Any
) -> Any:
    """Set the weights of a built Keras ``DepthEstimationModel`` from a DepthAutoencoder.

    Args:
        state_dict_or_module: a :class:`DepthAutoencoder` or its state dict (keys like
            ``down.0.conv_a.weight``; strip a Lightning checkpoint's ``net.`` prefix first).
        keras_model: a built keras-io ``DepthEstimationModel`` of the same variant.

    Returns:
        ``keras_model``, its variables assigned in place (optimizer state untouched).

    Raises:
        ValueError: the variants differ (depth, activation when a module is given), a tensor
            is missing or a shape differs.
    """
    module = state_dict_or_module if isinstance(state_dict_or_module, nn.Module) else None
    state = module.state_dict() if module is not None else state_dict_or_module
    torch_depth = len(
        {k.split(".")[1] for k in state if re.match(r"^down\.\d+\.conv_a\.weight$", k)}
    )
    if torch_depth == 0:
        raise ValueError(
            "the state dict has no 'down.<i>.conv_a.weight' tensors: pass a DepthAutoencoder or "
            "its state dict (strip a Lightning checkpoint's 'net.' prefix)"
        )
    variables = keras_variables(keras_model)
    keras_depth = len(keras_model.downscale_blocks)
    if torch_depth != keras_depth:
        raise ValueError(
            f"the PyTorch weights are a {_variant(torch_depth)} model ({torch_depth} down "
            f"blocks), the Keras model a {_variant(keras_depth)} one"
        )
    if module is not None:
        torch_act, keras_act = _torch_activation(module), _keras_activation(keras_model)
        if None not in (torch_act, keras_act) and torch_act != keras_act:
            raise ValueError(
                f"the PyTorch model uses activation {torch_act!r}, the Keras model {keras_act!r}"
            )
    for key, variable in variables.items():
        if key not in state:
            raise ValueError(f"the state dict lacks {key!r} (for Keras {variable.path})")
        value = state[key].detach().cpu().to(torch.float32).numpy()
        if value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"{key} {tuple(value.shape)} (as HWIO) does not fit Keras {variable.path} "
                f"{tuple(variable.shape)}"
            )
        variable.assign(value)
    return keras_model
