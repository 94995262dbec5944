"""The run summary's lines and its ``RESULT`` line, on a stand-in trainer."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import unquote

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_depth.callbacks.summary import format_value, result_line, summary_lines
from lightning_depth.tasks.base import Headline


def test_values_have_no_spaces_or_equals_and_unquote_back() -> None:
    assert format_value(0.710249) == "0.7102"
    assert format_value(torch.tensor(3.0)) == "3.0000"
    assert format_value(2.5e-5) == "2.5e-05" and format_value(0.0) == "0.0000"
    assert format_value(7) == "7"
    path = "/runs/my run/epoch=1-step=10.ckpt"
    assert format_value(path) == "/runs/my%20run/epoch%3D1-step%3D10.ckpt"
    assert unquote(format_value(path)) == path


def test_a_key_with_a_space_or_equals_is_refused() -> None:
    assert result_line({"a": 1.0, "b": "x"}) == "RESULT a=1.0000 b=x"
    for key in ("a b", "a=b", ""):
        with pytest.raises(ValueError, match="RESULT key"):
            result_line({key: 1})


class _Report:
    def result_values(self) -> dict[str, float]:
        return {"val_ssim_before": 0.25, "val_ssim_after": 0.7}


def _checkpoint(monitor: str | None, best: str, score: float | None, last: str = ""):
    callback = ModelCheckpoint(monitor=monitor, mode="max")
    callback.best_model_path, callback.last_model_path = best, last
    callback.best_model_score = None if score is None else torch.tensor(score)
    return callback


def _trainer(callbacks: list, metrics: dict[str, float], ckpt_path: str | None = None):
    module = SimpleNamespace(headlines=(Headline("ssim", "SSIM"),), monitor="val/ssim")
    return SimpleNamespace(
        callbacks=callbacks,
        callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
        lightning_module=module,
        ckpt_path=ckpt_path,
    )


def _parse(line: str) -> dict[str, str]:
    assert line.startswith("RESULT ")
    return dict(kv.split("=") for kv in line[len("RESULT ") :].split())


def test_fit_summary_names_the_best_and_last_checkpoints_in_one_line() -> None:
    trainer = _trainer(
        [
            _Report(),
            _checkpoint("val/ssim", "/r/best-epoch001.ckpt", 0.71),
            _checkpoint("val/abs_rel", "/r/mine-epoch=0.ckpt", 0.4),
            _checkpoint(None, "/r/latest-epoch001.ckpt", None, last="/r/last.ckpt"),
        ],
        {"val/ssim": 0.70, "val/abs_rel": 0.38, "val/loss": 0.5, "train/loss": 0.6},
    )
    lines = summary_lines(trainer, "fit", 12.34)
    assert lines[0] == "summary of fit (12.3 s):"
    assert "  best checkpoint: /r/best-epoch001.ckpt (val/ssim=0.7100, max)" in lines
    assert "  last checkpoint: /r/last.ckpt" in lines
    assert "  validation: abs_rel=0.3800 loss=0.5000 ssim=0.7000" in lines
    assert sum(line.startswith("RESULT") for line in lines) == 1
    values = _parse(lines[-1])
    assert list(values) == [
        "val_ssim_before", "val_ssim_after", "best_val_ssim", "best_val_abs_rel", "val_ssim",
        "best_ckpt", "last_ckpt", "seconds",
    ]  # fmt: skip
    assert values["best_ckpt"] == "/r/best-epoch001.ckpt" and values["seconds"] == "12.3"
    assert values["val_ssim_before"] == "0.2500" and values["best_val_abs_rel"] == "0.4000"


def test_without_last_ckpt_the_latest_file_of_an_unmonitored_checkpoint_is_last() -> None:
    trainer = _trainer([_checkpoint(None, "/r/epoch=1-step=4.ckpt", None)], {"val/ssim": 0.5})
    values = _parse(summary_lines(trainer, "fit", 1.0)[-1])
    assert values["last_ckpt"] == "/r/epoch%3D1-step%3D4.ckpt" and "best_ckpt" not in values


def test_test_summary_names_the_checkpoint_and_the_test_metrics() -> None:
    trainer = _trainer([], {"test/ssim": 0.6, "val/ssim": 0.7}, ckpt_path="/r/last.ckpt")
    lines = summary_lines(trainer, "test", 2.0)
    assert "  checkpoint: /r/last.ckpt" in lines and "  test: ssim=0.6000" in lines
    assert _parse(lines[-1]) == {"test_ssim": "0.6000", "ckpt": "/r/last.ckpt", "seconds": "2.0"}
    with pytest.raises(ValueError, match="stage must be one of"):
        summary_lines(trainer, "predict", 1.0)
