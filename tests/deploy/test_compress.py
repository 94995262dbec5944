import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_depth.cli import main
from lightning_depth.config import build_cli
from lightning_depth.deploy.compress import (
    count_parameters,
    make_pruning_permanent,
    prune_conv_weights,
)
from tests.helpers import demo_data_args

pytest.importorskip("onnxruntime")


def test_prune_and_count():
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    total, nonzero = count_parameters(net)
    assert total == (2 * 4 * 9 + 4) + (16 + 4) + 8
    assert nonzero == total - 4  # the batch norm's bias starts at zero
    convs = prune_conv_weights(net, 0.5)
    conv_weights = 2 * 4 * 9 + 16
    assert count_parameters(net) == (total, nonzero - conv_weights // 2)
    # The masks hold through training steps, also where the weight is read directly (as
    # AnyNet's 3D convolutions do) instead of through the layer's call.
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(2, 2, 5, 5)
    for _ in range(2):
        optimizer.zero_grad()
        y = torch.nn.functional.conv2d(x, net[0].weight, net[0].bias)
        (net[3](net[2](y)) ** 2).mean().backward()
        optimizer.step()
    make_pruning_permanent(convs)
    assert not any(parametrize.is_parametrized(m) for m in net.modules())
    assert count_parameters(net)[1] <= nonzero + 4 - conv_weights // 2  # + the BN bias moved
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        prune_conv_weights(net, 1.0)
    with pytest.raises(ValueError, match="no convolutions"):
        prune_conv_weights(nn.Linear(2, 2), 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["mono", "stereo"])
def test_compress_report(checkpoints, demo_root, tmp_path, task):
    out = tmp_path / "compress"
    data = demo_data_args(task, demo_root)
    main(["compress", *data, f"--ckpt_path={checkpoints[task]}", f"--out={out}", "--prune=0.5",
          "--finetune-steps=2", "--latency-runs=2"])  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    rows = {r["name"]: r for r in report["variants"]}
    assert list(rows) == ["fp32", "int8", "pruned", "pruned_int8"]
    shape = [1, 3, 32, 32] if task == "mono" else [1, 3, 64, 128]
    assert report["task"] == task and report["input_shape"] == shape
    total = rows["fp32"]["parameters"]
    assert all(r["parameters"] == total for r in rows.values())
    # Half of the conv weights are zero after pruning (biases and batch norm are kept).
    assert rows["pruned"]["nonzero_parameters"] < 0.6 * rows["fp32"]["nonzero_parameters"]
    # int8 weights: the autoencoder's file shrinks ~4x; AnyNet's (43k weights, most of the
    # file is graph) only by the weights' share.
    shrink = 0.5 if task == "mono" else 0.99
    assert rows["int8"]["file_bytes"] < shrink * rows["fp32"]["file_bytes"]
    assert rows["pruned"]["zlib_bytes"] < rows["fp32"]["zlib_bytes"]
    # The task's headline metrics, primary first.
    keys = ["ssim", "abs_rel", "delta1"] if task == "mono" else ["3px", "epe"]
    assert report["metric_keys"] == keys
    for row in rows.values():
        assert Path(row["file"]).is_file() and row["file_bytes"] == Path(row["file"]).stat().st_size
        assert row["latency_ms"] > 0
        assert all(np.isfinite(row["metrics"][k]) for k in keys)
    # The fp32 ONNX accuracy is the PyTorch model's on the same validation set.
    from lightning_depth.deploy.export import load_task

    model = load_task(checkpoints[task])
    assert report["stage"] == model.num_stages == (1 if task == "mono" else 4)
    cli = build_cli([*data, "--trainer.logger=false"], run=False)
    cli.datamodule.setup("fit")
    expected = model.evaluate(cli.datamodule.val_dataloader())
    for k in keys:
        assert rows["fp32"]["metrics"][k] == pytest.approx(expected[k], rel=1e-4, abs=1e-6), k
    md = (out / "report.md").read_text()
    assert "| int8 |" in md and keys[0] in md
    assert torch.get_default_dtype() == torch.float32
