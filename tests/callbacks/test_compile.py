"""CompileNetwork: a fit through the Trainer runs the compiled network (dynamo captures
graphs), trains to the weights an eager fit reaches, keeps the weight names, and refuses
what it cannot compile."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters
from torch.utils.data import DataLoader

from lightning_depth import StereoDepthModule
from lightning_depth.callbacks import CompileNetwork
from lightning_depth.models import AnyNet
from tests.helpers import quiet_trainer


def _batches(n: int = 2) -> list[dict]:
    g = torch.Generator().manual_seed(5)
    out = []
    for i in range(n):
        out.append(
            {
                "left": torch.randn(2, 3, 32, 64, generator=g, dtype=torch.float64),
                "right": torch.randn(2, 3, 32, 64, generator=g, dtype=torch.float64),
                "disparity": 2 + 10 * torch.rand(2, 1, 32, 64, generator=g, dtype=torch.float64),
                "name": [f"s/{i}{j}" for j in range(2)],
            }
        )
    return out


def _fit(callbacks: list) -> StereoDepthModule:
    torch.manual_seed(0)
    # SGD: Adam would turn the rounding noise of mathematically zero gradients (the stem
    # convolution's bias, followed by a batch norm) into steps of the learning rate's size.
    task = StereoDepthModule(
        net=AnyNet(spn_channels=2),
        optimizer=lambda params: torch.optim.SGD(params, lr=1e-3),
    )
    trainer = quiet_trainer(
        max_epochs=1, precision="64-true", limit_val_batches=0, callbacks=callbacks
    )
    trainer.fit(task, DataLoader(_batches(), batch_size=None))  # the batches as they are
    return task


@pytest.mark.slow
def test_compiled_fit_captures_graphs_and_trains_like_eager() -> None:
    torch._dynamo.reset()
    counters.clear()
    eager = _fit([])
    assert counters["stats"]["unique_graphs"] == 0
    # aot_eager: dynamo's graphs and AOTAutograd's backward, without inductor's code
    # generation (seconds instead of minutes on CPU; inductor is torch's own concern).
    compiled = _fit([CompileNetwork(backend="aot_eager")])
    # AnyNet + SPN: graphs before and after the SPN's propagation, which stays eager.
    assert counters["stats"]["unique_graphs"] >= 2
    assert sum(counters["graph_break"].values()) >= 1
    eager_weights, compiled_weights = eager.state_dict(), compiled.state_dict()
    assert list(compiled_weights) == list(eager_weights)  # no "_orig_mod." prefix
    torch.manual_seed(0)
    start = StereoDepthModule(net=AnyNet(spn_channels=2)).double().state_dict()
    for name, value in eager_weights.items():
        torch.testing.assert_close(compiled_weights[name], value, rtol=1e-9, atol=1e-12)
    # The two steps moved every weight, statistic and counter but the stem convolution's
    # bias, whose gradient a batch norm right after it cancels.
    fixed = [name for name, value in eager_weights.items() if torch.equal(value, start[name])]
    assert fixed == ["net.feature_extractor.stem.0.bias"]


def test_stage_not_listed_stays_eager() -> None:
    task = StereoDepthModule(net=AnyNet(spn_channels=0))
    CompileNetwork(stages=["predict"]).setup(None, task, "fit")
    assert getattr(task.net, "_compiled_call_impl", None) is None
    CompileNetwork(stages="predict", backend="eager").setup(None, task, "predict")
    assert task.net._compiled_call_impl is not None


def test_refuses_unknown_stages_and_a_missing_network() -> None:
    with pytest.raises(ValueError, match="stages must be among"):
        CompileNetwork(stages=["train"])
    task = StereoDepthModule(net=AnyNet(spn_channels=0))
    with pytest.raises(ValueError, match=r"StereoDepthModule\.model is NoneType, not a network"):
        CompileNetwork(module="model").setup(None, task, "fit")
