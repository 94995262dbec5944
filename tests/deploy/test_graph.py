"""The camera graph (``lightning_depth export``'s default): raw uint8 camera images in, the
same maps as ``lightning_depth predict`` out, at any size; and the contract inside the file."""

import hashlib
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_depth.cli import main
from lightning_depth.deploy import load, read_metadata
from lightning_depth.deploy.checkpoints import load_task
from lightning_depth.deploy.export import export_with_metadata
from lightning_depth.io.pfm import read_pfm

pytest.importorskip("onnxruntime")

# ImageNet statistics as literal numbers: the expected values do not come from the package.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _export(ckpt: Path, out: Path, capsys, *args: str) -> dict:
    """``lightning_depth export`` (the default graph) of ``ckpt``; its JSON line."""
    capsys.readouterr()
    main(["export", f"--ckpt_path={ckpt}", f"--out={out}", *args])
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def stereo_onnx(checkpoints, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("stereo_graph") / "stereo.onnx"
    ckpt = checkpoints["stereo"]
    main(["export", f"--ckpt_path={ckpt}", f"--out={out}", "--height=32", "--width=64"])
    return out, read_metadata(out)


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _random_png(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return rgb


def _predict(config: str, ckpt: Path, inputs: str, out: Path, run: Path, raw: str) -> None:
    main(["predict", "--config", config, f"--ckpt_path={ckpt}", f"--data.init_args.inputs={inputs}",
          f"--trainer.callbacks.init_args.output_dir={out}",
          f"--trainer.callbacks.init_args.raw_format={raw}",
          "--trainer.callbacks.init_args.point_cloud=false", f"--trainer.default_root_dir={run}",
          "--trainer.accelerator=cpu"])  # fmt: skip


@pytest.mark.slow
def test_stereo_graph_on_camera_images_equals_predict(stereo_onnx, checkpoints, tmp_path):
    path, _ = stereo_onnx
    # 37x70: not a multiple of the network's 16, so the padding inside the graph is exercised
    _random_png(tmp_path / "pairs/left/frame.png", 37, 70, seed=1)
    _random_png(tmp_path / "pairs/right/frame.png", 37, 70, seed=2)
    out = tmp_path / "predicted"
    _predict("configs/predict/stereo.yaml", checkpoints["stereo"], f"[{tmp_path / 'pairs'}]",
             out, tmp_path / "run", "pfm")  # fmt: skip
    expected, _ = read_pfm(out / "frame.pfm")
    model = load(path)
    got = model(_rgb(tmp_path / "pairs/left/frame.png"), _rgb(tmp_path / "pairs/right/frame.png"))
    assert got.shape == expected.shape == (37, 70) and got.dtype == np.float32
    assert float(expected.std()) > 0.1  # a map that varies, so agreeing means something
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)
    assert got.min() >= 0.0  # disparities are clamped as predict's


@pytest.mark.slow
def test_stereo_graph_takes_any_size_and_matches_pytorch(stereo_onnx, checkpoints):
    """Sizes other than the export's, multiples of 16 or not; PyTorch's reference gets the
    images encoded here with literal ImageNet numbers."""
    import onnxruntime as ort

    path, _ = stereo_onnx
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["left", "right"]
    assert [o.name for o in session.get_outputs()] == ["disparity"]
    assert session.get_inputs()[0].type == "tensor(uint8)"
    task = load_task(checkpoints["stereo"])
    rng = np.random.default_rng(0)
    for height, width in ((48, 80), (33, 50), (32, 32)):
        images = [rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8) for _ in range(2)]
        got = session.run(None, {"left": images[0], "right": images[1]})[0]
        encoded = [torch.from_numpy(((i / 255.0 - MEAN) / STD).astype(np.float32)) for i in images]
        with torch.no_grad():
            expected = task.predict_map(*(e.permute(0, 3, 1, 2) for e in encoded))[:, 0]
        assert got.shape == (1, height, width)
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-3, rtol=0)


@pytest.mark.slow
def test_stereo_graph_contract_round_trips(stereo_onnx, checkpoints):
    import onnx

    path, metadata = stereo_onnx
    ckpt = checkpoints["stereo"]
    stored = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(stored["lightning_depth"]) == metadata
    assert (stored["task"], stored["graph"], stored["output_unit"]) == (
        "stereo",
        "camera",
        "pixels",
    )
    record = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert metadata["train_size"] == record["task"]["train_size"] == [64, 128]
    assert metadata["lightning_depth_version"] == importlib.metadata.version("lightning_depth")
    assert metadata["checkpoint"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert metadata["model"]["class"] == record["hyper_parameters"]["net"]["class_path"]
    assert metadata["model"]["settings"]["spn_channels"] == 2  # the demo's variant
    assert metadata["max_disparity"] == record["hyper_parameters"]["maxdisp"] == 192.0
    assert [i["name"] for i in metadata["inputs"]] == ["left", "right"]
    for spec in metadata["inputs"]:
        assert (spec["layout"], spec["dtype"], spec["range"], spec["channels"]) == (
            "NHWC", "uint8", [0, 255], "RGB",
        )  # fmt: skip
        np.testing.assert_allclose(spec["normalization"]["mean"], MEAN)
        np.testing.assert_allclose(spec["normalization"]["std"], STD)
    assert metadata["output"] == {
        "name": "disparity", "kind": "disparity", "unit": "pixels", "layout": "NHW",
        "meaning": "disparity (pixels) of each input pixel, at the input size",
    }  # fmt: skip
    assert (metadata["size_multiple"], metadata["network_size_multiple"]) == (1, 16)
    assert metadata["min_size"] == [32, 32] and metadata["batch"] == 1
    assert (metadata["stages"], metadata["num_stages"]) == (4, 4)
    assert metadata["graph"] == "camera" and metadata["predict_resolution"] == "native"


def test_mono_graph_equals_predict_at_the_training_size(checkpoints, tmp_path, capsys):
    """Mono predicts at the training size (32x32 here) and resizes back: the camera graph
    does the same inside, on any input size and batch."""
    ckpt = checkpoints["mono"]
    summary = _export(ckpt, tmp_path / "mono.onnx", capsys)
    assert summary["graph"] == "camera" and summary["max_rel_error"] <= 1e-4
    assert summary["check_size"] != [summary["height"], summary["width"]]
    assert summary["check_size"][0] % 4 and summary["check_size"][1] % 4  # off the multiple
    assert read_metadata(tmp_path / "mono.onnx") == summary["contract"]
    contract = summary["contract"]
    assert contract["predict_resolution"] == "train" and contract["train_size"] == [32, 32]
    assert contract["output"]["unit"] == "metres" and contract["inputs"][0]["normalization"] is None

    photos = tmp_path / "photos"
    first = _random_png(photos / "a.png", 37, 45, seed=3)
    second = _random_png(photos / "b.png", 37, 45, seed=4)
    out = tmp_path / "predicted"
    _predict("configs/predict/mono.yaml", ckpt, f"[{photos}]", out, tmp_path / "run", "npy")
    expected = np.stack([np.load(out / "a.npy"), np.load(out / "b.npy")])
    got = load(tmp_path / "mono.onnx")(np.stack([first, second]))  # one batch of two
    assert got.shape == expected.shape == (2, 37, 45)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=0)
    # ... and predict's map really is at the training size resized back: the naive map at
    # the native size differs by far more than the tolerance
    task = load_task(ckpt)
    task.set_predict_resolution("native")
    image = torch.from_numpy(first.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        native = task.predict_map(image)[0, 0].numpy()
    assert np.abs(native / expected[0] - 1).max() > 1e-2


def test_torchscript_graph_contract_and_fixed_size(checkpoints, tmp_path):
    """TorchScript: the contract in ``_extra_files``; the stereo graph (traced) is bound to
    its size and says so."""
    ckpt = checkpoints["stereo"]
    task = load_task(ckpt)
    path, metadata = export_with_metadata(
        task, tmp_path / "s.pt", "torchscript", height=37, width=70, checkpoint=ckpt
    )
    extra = {"lightning_depth.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["lightning_depth.json"]) == metadata == read_metadata(path)
    assert metadata["fixed_size"] == [37, 70] and metadata["format"] == "torchscript"
    assert metadata["checkpoint"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()


@pytest.mark.slow
def test_stereo_graph_at_x2_equals_predict_at_x2(checkpoints, tmp_path, capsys):
    """``--resolution x2``: the enlargement and the halved way back are inside the graph."""
    import onnxruntime as ort

    summary = _export(checkpoints["stereo"], tmp_path / "x2.onnx", capsys,
                      "--resolution=x2", "--height=32", "--width=64")  # fmt: skip
    assert summary["contract"]["predict_resolution"] == "x2"
    assert summary["max_abs_error"] <= 1e-3  # pixels, the export's own check
    session = ort.InferenceSession(str(tmp_path / "x2.onnx"), providers=["CPUExecutionProvider"])
    task = load_task(checkpoints["stereo"])
    rng = np.random.default_rng(5)
    for height, width in ((37, 70), (32, 48)):
        images = [rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8) for _ in range(2)]
        got = session.run(None, {"left": images[0], "right": images[1]})[0]
        encoded = [torch.from_numpy(((i / 255.0 - MEAN) / STD).astype(np.float32)) for i in images]
        pair = [e.permute(0, 3, 1, 2) for e in encoded]
        with torch.no_grad():
            task.set_predict_resolution("x2")
            expected = task.predict_map(*pair)[:, 0].numpy()
            task.set_predict_resolution("native")
            native = task.predict_map(*pair)[:, 0].numpy()
        assert got.shape == (1, height, width)
        np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)
        assert np.abs(native - expected).max() > 0.1  # x2 really is another map than native
