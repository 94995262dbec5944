import json
from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_depth.cli import main
from lightning_depth.deploy.compress import count_parameters, prune_conv_weights

pytest.importorskip("onnxruntime")

DATA = ["--data.init_args.synth_samples=12", "--data.init_args.synth_size=[64, 48]",
        "--data.init_args.size=[32, 32]"]  # fmt: skip


def test_prune_and_count():
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    total, nonzero = count_parameters(net)
    assert total == (2 * 4 * 9 + 4) + (16 + 4) + 8
    assert nonzero == total - 4  # the batch norm's bias starts at zero
    prune_conv_weights(net, 0.5)
    conv_weights = 2 * 4 * 9 + 16
    assert count_parameters(net) == (total, nonzero - conv_weights // 2)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        prune_conv_weights(net, 1.0)
    with pytest.raises(ValueError, match="no convolutions"):
        prune_conv_weights(nn.Linear(2, 2), 0.5)


@pytest.mark.slow
def test_compress_report_mono(tmp_path):
    root = tmp_path / "run"
    main(["fit", "--config", "configs/demo/mono.yaml", f"--data.init_args.root={tmp_path / 'd'}",
          *DATA, "--model.init_args.net.init_args.depth=2", "--trainer.max_epochs=1",
          f"--trainer.default_root_dir={root}", "--trainer.logger=false", "--trainer.callbacks=[]",
          "--trainer.enable_progress_bar=false"])  # fmt: skip
    ckpt = next(Path(root).rglob("last.ckpt"))
    out = tmp_path / "compress"
    main(["compress", "--config", "configs/demo/mono.yaml", f"--ckpt_path={ckpt}",
          f"--out={out}", "--prune=0.5", "--finetune-steps=2", "--latency-runs=2",
          f"--data.init_args.root={tmp_path / 'd'}", *DATA])  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    rows = {r["name"]: r for r in report["variants"]}
    assert list(rows) == ["fp32", "int8", "pruned", "pruned_int8"]
    assert report["task"] == "mono" and report["input_shape"] == [1, 3, 32, 32]
    total = rows["fp32"]["parameters"]
    assert all(r["parameters"] == total for r in rows.values())
    assert rows["fp32"]["nonzero_parameters"] == total
    # Half of the conv weights are zero after pruning (biases and batch norm are kept).
    assert rows["pruned"]["nonzero_parameters"] < 0.6 * total
    assert rows["int8"]["file_bytes"] < 0.5 * rows["fp32"]["file_bytes"]
    assert rows["pruned"]["zlib_bytes"] < rows["fp32"]["zlib_bytes"]
    for row in rows.values():
        assert Path(row["file"]).is_file() and row["file_bytes"] == Path(row["file"]).stat().st_size
        assert row["latency_ms"] > 0
        assert 0 <= row["metrics"]["abs_rel"] < 10 and -1 <= row["metrics"]["ssim"] <= 1
    # The fp32 ONNX accuracy is the PyTorch model's.
    from lightning_depth.tasks.mono import MonoDepthModule

    task = MonoDepthModule.load_from_checkpoint(ckpt, map_location="cpu")
    from lightning_depth.data.diode import DIODEDataModule

    dm = DIODEDataModule(root=str(tmp_path / "d"), size=(32, 32), synth_samples=12,
                         synth_size=(64, 48))  # fmt: skip
    dm.setup("fit")
    expected = task.evaluate(dm.val_dataloader())
    assert rows["fp32"]["metrics"]["abs_rel"] == pytest.approx(expected["abs_rel"], rel=1e-4)
    md = (out / "report.md").read_text()
    assert "| int8 |" in md and "abs_rel" in md
    assert torch.get_default_dtype() == torch.float32
