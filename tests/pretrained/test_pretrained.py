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


SHIPPED = pretrained.names()


def test_the_package_ships_a_stereo_and_a_mono_model():
    assert "anynet_spn8" in SHIPPED and "mono_313" in SHIPPED
    assert pretrained.card("anynet_spn8")["task"] == "stereo"
    assert pretrained.card("mono_313")["task"] == "mono"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_its_card(name):
    card = pretrained.card(name)
    path = pretrained.path(name)
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    task = pretrained.load(name)
    assert task.name == card["task"] and list(task.train_size) == card["train_size"]
    slim = torch.load(path, map_location="cpu", weights_only=False)
    assert "optimizer_states" not in slim and slim["global_step"] == card["steps"]


@pytest.mark.slow
def test_bench_real_reproduces_the_cards_motorcycle_figures():
    """The card's real-pair figures are what benchmarks/bench_real.py measures now."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "benchmarks/bench_real.py", "--quick"],
                          capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    result = dict(item.split("=", 1) for item in last.split()[1:])
    card = pretrained.card("anynet_spn8")
    for stage, value in card["motorcycle_3px_per_stage"].items():
        assert float(result[f"anynet_3px_{stage}"]) / 100 == pytest.approx(value, abs=1e-4)
    assert float(result["anynet_epe_spn"]) == pytest.approx(
        card["motorcycle_epe_per_stage"]["spn"], abs=1e-3
    )
    card = pretrained.card("mono_313")
    assert float(result["mono_absrel"]) == pytest.approx(card["motorcycle_absrel"], abs=1e-4)
    assert float(result["mono_delta1"]) == pytest.approx(card["motorcycle_delta1"], abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("resolution", ["native", "x2"])
def test_predict_with_the_shipped_model_on_the_motorcycle_pair(tmp_path, capsys, resolution):
    from skimage.data import stereo_motorcycle

    left, right, _ = stereo_motorcycle()
    for side, image in (("left", left), ("right", right)):
        (tmp_path / "pairs" / side).mkdir(parents=True)
        Image.fromarray(image[:200, :300]).save(tmp_path / "pairs" / side / "m.png")
    out = tmp_path / "out"
    main(["predict", "--config", "configs/predict/stereo.yaml", "--pretrained=anynet_spn8",
          f"--data.init_args.inputs=[{tmp_path / 'pairs'}]", "--trainer.accelerator=cpu",
          f"--trainer.callbacks.init_args.output_dir={out}",
          f"--trainer.callbacks.init_args.resolution={resolution}",
          f"--trainer.default_root_dir={out}"])  # fmt: skip
    assert f"resolution: {resolution}" in capsys.readouterr().out
    written = read_pfm(out / "m.pfm")[0]
    assert written.shape == (200, 300)
    # The same model run by hand on the ImageNet-normalised crop (numpy encoding).
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def encode(image: np.ndarray) -> torch.Tensor:
        x = (image[:200, :300].astype(np.float32) / 255.0 - mean) / std
        return torch.from_numpy(x.transpose(2, 0, 1)[None].copy())

    task = pretrained.load("anynet_spn8")
    task.set_predict_resolution(resolution)
    with torch.no_grad():
        expected = task.predict_map(encode(left), encode(right))
    # The two paths encode the images separately (torch vs numpy, 1-ulp input differences),
    # which three stages of soft-argmin amplify to 2-3e-4 px here (as the C kernels and the
    # PyTorch forms differ); a wrong scale, crop or encoding is off by far more.
    np.testing.assert_allclose(written, expected[0, 0].numpy(), rtol=1e-5, atol=5e-4)
    assert written.min() >= 0 and np.median(written) > 5  # a real scene, not a flat map


@pytest.mark.slow
def test_predict_with_the_shipped_mono_model_on_the_motorcycle_view(tmp_path):
    from skimage.data import stereo_motorcycle

    left = stereo_motorcycle()[0][:240, :320]
    (tmp_path / "photos").mkdir()
    Image.fromarray(left).save(tmp_path / "photos" / "m.png")
    out = tmp_path / "out"
    main(["predict", "--config", "configs/predict/mono.yaml", "--pretrained=mono_313",
          f"--data.init_args.inputs=[{tmp_path / 'photos'}]", "--trainer.accelerator=cpu",
          f"--trainer.callbacks.init_args.output_dir={out}",
          f"--trainer.default_root_dir={out}"])  # fmt: skip
    written = np.load(out / "m.npy")
    assert written.shape == (240, 320) and written.dtype == np.float32
    # The same model run by hand on the image in [0, 1] (numpy encoding), at its training
    # size and back.
    image = torch.from_numpy(left.astype(np.float32).transpose(2, 0, 1)[None].copy() / 255.0)
    with torch.no_grad():
        expected = pretrained.load("mono_313").predict_map(image)
    np.testing.assert_allclose(written, expected[0, 0].numpy(), rtol=1e-5, atol=1e-5)
    assert written.min() > 0 and written.std() > 0.01 * written.mean()  # a depth map, not flat
