"""Compression for small robots: int8 quantisation and magnitude pruning, with a report.

``lightning_depth compress --config CFG --ckpt_path CKPT [--out DIR] [--prune 0.5]
[--finetune-steps 50] [--calib-batches 4] [--latency-runs 20] [--data.init_args.X=...]``

The network comes from the checkpoint (its saved config); ``--config`` (and any further
``--data...``/``--trainer...`` overrides, passed on to LightningCLI) supplies the validation
and fine-tuning data. Four variants are measured, all as ONNX files run by onnxruntime on CPU
(one sample at a time, at the validation batches' resolution):

- ``fp32``: the trained network;
- ``int8``: onnxruntime static quantisation (QDQ, per-channel int8 weights, uint8
  activations calibrated with min-max on ``--calib-batches`` training batches): static
  rather than dynamic because this is a convolutional network, and onnxruntime's dynamic
  quantisation only speeds up matrix products;
- ``pruned``: global L1 magnitude pruning (``torch.nn.utils.prune``) of ``--prune`` of all
  convolution weights, then ``--finetune-steps`` training steps with the masks held;
- ``pruned_int8``: the pruned network, quantised as above.

Per variant: parameters, non-zero parameters, file size, file size after zlib (what
pruning's zeros save on disk or over a radio link; dense kernels do not run faster on
zeros), median CPU latency, and validation accuracy of the final output: the task's
headline metrics (``task.headlines``, e.g. SSIM and AbsRel, or the three-pixel error as a
fraction and EPE), computed by ``task.evaluate`` with the ONNX file as predictor. Written as
``report.json`` and ``report.md`` in ``--out``; the PyTorch eager latency of the fp32 network
is reported too. Everything task-specific comes from the task
(:class:`~lightning_depth.tasks.base.DepthTask`): its inputs, metrics and exported module.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import zlib
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_depth.config import build_cli
from lightning_depth.deploy.checkpoints import load_task
from lightning_depth.deploy.export import export_model
from lightning_depth.deploy.runtime import onnx_session
from lightning_depth.tasks.base import DepthTask

__all__ = [
    "count_parameters",
    "main",
    "make_pruning_permanent",
    "prune_conv_weights",
    "quantize_int8",
]


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """``(parameters, non-zero parameters)`` of ``module`` (pruning masks applied)."""
    total = nonzero = 0
    for m in module.modules():
        if isinstance(m, parametrize.ParametrizationList):
            continue  # counted below as the parametrised (masked) tensor its module uses
        tensors = [p for _, p in m.named_parameters(recurse=False)]
        if parametrize.is_parametrized(m):
            tensors += [getattr(m, name) for name in m.parametrizations]
        for p in tensors:
            total += p.numel()
            nonzero += int(torch.count_nonzero(p))
    return total, nonzero


class _Mask(nn.Module):
    """Parametrisation ``weight = original * mask`` (the mask a fixed buffer)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def prune_conv_weights(module: nn.Module, amount: float) -> list[nn.Module]:
    """Global L1 pruning of ``amount`` (0..1) of all ``Conv2d``/``Conv3d`` weights.

    ``torch.nn.utils.prune`` chooses the masks; they then stay attached as parametrisations
    (:mod:`torch.nn.utils.parametrize`), so that fine-tuning keeps the pruned weights at zero
    also where a network reads ``conv.weight`` without calling the layer (AnyNet's 3D
    convolutions and SPN projections do), which prune's forward pre-hooks would miss.
    :func:`make_pruning_permanent` removes them.

    Returns:
        the pruned convolutions.
    """
    from torch.nn.utils import prune

    if not 0.0 <= amount < 1.0:
        raise ValueError(f"prune amount must be in [0, 1), got {amount}")
    convs = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    if not convs:
        raise ValueError("prune_conv_weights: the module has no convolutions")
    params = [(m, "weight") for m in convs]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    for m in convs:
        mask = m.weight_mask
        prune.remove(m, "weight")  # weight = orig * mask, a plain parameter again
        parametrize.register_parametrization(m, "weight", _Mask(mask))
    return convs


def make_pruning_permanent(convs: list[nn.Module]) -> None:
    """Drop the masks of :func:`prune_conv_weights`, keeping the masked weights."""
    for m in convs:
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)


class _CalibrationReader:
    """onnxruntime ``CalibrationDataReader`` over a list of input dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = iter(feeds)

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        return next(self.feeds, None)


def quantize_int8(src: Path, dst: Path, calibration: list[dict[str, np.ndarray]]) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights) of an ONNX file's convolutions.

    Only ``Conv`` nodes are quantised: they hold nearly all weights and arithmetic, and
    onnxruntime's default list also quantises the shape arithmetic around AnyNet's cost
    volumes (the quantised stereo graph then fails at an ``Expand`` with "invalid expand
    shape") and its un-folded pre-activation batch norms.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    reader = type("Reader", (_CalibrationReader, CalibrationDataReader), {})(calibration)
    quantize_static(
        str(src),
        str(dst),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        op_types_to_quantize=["Conv"],
    )
    return dst


def _samples(batches: Iterable[dict], limit: Optional[int] = None) -> list[dict]:
    """Single-sample batches (every tensor and list of a batch sliced to one sample)."""
    out: list[dict] = []
    for batch in batches:
        size = len(next(v for v in batch.values() if isinstance(v, torch.Tensor)))
        for i in range(size):
            out.append({k: v[i : i + 1] for k, v in batch.items()})
            if limit is not None and len(out) >= limit:
                return out
    return out


def _session(path: Path):
    return onnx_session(path, ["CPUExecutionProvider"])


def _feeds(task: DepthTask, sample: dict) -> dict[str, np.ndarray]:
    """The network inputs of a sample as float32 numpy, keyed by the exported input names."""
    return {k: sample[k].float().cpu().numpy() for k in task.input_keys}


def evaluate_onnx(path: Path, samples: list[dict], task: DepthTask) -> dict[str, float]:
    """Validation metrics of an ONNX file's output (the task's final-output metrics, keys
    including every headline key)."""
    session = _session(path)

    def predict(batch: dict) -> torch.Tensor:
        return torch.from_numpy(np.asarray(session.run(None, _feeds(task, batch))[0]))

    return task.evaluate(samples, predict=predict)


def onnx_latency_ms(path: Path, feeds: dict[str, np.ndarray], runs: int = 20) -> float:
    """Median latency of one onnxruntime CPU run on ``feeds`` (after two warm-up runs)."""
    session = _session(path)
    for _ in range(2):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def torch_latency_ms(module: nn.Module, feeds: dict[str, np.ndarray], runs: int = 20) -> float:
    """Median latency of one eager PyTorch CPU forward on ``feeds`` (in call order, after
    two warm-up runs)."""
    inputs = [torch.from_numpy(v) for v in feeds.values()]
    with torch.no_grad():
        for _ in range(2):
            module(*inputs)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            module(*inputs)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def _file_sizes(path: Path) -> dict[str, int]:
    data = path.read_bytes()
    return {"file_bytes": len(data), "zlib_bytes": len(zlib.compress(data, 9))}


def _finetune(task: DepthTask, datamodule, steps: int) -> None:
    import lightning as L

    if steps <= 0:
        return
    task.train()
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, datamodule=datamodule)


def _markdown(report: dict) -> str:
    keys = report["metric_keys"]
    lines = [
        f"# Compression report: {report['task']} ({report['checkpoint']})",
        "",
        f"Input {report['input_shape']}, CPU latency: median of {report['latency_runs']} "
        f"onnxruntime runs (PyTorch eager fp32: {report['torch_latency_ms']:.2f} ms). "
        f"Pruned: {report['prune_amount']:.0%} of conv weights, {report['finetune_steps']} "
        "fine-tuning steps.",
        "",
        "| variant | parameters | non-zero | file (bytes) | zlib (bytes) | latency (ms) | "
        + " | ".join(keys)
        + " |",
        "|---" * (6 + len(keys)) + "|",
    ]
    for row in report["variants"]:
        values = " | ".join(f"{row['metrics'][k]:.4f}" for k in keys)
        lines.append(
            f"| {row['name']} | {row['parameters']:,} | {row['nonzero_parameters']:,} | "
            f"{row['file_bytes']:,} | {row['zlib_bytes']:,} | {row['latency_ms']:.2f} | "
            f"{values} |"
        )
    return "\n".join(lines) + "\n"


def compress(
    task: DepthTask,
    datamodule,
    out: Path,
    prune_amount: float = 0.5,
    finetune_steps: int = 50,
    calib_batches: int = 4,
    latency_runs: int = 20,
    max_val_samples: Optional[int] = None,
    checkpoint: str = "",
) -> dict:
    """Run the four variants (see the module docstring) and write ``report.{json,md}``."""
    out.mkdir(parents=True, exist_ok=True)
    datamodule.prepare_data()
    datamodule.setup("fit")
    val = _samples(datamodule.val_dataloader(), max_val_samples)
    if not val:
        raise ValueError("compress: the validation set is empty")
    calib = [_feeds(task, s) for s in _samples(datamodule.train_dataloader(), calib_batches)]
    # The ONNX files take any size (dynamic height and width): the first validation sample's
    # is the export example and the latency's resolution.
    feeds = _feeds(task, val[0])
    shape = next(iter(feeds.values())).shape
    height, width = shape[-2:]
    task = task.cpu().eval()
    metric_keys = [h.key for h in task.headlines]

    def variant(name: str, onnx_path: Path, source: DepthTask) -> dict:
        total, nonzero = count_parameters(source.export_module())
        return {
            "name": name,
            "file": str(onnx_path),
            "parameters": total,
            "nonzero_parameters": nonzero,
            **_file_sizes(onnx_path),
            "latency_ms": onnx_latency_ms(onnx_path, feeds, latency_runs),
            "metrics": evaluate_onnx(onnx_path, val, task),
        }

    rows = []
    fp32 = export_model(task, out / "fp32.onnx", "onnx", "fp32", height, width)
    rows.append(variant("fp32", fp32, task))
    torch_ms = torch_latency_ms(task.export_module(), feeds, latency_runs)
    int8 = quantize_int8(fp32, out / "int8.onnx", calib)
    rows.append(variant("int8", int8, task))

    pruned_task = copy.deepcopy(task)
    # The exported module shares the task's network, so this prunes the task's weights.
    convs = prune_conv_weights(pruned_task.export_module(), prune_amount)
    _finetune(pruned_task, datamodule, finetune_steps)
    make_pruning_permanent(convs)
    pruned_task = pruned_task.cpu().eval()
    pruned = export_model(pruned_task, out / "pruned.onnx", "onnx", "fp32", height, width)
    rows.append(variant("pruned", pruned, pruned_task))
    pruned_int8 = quantize_int8(pruned, out / "pruned_int8.onnx", calib)
    rows.append(variant("pruned_int8", pruned_int8, pruned_task))

    report = {
        "task": task.name,
        "checkpoint": checkpoint,
        "input_shape": list(shape),
        "latency_runs": latency_runs,
        "torch_latency_ms": torch_ms,
        "prune_amount": prune_amount,
        "finetune_steps": finetune_steps,
        "validation_samples": len(val),
        "metric_keys": metric_keys,
        "stage": task.num_stages,
        "variants": rows,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(_markdown(report))
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``lightning_depth compress``: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="lightning_depth compress",
        description="int8 quantisation and pruning of a checkpoint, with a report.",
        epilog="Other arguments (--data.init_args.X=...) go to LightningCLI with --config.",
    )
    parser.add_argument("--config", required=True, help="fit config that names the data")
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--out", default=None, help="default: <ckpt folder>/compress")
    parser.add_argument("--prune", type=float, default=0.5, help="fraction of conv weights")
    parser.add_argument("--finetune-steps", type=int, default=50)
    parser.add_argument("--calib-batches", type=int, default=4, help="calibration samples")
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--max-val-samples", type=int, default=None)
    args, rest = parser.parse_known_args(list(argv or []))

    task = load_task(args.ckpt_path)
    cli = build_cli(["--config", args.config, "--trainer.logger=false", *rest], run=False)
    out = Path(args.out) if args.out else Path(args.ckpt_path).parent / "compress"
    report = compress(
        task,
        cli.datamodule,
        out,
        prune_amount=args.prune,
        finetune_steps=args.finetune_steps,
        calib_batches=args.calib_batches,
        latency_runs=args.latency_runs,
        max_val_samples=args.max_val_samples,
        checkpoint=str(args.ckpt_path),
    )
    print((out / "report.md").read_text())
    print(json.dumps({"report": str(out / "report.json"), "variants": len(report["variants"])}))
    return 0
