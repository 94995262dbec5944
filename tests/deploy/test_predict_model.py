"""``lightning_depth predict --model FILE``: predict from an exported file, no checkpoint."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightning_depth.cli import main
from lightning_depth.deploy import load
from lightning_depth.deploy.checkpoints import load_task
from lightning_depth.deploy.export import export_with_metadata
from lightning_depth.io.errors import DataError

pytest.importorskip("onnxruntime")


def _png(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return rgb


def test_predict_from_an_onnx_file_writes_the_runtimes_maps(checkpoints, tmp_path, capsys):
    model_path, _ = export_with_metadata(
        load_task(checkpoints["mono"]), tmp_path / "mono.onnx", height=32, width=32
    )
    photos = tmp_path / "photos"
    images = {
        "a": _png(photos / "a.png", 37, 45, 0),
        "sub/b": _png(photos / "sub/b.png", 24, 40, 1),
    }
    single = _png(tmp_path / "single.png", 30, 30, 2)
    out = tmp_path / "out"
    capsys.readouterr()
    main(["predict", "--model", str(model_path), "--inputs", str(photos), str(tmp_path / "single.png"),
          "--out", str(out), "--point_cloud=false"])  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    # one line per input given, saying what was written from where to where
    assert len(lines) == 2
    assert lines[0].startswith(
        f"predict: wrote 2 depth maps (color png, npy) from {photos} to {out}"
    )
    assert lines[1].startswith(
        f"predict: wrote 1 depth map (color png, npy) from {tmp_path / 'single.png'}"
    )
    model = load(model_path)
    for name, rgb in [*images.items(), ("single", single)]:
        written = np.load(out / f"{name}.npy")
        assert written.shape == rgb.shape[:2]  # at the input's size
        np.testing.assert_array_equal(written, model(rgb))
        assert (out / f"{name}_color.png").is_file()


def test_predict_from_a_torchscript_stereo_pair(checkpoints, tmp_path, capsys):
    model_path, _ = export_with_metadata(
        load_task(checkpoints["stereo"]), tmp_path / "s.pt", "torchscript", height=37, width=70
    )
    left, right = _png(tmp_path / "l.png", 37, 70, 3), _png(tmp_path / "r.png", 37, 70, 4)
    out = tmp_path / "out"
    main([
        "predict", f"--model={model_path}", "--inputs", str(tmp_path / "l.png"),
        str(tmp_path / "r.png"), "--out", str(out), "--raw_format=pfm", "--fx=50",
        "--baseline=0.1",
    ])  # fmt: skip
    from lightning_depth.io.pfm import read_pfm

    written, _ = read_pfm(out / "l.pfm")
    np.testing.assert_array_equal(written, load(model_path)(left, right))
    assert (out / "l.ply").is_file()


def test_predict_model_refuses_a_bare_network_and_missing_files(checkpoints, tmp_path):
    net, _ = export_with_metadata(
        load_task(checkpoints["mono"]), tmp_path / "net.onnx", height=32, width=32, graph="network"
    )
    _png(tmp_path / "a.png", 32, 32, 0)
    with pytest.raises(DataError, match=r"bare network \(output 'depth_log'.*without --network"):
        main(["predict", "--model", str(net), "--inputs", str(tmp_path / "a.png")])
    with pytest.raises(DataError, match=f"exported model {tmp_path / 'none.onnx'} does not exist"):
        main(["predict", "--model", str(tmp_path / "none.onnx"), "--inputs", str(tmp_path)])


def test_predict_model_refuses_a_map_with_nan(checkpoints, tmp_path, monkeypatch):
    """A file whose output has a NaN (a broken or overflowing export) stops predict with the
    input's name; nothing is written for it."""
    import lightning_depth.deploy.predict_command as predict_command

    model_path, _ = export_with_metadata(
        load_task(checkpoints["mono"]), tmp_path / "mono.onnx", height=32, width=32
    )

    class WithANan:
        def __init__(self, model):
            self.model = model

        def __getattr__(self, name):
            return getattr(self.model, name)

        def __call__(self, *images):
            out = self.model(*images).copy()
            out[1, 2] = np.nan
            return out

    monkeypatch.setattr(predict_command, "load", lambda path: WithANan(load(path)))
    _png(tmp_path / "photos/a.png", 32, 32, 0)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"depth map for 'a' has 1 NaN or infinite values"):
        main(["predict", "--model", str(model_path), "--inputs", str(tmp_path / "photos"),
              "--out", str(out)])  # fmt: skip
    assert not list(out.glob("a*"))
