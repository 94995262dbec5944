"""Load checkpoints of the original AnyNet (mileyan/AnyNet) into :class:`AnyNet`.

The original scripts save ``{'epoch', 'state_dict', 'optimizer'}`` with the model wrapped in
``nn.DataParallel``, so every key starts with ``module.``. The module tree differs from ours
only in names; :data:`KEY_RULES` maps one onto the other:

==========================================================  ==========================================
original (after ``module.``)                                ours
==========================================================  ==========================================
``feature_extraction.block0.0.0.*`` (first conv)            ``feature_extractor.stem.0.*``
``feature_extraction.block0.0.1.{0,2}.*``                   ``feature_extractor.stem.1.{bn,conv}.*``
``feature_extraction.block0.1.{j}.{0,2}.*`` (j >= 1)        ``feature_extractor.encoder.0.convs.{j-1}.{bn,conv}.*``
``feature_extraction.blocks.{i}.{j}.{0,2}.*`` (j >= 1)      ``feature_extractor.encoder.{i+1}.convs.{j-1}.{bn,conv}.*``
``feature_extraction.upblocks.{i}.conv.{j}.{0,2}.*``        ``feature_extractor.decoder.{i}.convs.{j}.{bn,conv}.*``
``volume_postprocess.{i}.{j}.{0,2}.*``                      ``cost_filters.{i}.layers.{j}.{bn,conv}.*``
``refine_spn.0.{k}.weight`` / ``.1.`` / ``.2.``             ``spn.gate_net.{k}`` / ``spn.lift`` / ``spn.project``
==========================================================  ==========================================

(In the original, index 0 of a block is a max-pool and a pre-activation unit is
``Sequential(BN, ReLU, Conv)``, hence the shifted and ``{0,2}`` indices.)

Resampling: the released checkpoints were trained with the repository's PyTorch (0.4.0, later
1.0), where ``F.upsample(mode='bilinear')`` means ``align_corners=False`` and ``grid_sample``
means ``align_corners=True``; :func:`load_original_anynet` therefore builds the network with
``align_corners=False`` (the warp always uses ``True``). AnyNet issue 27 reports better KITTI
scores after setting both to ``True`` on PyTorch >= 1.3, but its numbers point to the warp:
stage 1, whose output depends on the upsampling only, got worse (3-px error 0.140 -> 0.200)
while the warped stages improved (``grid_sample``'s default became ``align_corners=False`` in
PyTorch 1.3, which broke the original ``warp``). Pass ``align_corners=True`` to compare.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Union

import torch

from lightning_depth.models.anynet import AnyNet

__all__ = [
    "KEY_RULES",
    "convert_original_state_dict",
    "infer_anynet_kwargs",
    "load_original_anynet",
]

_PREACT = {"0": "bn", "2": "conv"}

#: ``(pattern, replacement)`` pairs mapping original keys (without ``module.``) to ours; a
#: replacement is a string template or a function of the match.
KEY_RULES: list[tuple[str, Any]] = [
    (r"feature_extraction\.block0\.0\.0\.(weight|bias)$", r"feature_extractor.stem.0.\1"),
    (
        r"feature_extraction\.block0\.0\.1\.([02])\.(.+)$",
        lambda m: f"feature_extractor.stem.1.{_PREACT[m[1]]}.{m[2]}",
    ),
    (
        r"feature_extraction\.block0\.1\.(\d+)\.([02])\.(.+)$",
        lambda m: f"feature_extractor.encoder.0.convs.{int(m[1]) - 1}.{_PREACT[m[2]]}.{m[3]}",
    ),
    (
        r"feature_extraction\.blocks\.(\d+)\.(\d+)\.([02])\.(.+)$",
        lambda m: (
            f"feature_extractor.encoder.{int(m[1]) + 1}.convs.{int(m[2]) - 1}.{_PREACT[m[3]]}.{m[4]}"
        ),
    ),
    (
        r"feature_extraction\.upblocks\.(\d+)\.conv\.(\d+)\.([02])\.(.+)$",
        lambda m: f"feature_extractor.decoder.{m[1]}.convs.{m[2]}.{_PREACT[m[3]]}.{m[4]}",
    ),
    (
        r"volume_postprocess\.(\d+)\.(\d+)\.([02])\.(.+)$",
        lambda m: f"cost_filters.{m[1]}.layers.{m[2]}.{_PREACT[m[3]]}.{m[4]}",
    ),
    (r"refine_spn\.0\.(\d+)\.weight$", r"spn.gate_net.\1.weight"),
    (r"refine_spn\.1\.weight$", "spn.lift.weight"),
    (r"refine_spn\.2\.weight$", "spn.project.weight"),
]


def _map_key(key: str) -> Union[str, None]:
    for pattern, repl in KEY_RULES:
        m = re.match(pattern, key)
        if m:
            return m.expand(repl) if isinstance(repl, str) else repl(m)
    return None


def _strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def convert_original_state_dict(
    state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """Rename an original AnyNet state dict (``module.`` prefix optional) to our keys.

    Args:
        state_dict: the original ``checkpoint['state_dict']``.
        source: name used in error messages (e.g. the file).

    Returns:
        state dict with our key names.

    Raises:
        ValueError: naming the keys that no rule maps.
    """
    out, unknown = {}, []
    for key, value in _strip_prefix(state_dict).items():
        new = _map_key(key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise ValueError(
            f"{source}: unexpected keys for an original AnyNet checkpoint: {sorted(unknown)}"
        )
    return out


def _count(state_dict: Mapping[str, torch.Tensor], pattern: str) -> int:
    return len({m[1] for k in state_dict if (m := re.match(pattern, k))})


def infer_anynet_kwargs(
    state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> dict[str, Any]:
    """Architecture arguments of :class:`AnyNet` read off an original state dict.

    ``maxdisplist`` is not stored in the weights (it only sets the regression ranges).

    Returns:
        dict with ``init_channels``, ``nblocks``, ``channels_3d``, ``growth_rate``,
        ``layers_3d`` and ``spn_channels``.
    """
    sd = _strip_prefix(state_dict)
    try:
        init_channels = sd["feature_extraction.block0.0.0.weight"].shape[0]
        stage_channels = [sd[f"volume_postprocess.{i}.0.2.weight"].shape[0] for i in range(3)]
    except KeyError as err:
        raise ValueError(
            f"{source}: not an original AnyNet state dict: missing key {err}"
        ) from None
    channels_3d = math.gcd(*stage_channels)
    return {
        "init_channels": int(init_channels),
        "nblocks": _count(sd, r"feature_extraction\.block0\.1\.(\d+)\.2\.weight$"),
        "channels_3d": channels_3d,
        "growth_rate": tuple(c // channels_3d for c in stage_channels),
        "layers_3d": _count(sd, r"volume_postprocess\.0\.(\d+)\.2\.weight$") - 2,
        "spn_channels": int(sd["refine_spn.1.weight"].shape[0])
        if "refine_spn.1.weight" in sd
        else 0,
    }


def _read(path_or_state_dict: Union[str, os.PathLike, Mapping[str, Any]]) -> tuple[dict, str]:
    if isinstance(path_or_state_dict, Mapping):
        obj, source = path_or_state_dict, "state dict"
    else:
        path = Path(path_or_state_dict)
        source = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint file")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch.load raises several types for a non-checkpoint
            raise ValueError(
                f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})"
            ) from err
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise ValueError(
            f"{source}: expected the original training checkpoint ({{'state_dict': ...}}) or a "
            "state dict of tensors"
        )
    return dict(obj), source


def _check_given(given: Mapping[str, Any], inferred: Mapping[str, Any], source: str) -> None:
    """Raise if architecture arguments passed by the caller contradict the weights."""
    for key in ("init_channels", "nblocks", "layers_3d", "spn_channels"):
        if key in given and given[key] != inferred[key]:
            raise ValueError(
                f"{source}: {key}={given[key]!r} was given but the weights have {key}={inferred[key]!r}"
            )
    if "channels_3d" in given or "growth_rate" in given:
        # Only the products (the 3D channels per stage) are in the weights.
        c3d = given.get("channels_3d", inferred["channels_3d"])
        growth = given.get("growth_rate", inferred["growth_rate"])
        have = [inferred["channels_3d"] * g for g in inferred["growth_rate"]]
        if [c3d * g for g in growth] != have:
            raise ValueError(
                f"{source}: channels_3d={c3d!r} x growth_rate={tuple(growth)!r} was given but the "
                f"weights have 3D networks with {have} channels"
            )


def load_original_anynet(
    path_or_state_dict: Union[str, os.PathLike, Mapping[str, Any]], **anynet_kwargs: Any
) -> AnyNet:
    """Build an :class:`AnyNet` with the weights of an original AnyNet checkpoint.

    The architecture (``init_channels``, ``nblocks``, ``channels_3d`` x ``growth_rate``,
    ``layers_3d``, ``spn_channels``) is read off the weights; ``align_corners`` defaults to
    ``False``, the convention the released checkpoints were trained with (module docstring).
    Checkpoints saved by PyTorch 0.4.0 lack the batch-norm ``num_batches_tracked`` counters;
    those stay 0 (they only matter for ``momentum=None``).

    Args:
        path_or_state_dict: checkpoint file (``{'state_dict': ...}`` as the original scripts
            save it) or the loaded checkpoint / state dict; ``module.`` prefixes are optional.
        anynet_kwargs: further :class:`AnyNet` arguments (e.g. ``maxdisplist``); architecture
            arguments must agree with the weights.

    Returns:
        the network in eval mode, on CPU.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file and the problem: unreadable file, unexpected or missing
            keys, shapes that disagree, architecture arguments that contradict the weights.
    """
    state_dict, source = _read(path_or_state_dict)
    inferred = infer_anynet_kwargs(state_dict, source)
    _check_given(anynet_kwargs, inferred, source)
    kwargs = {**inferred, "align_corners": False, **anynet_kwargs}
    model = AnyNet(**kwargs)

    converted = convert_original_state_dict(state_dict, source)
    expected = model.state_dict()
    missing = [k for k in expected if k not in converted and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in converted if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{source}: checkpoint does not fit AnyNet({kwargs}): missing {missing}, unexpected {unexpected}"
        )
    for key, value in converted.items():
        if value.shape != expected[key].shape:
            raise ValueError(
                f"{source}: {key} has shape {tuple(value.shape)} in the checkpoint but "
                f"{tuple(expected[key].shape)} in AnyNet({kwargs})"
            )
    model.load_state_dict(converted, strict=False)
    return model.eval()
