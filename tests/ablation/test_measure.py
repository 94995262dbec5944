"""The measurements through the task contract, on a toy task with two outputs per pass (a
list, as anytime networks return): per-sample metrics, kept samples and timed parts."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from lightning_depth.ablation.measure import describe_task, per_sample_pass, pictures, time_parts


class _Toy(nn.Module):
    """Only what the contract promises: no DepthTask, no tasks/ import."""

    name = "toy"
    headlines = ()
    metrics_note = "toy"
    loss_curve_keys = ("loss",)

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))

    @property
    def picture_roles(self) -> Any:
        from lightning_depth.tasks.base import PictureRoles  # the contract's type

        return PictureRoles(inputs=("x",), target="x", prediction="y")

    @property
    def device(self) -> torch.device:
        return self.scale.device

    def transfer_batch_to_device(self, batch: dict, device: torch.device, index: int) -> dict:
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def forward_outputs(self, batch: dict, stages: Optional[int] = None) -> list[torch.Tensor]:
        return [batch["x"] * self.scale, batch["x"] + 1][: stages or 2]

    def per_sample_metrics(self, batch: dict, outputs: list[torch.Tensor]) -> dict:
        return {"mean": outputs[-1].flatten(1).mean(1)}

    def timed_parts(self, batch: dict) -> list:
        return [(f"stage{k}", lambda k=k: self.forward_outputs(batch, stages=k)) for k in (1, 2)]

    def visualize(self, batch: dict, outputs: list, index: int = 0) -> dict:
        value = int(outputs[0][index].mean())
        return {"x": np.zeros((2, 2, 3), np.uint8), "y": np.full((2, 2, 3), value, np.uint8)}


def _loader() -> list[dict]:
    x = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 1, 2, 2)
    return [
        {"x": x[:3].clone(), "name": ["a", "b", "c"]},
        {"x": x[3:].clone(), "name": ["d", "e"]},
    ]


def test_per_sample_pass_keeps_the_first_samples_of_list_outputs() -> None:
    model = _Toy().train()
    passed = per_sample_pass(model, _loader(), samples=4)
    assert model.training  # restored
    assert passed["names"] == ["a", "b", "c", "d", "e"]
    assert passed["values"] == {"mean": [1.0, 2.0, 3.0, 4.0, 5.0]}
    assert passed["batch"]["name"] == ["a", "b", "c", "d"]
    assert [o.shape[0] for o in passed["outputs"]] == [4, 4]
    assert passed["outputs"][0].flatten(1)[:, 0].tolist() == [0.0, 2.0, 4.0, 6.0]
    shown = pictures(model, passed["batch"], passed["outputs"])
    assert [int(p["y"][0, 0, 0]) for p in shown] == [0, 2, 4, 6]
    assert describe_task(model)["picture_roles"] == {
        "inputs": ("x",),
        "target": "x",
        "prediction": "y",
    }


def test_no_kept_samples_gives_no_pictures() -> None:
    passed = per_sample_pass(_Toy(), _loader(), samples=0)
    assert passed["batch"] == {} and passed["outputs"] is None
    assert pictures(_Toy(), passed["batch"], passed["outputs"]) == []


def test_time_parts_names_each_part_of_the_task() -> None:
    times = time_parts(_Toy(), _loader()[0], repeats=2)
    assert list(times) == ["stage1", "stage2"]
    assert all(t >= 0.0 for t in times.values())
