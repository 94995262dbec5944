"""The runtime (``lightning_depth.deploy.load``): exported files run with checked inputs, and
wrong inputs fail with messages naming what was expected."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_depth.deploy import DeployedModel, load, read_metadata
from lightning_depth.deploy.checkpoints import load_task
from lightning_depth.deploy.export import export_with_metadata
from lightning_depth.io.errors import DataError

pytest.importorskip("onnxruntime")

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(scope="module")
def files(checkpoints, tmp_path_factory) -> dict[str, Path]:
    """Small exports of the demo checkpoints: the mono camera graph (ONNX), the stereo one
    (TorchScript, traced at 37x70) and the bare mono network (ONNX)."""
    folder = tmp_path_factory.mktemp("runtime")
    mono, stereo = load_task(checkpoints["mono"]), load_task(checkpoints["stereo"])
    out = {}
    out["mono"], _ = export_with_metadata(mono, folder / "mono.onnx", height=32, width=32)
    out["stereo"], _ = export_with_metadata(
        stereo, folder / "stereo.pt", "torchscript", height=37, width=70
    )
    out["network"], _ = export_with_metadata(
        mono, folder / "net.onnx", height=32, width=32, graph="network"
    )
    return out


def _images(shape: tuple[int, ...], count: int = 1, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]


def test_contract_properties(files):
    mono, stereo, network = (load(files[k]) for k in ("mono", "stereo", "network"))
    assert isinstance(mono, DeployedModel)
    assert (mono.kind, mono.unit, mono.input_names) == ("depth", "metres", ["image"])
    assert (stereo.kind, stereo.unit, stereo.input_names) == (
        "disparity",
        "pixels",
        ["left", "right"],
    )
    assert (network.kind, network.unit) == ("depth_log", "log-depth: natural log of metres")
    assert mono.metadata == read_metadata(files["mono"])


def test_stereo_unbatched_and_batched_equal_pytorch(files, checkpoints):
    """``(H, W, 3)`` in, ``(H, W)`` out; a batch of two through a batch-1 file runs sample by
    sample; PyTorch's reference is encoded here with literal ImageNet numbers."""
    model = load(files["stereo"])
    left, right = _images((2, 37, 70, 3), count=2, seed=1)
    task = load_task(checkpoints["stereo"])
    encoded = [
        torch.from_numpy(((x / 255.0 - MEAN) / STD).astype(np.float32)).permute(0, 3, 1, 2)
        for x in (left, right)
    ]
    with torch.no_grad():
        expected = task.predict_map(*encoded)[:, 0].numpy()
    batched = model(left, right)
    single = model(left[1], right[1])
    assert batched.shape == (2, 37, 70) and single.shape == (37, 70)
    assert batched.dtype == single.dtype == np.float32
    np.testing.assert_allclose(batched, expected, atol=1e-3, rtol=0)
    np.testing.assert_allclose(single, expected[1], atol=1e-3, rtol=0)


def test_wrong_inputs_fail_naming_what_was_expected(files):
    stereo, mono, network = (load(files[k]) for k in ("stereo", "mono", "network"))
    (left,) = _images((37, 70, 3))
    with pytest.raises(DataError, match=r"this stereo model takes 2 images \(left, right\), got 1"):
        stereo(left)
    with pytest.raises(
        DataError, match=r"'left' must be uint8 images .*got dtype float32.*0\.\.255"
    ):
        stereo(left.astype(np.float32) / 255, left.astype(np.float32) / 255)
    with pytest.raises(
        DataError,
        match=r"'image' must be RGB images \(H, W, 3\).*3 channels, got shape \(37, 70, 4\)",
    ):
        mono(np.zeros((37, 70, 4), dtype=np.uint8))
    with pytest.raises(DataError, match=r"'left' and 'right' must have the same shape"):
        stereo(left, left[:36])
    with pytest.raises(DataError, match=r"at least 8x8 \(HxW\).*got 6x20"):
        mono(np.zeros((6, 20, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"traced for 37x70 \(HxW\) images only, got 38x70"):
        stereo(np.zeros((38, 70, 3), np.uint8), np.zeros((38, 70, 3), np.uint8))
    # bare network: float (N, 3, H, W) in [0, 1], sizes multiples of the network's (4)
    with pytest.raises(DataError, match=r"multiples of 4, got 30x32 \(HxW\).*camera graph"):
        network(np.zeros((1, 3, 30, 32), dtype=np.float32))
    with pytest.raises(
        DataError, match=r"values in \[0, 1\] \(x / 255.*got values in \[0, 255\]: 8-bit .*1/255"
    ):
        network(np.linspace(0, 255, 3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32))
    with pytest.raises(DataError, match=r"'image' must be float32 images \(3, H, W\)"):
        network(np.zeros((1, 3, 32, 32), dtype=np.uint8))


def test_network_file_runs_encoded_inputs(files, checkpoints):
    """The bare network returns log-depth ``(N, H, W)`` (its channel axis dropped)."""
    image = np.random.default_rng(2).random((2, 3, 32, 48), dtype=np.float32)
    got = load(files["network"])(image)
    with torch.no_grad():
        expected = load_task(checkpoints["mono"]).net(torch.from_numpy(image))[:, 0].numpy()
    assert got.shape == (2, 32, 48)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_files_without_the_contract_are_refused(files, tmp_path):
    import onnx

    stripped = tmp_path / "plain.onnx"
    model = onnx.load(str(files["mono"]))
    del model.metadata_props[:]
    onnx.save(model, str(stripped))
    with pytest.raises(
        DataError, match=f"exported model {stripped} has no lightning_depth metadata"
    ):
        load(stripped)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(plain))
    with pytest.raises(DataError, match=f"exported model {plain} has no lightning_depth metadata"):
        read_metadata(plain)
    with pytest.raises(DataError, match=r"expected a \.onnx \(ONNX\) or \.pt \(TorchScript\)"):
        load(tmp_path / "model.ckpt")
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "missing.onnx")


def test_onnx_runtime_needs_no_torch_nor_model_code(files):
    """In a fresh process, loading and running an ONNX file imports neither torch nor the
    package's tasks or models."""
    code = (
        "import sys, numpy as np\n"
        "from lightning_depth.deploy import load\n"
        f"m = load({str(files['mono'])!r})\n"
        "out = m(np.zeros((40, 52, 3), np.uint8))\n"
        "assert out.shape == (40, 52), out.shape\n"
        "bad = [k for k in sys.modules if k in ('torch', 'lightning') or k.startswith(('torch.',"
        " 'lightning.', 'lightning_depth.tasks', 'lightning_depth.models'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
