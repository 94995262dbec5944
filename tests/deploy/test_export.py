import json

import pytest
import torch

from lightning_depth.cli import main
from lightning_depth.deploy.export import (
    check_checkpoint_task,
    check_exported,
    checkpoint_task,
    export_model,
    load_task,
    run_exported,
)
from lightning_depth.io.errors import DataError
from lightning_depth.models.anynet import AnyNet
from lightning_depth.models.autoencoder import DepthAutoencoder
from lightning_depth.tasks.mono import MonoDepthModule
from lightning_depth.tasks.stereo import StereoDepthModule

pytest.importorskip("onnxruntime")


def _mono() -> MonoDepthModule:
    torch.manual_seed(0)
    return MonoDepthModule(net=DepthAutoencoder(depth=2)).eval()


def _stereo() -> StereoDepthModule:
    torch.manual_seed(0)
    return StereoDepthModule(net=AnyNet(spn_channels=2)).eval()


def test_checkpoint_task_and_mismatch_errors(checkpoints, tmp_path):
    assert checkpoint_task(checkpoints["mono"]) == "mono"
    assert checkpoint_task(checkpoints["stereo"]) == "stereo"
    assert type(load_task(checkpoints["stereo"])) is StereoDepthModule
    with pytest.raises(DataError, match=r"holds a stereo model .*configs/predict/stereo.yaml"):
        check_checkpoint_task(checkpoints["stereo"], "mono")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=f"checkpoint {bad} cannot be read"):
        checkpoint_task(bad)
    with pytest.raises(DataError, match="does not exist"):
        checkpoint_task(tmp_path / "missing.ckpt")
    torch.save({"weights": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(DataError, match="is not a Lightning checkpoint"):
        load_task(tmp_path / "plain.ckpt")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"net.foo.weight": torch.ones(1)}}, other)
    with pytest.raises(DataError, match=f"checkpoint {other} has no task record"):
        checkpoint_task(other)
    with pytest.raises(DataError, match=f"checkpoint {other} has no task record"):
        load_task(other)
    # a checkpoint written before the task record: LightningCLI's _class_path names the task
    legacy = torch.load(checkpoints["stereo"], map_location="cpu", weights_only=False)
    assert legacy["hyper_parameters"]["_class_path"] == "lightning_depth.StereoDepthModule"
    del legacy["task"]
    torch.save(legacy, other)
    assert checkpoint_task(other) == "stereo"
    assert type(load_task(other)) is StereoDepthModule
    for class_path, problem in (
        ("no_such_package.tasks.Model", "cannot be imported"),
        ("lightning_depth.tasks.mono.NoSuchModule", "cannot be imported"),
        ("torch.nn.Linear", "is not a DepthTask"),
    ):
        ckpt = torch.load(checkpoints["mono"], map_location="cpu", weights_only=False)
        ckpt["task"]["class_path"] = class_path
        torch.save(ckpt, other)
        with pytest.raises(DataError, match=f"checkpoint {other} names .*{class_path}.*{problem}"):
            load_task(other)


def test_torchscript_parity_both_models(tmp_path):
    mono = _mono()
    path = export_model(mono, tmp_path / "m.pt", "torchscript", height=32, width=32)
    assert check_exported(path, mono, 32, 32)["max_abs_error"] <= 1e-5
    stereo = _stereo()
    path = export_model(stereo, tmp_path / "s.pt", "torchscript", height=32, width=32, stages=4)
    stats = check_exported(path, stereo, 32, 32, stages=4)
    assert stats["max_rel_error"] <= 1e-4


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_torchscript_half_precision_both_models(tmp_path, precision):
    for name, model, size in (("m", _mono(), (32, 32)), ("s", _stereo(), (32, 64))):
        path = export_model(model, tmp_path / f"{name}.pt", "torchscript", precision, *size)
        assert next(model.parameters()).dtype == torch.float32  # the caller's model is not cast
        stats = check_exported(path, model, *size, dtype=precision)
        assert stats["max_rel_error"] <= 1e-3, (name, stats)
        # What the precision costs against the float32 model: small, but not nothing.
        assert 0 < stats["max_rel_error_fp32"] <= 0.1, (name, stats)


def test_onnx_fp16_mono_and_bf16_refused(tmp_path):
    mono = _mono()
    path = export_model(mono, tmp_path / "m16.onnx", "onnx", "fp16", height=32, width=32)
    import onnx

    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    # The graph's names are the task's: its input keys and output name.
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["depth_log"]
    stats = check_exported(path, mono, 32, 32, dtype="fp16")  # onnxruntime runs it
    assert stats["max_rel_error"] <= 1e-2 and 0 < stats["max_rel_error_fp32"] <= 0.1, stats
    with pytest.raises(ValueError, match="bf16 ONNX is not exported.*--dtype fp16"):
        export_model(mono, tmp_path / "m.onnx", "onnx", "bf16", height=32, width=32)


@pytest.mark.slow
def test_onnx_mono_parity_and_dynamic_size(tmp_path):
    mono = _mono()
    path = export_model(mono, tmp_path / "m.onnx", "onnx", height=32, width=32)
    assert check_exported(path, mono, 32, 32)["max_rel_error"] <= 1e-4
    x = torch.rand(2, 3, 48, 64)  # another batch and size than the export's
    with torch.no_grad():
        expected = mono.export_module()(x)
    torch.testing.assert_close(run_exported(path, [x]), expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_onnx_stereo_parity_with_spn(tmp_path):
    stereo = _stereo()
    path = export_model(stereo, tmp_path / "s.onnx", "onnx", height=32, width=64)
    # Dynamic height and width: sizes other than the export's run and agree.
    for height, width in ((32, 64), (48, 96), (64, 32)):
        stats = check_exported(path, stereo, height, width)
        assert stats["max_rel_error"] <= 1e-4, (height, width, stats)
    import onnx

    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 16
    assert [i.name for i in model.graph.input] == ["left", "right"]
    assert [o.name for o in model.graph.output] == ["disparity"]
    ops = {n.op_type for n in model.graph.node}
    # The SPN's column loop is one Scan node, not an unrolled chain.
    assert "Scan" in ops and len(model.graph.node) < 1500
    assert "GridSample" in ops and all(d.domain in ("", "ai.onnx") for d in model.opset_import)
    # A flat left image (here its normalised value 0 everywhere) makes every SPN gate exactly
    # zero (the gate convolutions have no bias): the gates are then 0 / (0 + 1e-8) = 0 and
    # the SPN passes the lifted disparity on. (onnxscript's optimiser once rewrote the
    # scalar "+ 1e-8" as "+ 0", which gave 0 / 0 = NaN here.)
    left, right = torch.zeros(1, 3, 32, 64), torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        gates = stereo.net.spn.gate_net(torch.zeros(1, 3, 8, 16))
        expected = stereo.net(left, right)[-1]
    assert not gates.any()
    got = run_exported(path, [left, right])
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_export_cli_stereo_torchscript_stages(checkpoints, tmp_path, capsys):
    out = tmp_path / "s2.pt"
    main(["export", f"--ckpt_path={checkpoints['stereo']}", "--network", "--format=torchscript",
          "--stages=2", "--height=32", "--width=48", f"--out={out}"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["max_rel_error"] <= 1e-4 and summary["bytes"] == out.stat().st_size
    # the bare network's contract describes its float, normalised inputs
    contract = summary["contract"]
    assert (contract["graph"], contract["stages"], contract["size_multiple"]) == ("network", 2, 16)
    assert contract["inputs"][0]["layout"] == "NCHW" and contract["inputs"][0]["dtype"] == "float32"
    assert contract["inputs"][0]["normalization"]["std"] == [0.229, 0.224, 0.225]
    assert contract["output"]["unit"] == "disparity of the left view, pixels"
    # two stages stop before the SPN (whose traced loop is unrolled for one size): any size
    assert contract["fixed_size"] is None
    from lightning_depth.tasks.stereo import StereoDepthModule

    model = StereoDepthModule.load_from_checkpoint(checkpoints["stereo"], map_location="cpu").eval()
    left, right = torch.randn(2, 1, 3, 32, 48)
    with torch.no_grad():
        expected = model.net(left, right, stages=2)[-1]
    torch.testing.assert_close(run_exported(out, [left, right]), expected, atol=1e-4, rtol=1e-5)


def test_camera_graph_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match=r"MonoDepthModule predicts at one of .* got 'x2'"):
        export_model(_mono(), tmp_path / "m.pt", fmt="torchscript", graph="camera",
                     resolution="x2")  # fmt: skip
    with pytest.raises(ValueError, match=r"'tiles' cannot be exported \(a Python loop"):
        export_model(_mono(), tmp_path / "m.pt", fmt="torchscript", graph="camera",
                     resolution="tiles")  # fmt: skip


def test_export_cli_errors(checkpoints, tmp_path):
    mono = f"--ckpt_path={checkpoints['mono']}"
    with pytest.raises(ValueError, match="multiples of 4"):
        main(["export", mono, "--network", "--height=30", "--width=32",
              f"--out={tmp_path / 'x.pt'}", "--format=torchscript"])  # fmt: skip
    with pytest.raises(ValueError, match=r"at least 8x8 pixels .*got 4x32"):
        main(["export", mono, "--height=4", "--width=32", f"--out={tmp_path / 'x.onnx'}"])
    with pytest.raises(ValueError, match="stages applies to anytime"):
        main(["export", mono, "--network", "--stages=1", f"--out={tmp_path / 'x.pt'}"])
    with pytest.raises(ValueError, match="no stages to stop at"):
        main(["export", mono, "--stages=1", f"--out={tmp_path / 'x.pt'}"])
    with pytest.raises(ValueError, match="resolution applies to the camera graph"):
        main(["export", mono, "--network", "--resolution=native", f"--out={tmp_path / 'x.pt'}"])
    with pytest.raises(DataError, match="does not exist"):
        main(["export", f"--ckpt_path={tmp_path / 'none.ckpt'}"])


def test_export_cli_default_is_the_camera_graph(checkpoints, tmp_path, capsys):
    """TorchScript camera graph of the mono checkpoint at a size off the network's multiple;
    ``--resolution native`` pads instead of resizing to the training size."""
    out = tmp_path / "m.pt"
    main(["export", f"--ckpt_path={checkpoints['mono']}", "--format=torchscript",
          "--height=30", "--width=37", f"--out={out}", "--resolution=native"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["graph"] == "camera" and summary["check_size"] == [30, 37]
    assert summary["max_rel_error"] <= 1e-4 and summary["output"] == "depth"
    contract = summary["contract"]
    assert contract["predict_resolution"] == "native" and contract["inputs"][0]["dtype"] == "uint8"
    image = torch.randint(0, 256, (1, 30, 37, 3), dtype=torch.uint8)
    task = load_task(checkpoints["mono"])
    task.set_predict_resolution("native")
    with torch.no_grad():
        expected = task.predict_map(image.permute(0, 3, 1, 2).float() / 255)[:, 0]
    torch.testing.assert_close(run_exported(out, [image]), expected, rtol=1e-5, atol=0)


def test_export_cli_fails_when_the_file_returns_nan(checkpoints, tmp_path, monkeypatch, capsys):
    """A NaN in the exported file's output (where PyTorch's is finite) fails the check: a NaN
    error compares false with any bound, so it must be caught on its own."""
    import lightning_depth.deploy.export as export

    real_load = export.load

    def load_with_a_nan(path, **kwargs):
        model = real_load(path, **kwargs)

        def run(*images):
            out = model(*images).copy()
            out.flat[3] = float("nan")
            return out

        return run

    monkeypatch.setattr(export, "load", load_with_a_nan)
    out = tmp_path / "m.onnx"
    with pytest.raises(SystemExit, match=r"returns 1 NaN or infinite values where the PyTorch"):
        main(["export", f"--ckpt_path={checkpoints['mono']}", f"--out={out}"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["nonfinite"] == 1
