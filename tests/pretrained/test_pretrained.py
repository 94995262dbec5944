"""Shipped pretrained models: packaging a recipe's checkpoint, loading it by name, and
``--pretrained`` on the command line (with a tiny demo checkpoint packaged into a temporary
weights folder, and every model the package ships)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_depth import pretrained
from lightning_depth.cli import main
from lightning_depth.io.pfm import read_pfm
from lightning_depth.pretrained.package import main as package_main


@pytest.fixture
def shipped(checkpoints, tmp_path, monkeypatch) -> Path:
    """The demo stereo checkpoint packaged as ``tiny_stereo`` in a temporary weights folder."""
    weights = tmp_path / "weights"
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"motorcycle_3px": 0.5}))
    package_main(["--ckpt", str(checkpoints["stereo"]), "--name", "tiny_stereo",
                  "--recipe", "configs/demo/stereo.yaml", "--card-json", str(extra),
                  "--out", str(weights)])  # fmt: skip
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    return weights


def test_packaged_checkpoint_is_slim_and_loads_the_same_weights(checkpoints, shipped):
    assert pretrained.names() == ["tiny_stereo"]
    path = pretrained.path("tiny_stereo")
    slim = torch.load(path, map_location="cpu", weights_only=False)
    assert "optimizer_states" not in slim and "callbacks" not in slim
    original = torch.load(checkpoints["stereo"], map_location="cpu", weights_only=False)
    assert "optimizer_states" in original  # what was dropped was there
    model = pretrained.load("tiny_stereo")
    for key, value in original["state_dict"].items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    card = pretrained.card("tiny_stereo")
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["motorcycle_3px"] == 0.5 and card["task"] == "stereo"
    assert card["steps"] == original["global_step"]
    assert path.stat().st_size < Path(checkpoints["stereo"]).stat().st_size


def test_unknown_name_lists_the_shipped_ones(shipped):
    with pytest.raises(ValueError, match=r"'nope'.*shipped: tiny_stereo"):
        pretrained.path("nope")


@pytest.mark.slow
def test_predict_with_pretrained_equals_predict_with_its_checkpoint(checkpoints, shipped, tmp_path):
    rng = np.random.default_rng(0)
    for side in ("left", "right"):
        (tmp_path / "pairs" / side).mkdir(parents=True)
        rgb = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / "pairs" / side / "f.png")
    outputs = {}
    for label, source in (("named", ["--pretrained=tiny_stereo"]),
                          ("file", [f"--ckpt_path={pretrained.path('tiny_stereo')}"])):  # fmt: skip
        out = tmp_path / label
        main(["predict", "--config", "configs/predict/stereo.yaml", *source,
              f"--data.init_args.inputs=[{tmp_path / 'pairs'}]", "--trainer.accelerator=cpu",
              f"--trainer.callbacks.init_args.output_dir={out}",
              f"--trainer.default_root_dir={out}"])  # fmt: skip
        outputs[label] = read_pfm(out / "f.pfm")[0]
    model = pretrained.load("tiny_stereo")
    assert outputs["named"].shape == (32, 48)
    np.testing.assert_array_equal(outputs["named"], outputs["file"])
    assert model.train_size is not None  # the card's training size comes with the weights


def test_pretrained_is_refused_for_fit_and_with_a_checkpoint(shipped, tmp_path):
    with pytest.raises(ValueError, match="--pretrained is for validate, test and predict"):
        main(["fit", "--config", "configs/demo/stereo.yaml", "--pretrained=tiny_stereo"])
    with pytest.raises(ValueError, match="either --pretrained"):
        main(["predict", "--config", "configs/predict/stereo.yaml", "--pretrained=tiny_stereo",
              f"--ckpt_path={tmp_path / 'x.ckpt'}"])  # fmt: skip
