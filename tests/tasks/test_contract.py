"""The task contract: a third model family defined only here runs through every tool.

``ToyDepthTask`` (a 2-layer monocular net predicting log-depth) implements
:class:`~lightning_depth.tasks.base.DepthTask`'s contract and nothing else; fit, predict,
export and ablate run on it with no change to the package, so no tool branches on the task
kinds it knows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from PIL import Image
from torch import nn
from torchmetrics import MeanMetric

from lightning_depth.cli import main
from lightning_depth.tasks.base import DepthTask, Headline, PictureRoles


class TinyNet(nn.Module):
    """``image (B, 3, H, W) -> log-depth (B, 1, H, W)``: conv 3x3, ReLU, conv 1x1."""

    size_multiple = 1

    def __init__(self, hidden: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, 1, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)


def _masked_mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean |pred - target| over valid pixels, ``(B,)``."""
    valid = mask.float()
    return ((pred - target).abs() * valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp(min=1)


class ToyDepthTask(DepthTask):
    name = "toy"
    input_keys = ("image",)
    target_key = "target"
    output_name = "log_depth"
    output_unit = "log-depth: natural log of metres"
    monitor = "val/mae"
    monitor_mode = "min"
    headlines = (Headline("mae", "MAE (log m)"),)
    default_export_size = (32, 32)
    map_kind = "depth"
    metrics_note = "MAE of log-depth over valid pixels."

    def __init__(
        self,
        net: Optional[nn.Module] = None,
        optimizer: Optional[OptimizerCallable] = None,
        scheduler: Optional[LRSchedulerCallable] = None,
    ) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_task_hyperparameters()
        self.net = net if net is not None else TinyNet()
        self.val_metrics = self.make_metrics()
        self.test_metrics = self.make_metrics()

    def default_optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=1e-2)

    def forward_outputs(self, batch: dict, stages: Optional[int] = None) -> torch.Tensor:
        return self.net(batch["image"])

    def export_module(self, stages: Optional[int] = None) -> nn.Module:
        return self.net

    def compute_loss(self, batch: dict, pred: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": _masked_mae(pred.float(), batch["target"], batch["mask"]).mean()}

    def make_final_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict({"mae": MeanMetric()})

    def update_final_metrics(
        self, metrics: nn.ModuleDict, batch: dict, final: torch.Tensor
    ) -> None:
        metrics["mae"].update(_masked_mae(final.float(), batch["target"], batch["mask"]))

    def per_sample_metrics(self, batch: dict, outputs: Any) -> dict[str, torch.Tensor]:
        return {"mae": _masked_mae(outputs.float(), batch["target"], batch["mask"])}

    @property
    def picture_roles(self) -> PictureRoles:
        return PictureRoles(inputs=("input",), target="target", prediction="prediction")

    def visualize(self, batch: dict, outputs: Any, index: int = 0) -> dict[str, np.ndarray]:
        def grey(x: torch.Tensor) -> np.ndarray:
            x = x[0].detach().float()
            x = (x - x.min()) / (x.max() - x.min()).clamp(min=1e-6)
            return (x[..., None].expand(*x.shape, 3) * 255).byte().cpu().numpy()

        return {
            "input": self.input_image(batch, index),
            "target": grey(batch["target"][index]),
            "prediction": grey(outputs[index]),
        }

    def prediction_map(self, outputs: Any) -> torch.Tensor:
        return outputs.detach().float().exp()

    def input_image(self, batch: dict, index: int) -> np.ndarray:
        image = batch["image"][index].detach().float().clamp(0, 1)
        return (image.permute(1, 2, 0) * 255).round().byte().cpu().numpy()


TOY = f"{__name__}.ToyDepthTask"
NET = f"{__name__}.TinyNet"


def _data_args(root: Path) -> list[str]:
    """Tiny generated DIODE-layout data (12 samples at 32x32)."""
    from tests.helpers import demo_data_args

    args = demo_data_args("mono", root)
    # the demo config's model (the autoencoder) is replaced by the toy task and its net
    return [*args, f"--model={TOY}", f"--model.init_args.net={NET}"]


@pytest.mark.slow
def test_a_task_defined_outside_the_package_runs_through_every_tool(tmp_path: Path, capsys) -> None:
    # -- fit ---------------------------------------------------------------------------
    run = tmp_path / "run"
    main(
        ["fit", *_data_args(tmp_path / "data"), "--trainer.max_epochs=3",
         "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={run}",
         f"--trainer.logger.init_args.save_dir={run}",
         # the demo's report shows the task's own headline metrics
         "--trainer.callbacks.init_args.metrics=null"]
    )  # fmt: skip
    out = capsys.readouterr().out
    result = dict(kv.split("=") for kv in re.search(r"^RESULT (.*)$", out, re.M).group(1).split())
    last = next(run.rglob("last.ckpt"))
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    # the training size (the demo data's 32x32) is recorded for predict and export
    assert checkpoint["task"] == {"class_path": TOY, "name": "toy", "train_size": [32, 32]}
    # the default best checkpoint watched the toy task's own metric
    best = next(run.rglob("best-*.ckpt"))
    assert "val_mae" in best.name

    # -- predict -----------------------------------------------------------------------
    photos = tmp_path / "photos"
    photos.mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(photos / "p0.png")
    written = tmp_path / "predicted"
    main(
        ["predict", f"--model={TOY}",
         "--data=lightning_depth.data.predict.MonoPredictDataModule",
         f"--data.init_args.inputs=[{photos}]", "--trainer.logger=false",
         "--trainer.callbacks=lightning_depth.callbacks.writer.DepthPredictionWriter",
         f"--trainer.callbacks.output_dir={written}", "--trainer.callbacks.point_cloud=false",
         f"--trainer.default_root_dir={tmp_path / 'predict_run'}", f"--ckpt_path={last}"]
    )  # fmt: skip
    depth = np.load(written / "p0.npy")
    net = TinyNet()
    net.load_state_dict({k[4:]: v for k, v in checkpoint["state_dict"].items()})
    image = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = net(image).exp()[0, 0].numpy()
    assert depth.shape == (24, 40)
    np.testing.assert_allclose(depth, expected, rtol=1e-5)

    # -- export ------------------------------------------------------------------------
    onnx_path = tmp_path / "toy.onnx"
    capsys.readouterr()
    main(["export", f"--ckpt_path={last}", "--format=onnx", f"--out={onnx_path}"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["file"] == str(onnx_path) and summary["max_rel_error"] < 1e-4
    assert (summary["height"], summary["width"]) == (32, 32)  # the toy task's default

    # -- ablate ------------------------------------------------------------------------
    config = tmp_path / "ablation.yaml"
    data_overrides = {
        a.split("=", 1)[0].removeprefix("--data.init_args."): yaml.safe_load(a.split("=", 1)[1])
        for a in _data_args(tmp_path / "data")
        if a.startswith("--data.init_args.")
    }
    config.write_text(
        yaml.safe_dump(
            {
                "name": "toy",
                "task": "toy",
                "base": [
                    str(Path("configs/demo/mono.yaml").resolve()),
                    {"data": {"init_args": data_overrides}, "trainer": {"max_epochs": 2}},
                ],
                "args": ["--trainer.enable_progress_bar=false", "--trainer.callbacks=[]"],
                "columns": ["hidden"],
                "variants": [
                    {"name": "toy h2", "hidden": "2",
                     "args": [f"--model={TOY}", f"--model.init_args.net={NET}",
                              "--model.init_args.net.init_args.hidden=2"]},
                    {"name": "toy h4", "hidden": "4",
                     "args": [f"--model={TOY}", f"--model.init_args.net={NET}"]},
                ],
            }
        )
    )  # fmt: skip
    main(["ablate", "--config", str(config), "--out", str(tmp_path / "ablation")])
    results = json.loads((tmp_path / "ablation" / "results.json").read_text())
    assert results["task"] == "toy"
    header, rows = results["table"]["header"], results["table"]["rows"]
    assert "MAE (log m)" in header and "Inference (ms)" in header
    # parameters: conv 3x3 (3*h*9 + h) + conv 1x1 (h + 1)
    assert [row[header.index("Parameters")] for row in rows] == [f"{29 * 2 + 1}", f"{29 * 4 + 1}"]
    assert float(result["val_mae_after"]) < float(result["val_mae_before"])
