"""What the ablation measures on a trained variant, through the task contract only
(:class:`~lightning_depth.tasks.base.DepthTask`): per-sample test metrics, the pictures of the
first test samples, and the inference time of each timed part of the forward pass."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Iterable

import numpy as np
import torch
from torch.utils._pytree import tree_map

__all__ = ["describe_task", "device_name", "pictures", "per_sample_pass", "time_parts"]


def describe_task(model: Any) -> dict[str, Any]:
    """What a report needs to know of a variant's task, as JSON: ``task`` (its name),
    ``headlines`` (the first is primary), ``metrics_note``, ``loss_curve_keys`` and
    ``picture_roles``."""
    return {
        "task": model.name,
        "headlines": [dataclasses.asdict(h) for h in model.headlines],
        "metrics_note": model.metrics_note,
        "loss_curve_keys": list(model.loss_curve_keys),
        "picture_roles": dataclasses.asdict(model.picture_roles),
    }


def _slice(batch: dict, i: int) -> dict:
    """Sample ``i`` of a batch, on the CPU (tensors keep a batch dimension of 1)."""
    return {
        k: (v[i : i + 1].detach().cpu() if isinstance(v, torch.Tensor) else [v[i]])
        for k, v in batch.items()
    }


def _cat_batches(items: list[dict]) -> dict:
    out = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.cat(values)
        else:
            out[key] = [v for part in values for v in part]
    return out


def _batch_size(batch: dict) -> int:
    return len(next(v for v in batch.values() if isinstance(v, torch.Tensor)))


@torch.no_grad()
def per_sample_pass(model: Any, loader: Iterable[dict], samples: int) -> dict[str, Any]:
    """Per-sample metrics over the whole test split, and the first ``samples`` test samples
    with their outputs (for the pictures).

    Returns:
        ``names`` (one per test sample), ``values`` (``{metric: [float, ...]}``, from
        ``per_sample_metrics``), ``batch`` (the kept samples as one batch, on the CPU, or
        ``{}``) and ``outputs`` (their ``forward_outputs``, tensors or a list of them).
    """
    was_training = model.training
    model.eval()
    names: list[str] = []
    per_sample: dict[str, list[torch.Tensor]] = {}
    kept: list[dict] = []
    kept_outputs: list[Any] = []
    try:
        for batch in loader:
            batch = model.transfer_batch_to_device(batch, model.device, 0)
            outputs = model.forward_outputs(batch)
            for key, values in model.per_sample_metrics(batch, outputs).items():
                per_sample.setdefault(key, []).append(values.detach().float().cpu())
            size = _batch_size(batch)
            names += list(batch.get("name") or [str(len(names) + i) for i in range(size)])
            for i in range(min(size, samples - len(kept))):
                kept.append(_slice(batch, i))
                # outputs are a tensor or a list of them (one per stage): slice every leaf
                kept_outputs.append(tree_map(lambda t, i=i: t[i : i + 1].detach().cpu(), outputs))
    finally:
        model.train(was_training)
    return {
        "names": names,
        "values": {k: torch.cat(v).tolist() for k, v in per_sample.items()},
        "batch": _cat_batches(kept) if kept else {},
        "outputs": tree_map(lambda *ts: torch.cat(ts), *kept_outputs) if kept_outputs else None,
    }


def pictures(model: Any, batch: dict, outputs: Any) -> list[dict[str, np.ndarray]]:
    """Per kept sample: the task's ``visualize`` pictures."""
    if not batch:
        return []
    return [model.visualize(batch, outputs, index=i) for i in range(_batch_size(batch))]


@torch.inference_mode()
def time_parts(model: Any, batch: dict, repeats: int) -> dict[str, float]:
    """Median milliseconds of one sample's forward pass (in eval mode) up to each of the
    task's ``timed_parts`` (anytime networks: stage k includes stages 1..k).

    Returns:
        ``{part name: ms}`` in the task's order, e.g. ``{"forward": 3.1}`` or
        ``{"stage1": 1.0, ..., "stage4": 9.0}``.
    """
    one = model.transfer_batch_to_device(_slice(batch, 0), model.device, 0)
    parts = model.timed_parts(one)

    def sync() -> None:
        # CUDA runs asynchronously: wait for the kernels before reading the clock
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)

    was_training = model.training
    model.eval()
    times = {}
    try:
        for _ in range(2):
            parts[-1][1]()  # warm-up: allocations, oneDNN / cuDNN kernel choice
        for name, call in parts:
            samples = []
            for _ in range(max(1, repeats)):
                sync()
                start = time.perf_counter()
                call()
                sync()
                samples.append((time.perf_counter() - start) * 1000.0)
            times[name] = statistics.median(samples)
    finally:
        model.train(was_training)
    return times


def device_name(device: torch.device) -> str:
    """The device in words for the report (GPU model, or CPU with its thread count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads)"
