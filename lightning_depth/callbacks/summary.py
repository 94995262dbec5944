"""The end-of-run summary of ``lightning_depth fit|validate|test``: the checkpoints written,
the best monitored value, the final metrics, the wall time, and one ``RESULT`` line.

``DepthCLI`` prints it after every ``fit``, ``validate`` and ``test`` (on the global-zero
process only). The ``RESULT`` line is the one line scripts read: space-separated
``key=value`` pairs, in this order:

- what callbacks contribute: a callback with a ``result_values() -> dict`` method (the demo's
  :class:`~lightning_depth.callbacks.report.LearningReport`: ``val_ssim_before=...
  val_ssim_after=...``) adds its pairs first;
- ``best_<monitor>`` for each monitoring ``ModelCheckpoint`` (``best_val_ssim=0.7102``);
- the task's headline metrics and monitored metric as last logged (``val_ssim=...``; after
  ``test``: ``test_ssim=...``; every metric for a module without ``headlines``); slashes in
  metric names become underscores;
- ``best_ckpt`` and ``last_ckpt`` (after ``fit``) or ``ckpt`` (the checkpoint evaluated);
- ``seconds``: wall time since the command started.

Numbers have four decimals (or four significant digits when tiny or huge). A value never
holds a space or ``=``: those (and ``%``) are percent-encoded, so
``urllib.parse.unquote`` gives a path back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["format_value", "result_line", "summary_lines"]

#: the metric prefix each command's final metrics carry
STAGE_PREFIX = {"fit": "val/", "validate": "val/", "test": "test/"}
#: how each command's metrics are named in the human-readable lines
STAGE_NAME = {"fit": "validation", "validate": "validation", "test": "test"}


def format_value(value: Any) -> str:
    """A ``RESULT`` value: numbers with four decimals (four significant digits outside
    ``[1e-3, 1e6)``), text with whitespace, ``=`` and ``%`` percent-encoded.

    >>> format_value(0.71024), format_value(2.5e-05), format_value("a b=c.ckpt")
    ('0.7102', '2.5e-05', 'a%20b%3Dc.ckpt')
    """
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e6 else f"{value:.4g}"
    return re.sub(r"[\s=%]", lambda m: f"%{ord(m.group()):02X}", os.fspath(value))


def result_line(values: dict[str, Any]) -> str:
    """``RESULT key=value ...`` with :func:`format_value`; keys must not hold spaces or
    ``=``."""
    for key in values:
        if not key or re.search(r"[\s=]", key):
            raise ValueError(f"a RESULT key cannot be empty or hold spaces or '=', got {key!r}")
    return "RESULT " + " ".join(f"{k}={format_value(v)}" for k, v in values.items())


def summary_lines(trainer: L.Trainer, stage: str, seconds: float) -> list[str]:
    """The lines printed after ``stage`` (``"fit"``, ``"validate"`` or ``"test"``), the
    ``RESULT`` line last.

    Args:
        trainer: the trainer that ran ``stage``.
        stage: the command.
        seconds: its wall time.
    """
    if stage not in STAGE_PREFIX:
        raise ValueError(f"stage must be one of {sorted(STAGE_PREFIX)}, got {stage!r}")
    prefix = STAGE_PREFIX[stage]
    values: dict[str, Any] = {}
    for callback in trainer.callbacks:
        contribute = getattr(callback, "result_values", None)
        if callable(contribute):
            for key, value in contribute().items():
                values.setdefault(key, value)

    lines = [f"summary of {stage} ({seconds:.1f} s):"]
    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    if stage == "fit":
        best, last = _best_and_last(checkpoints)
        for callback in checkpoints:
            if callback.monitor and callback.best_model_path:
                score = _number(callback.best_model_score)
                values.setdefault(f"best_{_key(callback.monitor)}", score)
                lines.append(
                    f"  best checkpoint: {_shown(callback.best_model_path)} "
                    f"({callback.monitor}={format_value(score)}, {callback.mode})"
                )
        if last:
            lines.append(f"  last checkpoint: {last}")
        if not best and not last:
            lines.append("  no checkpoint written")
    elif trainer.ckpt_path:
        lines.append(f"  checkpoint: {_shown(trainer.ckpt_path)}")

    metrics = {
        name: _number(value)
        for name, value in sorted(trainer.callback_metrics.items())
        if name.startswith(prefix) and isinstance(value, torch.Tensor) and value.numel() == 1
    }
    if metrics:
        shown = " ".join(f"{name[len(prefix) :]}={format_value(v)}" for name, v in metrics.items())
        lines.append(f"  {STAGE_NAME[stage]}: {shown}")
    for name in _headline_names(trainer.lightning_module, prefix) or metrics:
        if name in metrics:
            values.setdefault(_key(name), metrics[name])

    if stage == "fit":
        if best:
            values["best_ckpt"] = best
        if last:
            values["last_ckpt"] = last
    elif trainer.ckpt_path:
        values["ckpt"] = _shown(trainer.ckpt_path)
    values["seconds"] = f"{seconds:.1f}"
    lines.append(result_line(values))
    return lines


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it lies below it (what a user types
    next, and the same on every machine), else as it is."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else path
    except (OSError, ValueError):
        return path


def _best_and_last(checkpoints: list[ModelCheckpoint]) -> tuple[str, str]:
    """The best checkpoint (of the first monitoring ``ModelCheckpoint`` that wrote one) and
    the latest (a ``last.ckpt``, else the newest file of a non-monitoring one)."""
    best = next((c.best_model_path for c in checkpoints if c.monitor and c.best_model_path), "")
    last = next((c.last_model_path for c in checkpoints if c.last_model_path), "")
    if not last:
        last = next(
            (c.best_model_path for c in checkpoints if not c.monitor and c.best_model_path), ""
        )
    return _shown(best) if best else "", _shown(last) if last else ""


def _headline_names(module: Any, prefix: str) -> list[str]:
    """The task's headline metrics and its monitored metric, as logged under ``prefix``."""
    names = [prefix + h.key for h in getattr(module, "headlines", ())]
    monitor = getattr(module, "monitor", None)
    if isinstance(monitor, str) and "/" in monitor:
        names.append(prefix + monitor.split("/", 1)[1])
    return list(dict.fromkeys(names))


def _key(metric: str) -> str:
    return metric.replace("/", "_")


def _number(value: Any) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)
