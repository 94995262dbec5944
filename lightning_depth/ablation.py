"""``lightning_depth ablate``: train every variant of an ablation on the same data, split, seed
and budget, evaluate each on the test split, and write a report folder.

An ablation config (``configs/ablation/*.yaml``) names the LightningCLI configs every variant
shares (``base``: data, trainer budget, seed), extra LightningCLI arguments for all of them
(``args``), and the variants, each a model config and/or its own arguments::

    name: mono
    task: mono                        # mono | stereo: which table and plots
    base:                             # paths relative to this file, or inline configs
      - ../demo/mono.yaml
      - {trainer: {max_epochs: 4}}
    args: [--trainer.callbacks=[]]
    columns: [structure, activation]  # variant fields shown in the table
    variants:
      - name: 4-1-4 LeakyReLU
        structure: 4-1-4
        activation: LeakyReLU
        model: ../model/mono_414.yaml
        args: []

The report folder holds ``report.md`` (the paper's table), ``results.json`` (every number in
the table and more), PNG plots and one sub-folder per variant with its CSV log and checkpoints.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import yaml

__all__ = [
    "AblationConfig",
    "Variant",
    "load_ablation_config",
    "logger_configs",
    "main",
    "parameter_count",
    "read_loss_curves",
    "run_ablation",
    "write_report",
]

TASKS = ("mono", "stereo")


@dataclass
class Variant:
    """One row of the ablation.

    Args:
        name: row label (also the W&B run name).
        model: absolute path of a model config (LightningCLI ``--model``), or ``None``.
        args: LightningCLI arguments for this variant only.
        info: further fields shown in the table (e.g. ``structure``, ``activation``).
    """

    name: str
    model: Optional[str] = None
    args: list[str] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """File-system friendly name (folder of the variant's logs and checkpoints)."""
        return re.sub(r"[^A-Za-z0-9]+", "_", self.name).strip("_").lower() or "variant"


@dataclass
class AblationConfig:
    """A parsed ablation config; see the module docstring for the file format.

    Args:
        name: ablation name (report title, default output folder, W&B group prefix).
        task: ``"mono"`` or ``"stereo"``.
        base: LightningCLI configs every variant shares: absolute paths, or inline configs as
            JSON strings.
        args: LightningCLI arguments every variant shares.
        variants: the rows.
        columns: variant ``info`` fields shown in the table, in order.
        checkpoint: weights the test split sees: ``"last"`` (end of the budget) or ``"best"``
            (the best validation epoch).
        samples: test samples in the qualitative grid and the per-sample bars.
        timing_repeats: forward passes timed per stage (the median is reported).
        wandb: W&B settings (``enabled``, ``project``, ``group``, ``entity``, ``tags``).
        path: the file it was read from.
    """

    name: str
    task: str
    base: list[str]
    args: list[str]
    variants: list[Variant]
    columns: list[str] = field(default_factory=list)
    checkpoint: str = "last"
    samples: int = 4
    timing_repeats: int = 5
    wandb: dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None


def _str_list(value: Any, what: str, path: Path) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise ValueError(f"{path}: {what} must be a list of strings, got {value!r}")
    return [str(v) for v in value]


def _base_list(value: Any, path: Path, resolve: Any) -> list[str]:
    # A base entry is a config file (relative to the ablation config) or an inline mapping,
    # which LightningCLI's --config takes as a string: a demo budget that --base drops.
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    out = []
    for item in value:
        if isinstance(item, dict):
            out.append(json.dumps(item))
        elif isinstance(item, str):
            out.append(resolve(item, "base config"))
        else:
            raise ValueError(f"{path}: base entries must be config paths or mappings, got {item!r}")
    return out


def load_ablation_config(path: str | Path) -> AblationConfig:
    """Read and check an ablation config; relative config paths resolve against its folder.

    Raises:
        FileNotFoundError: the file, a base config or a model config is missing.
        ValueError: the file is not a mapping, or a key is missing or malformed (the message
            names the file and the key).
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"ablation config not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: an ablation config must be a mapping with 'variants'")
    known = {"name", "task", "base", "args", "columns", "variants", "checkpoint", "report", "wandb"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; expected some of {sorted(known)}")

    def resolve(value: str, what: str) -> str:
        p = Path(value)
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise FileNotFoundError(f"{path}: {what} {value!r} not found (looked at {p})")
        return str(p.resolve())

    task = raw.get("task")
    if task not in TASKS:
        raise ValueError(f"{path}: task must be one of {TASKS}, got {task!r}")
    variants_raw = raw.get("variants")
    if not isinstance(variants_raw, list) or not variants_raw:
        raise ValueError(f"{path}: 'variants' must be a non-empty list of mappings")
    variants = []
    for i, item in enumerate(variants_raw):
        if not isinstance(item, dict) or "name" not in item:
            raise ValueError(f"{path}: variant {i} must be a mapping with a 'name', got {item!r}")
        item = dict(item)
        name = str(item.pop("name"))
        model = item.pop("model", None)
        args = _str_list(item.pop("args", None), f"variant {name!r} args", path)
        if model is None and not args:
            raise ValueError(f"{path}: variant {name!r} needs a 'model' config or 'args'")
        variants.append(
            Variant(
                name=name,
                model=resolve(str(model), f"variant {name!r} model") if model else None,
                args=args,
                info={k: str(v) for k, v in item.items()},
            )
        )
    slugs = [v.slug for v in variants]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"{path}: variant names must differ (as folder names): {slugs}")
    report = raw.get("report") or {}
    checkpoint = raw.get("checkpoint", "last")
    if checkpoint not in ("last", "best"):
        raise ValueError(f"{path}: checkpoint must be 'last' or 'best', got {checkpoint!r}")
    wandb = raw.get("wandb") or {}
    if not isinstance(wandb, dict):
        raise ValueError(f"{path}: wandb must be a mapping, got {wandb!r}")
    return AblationConfig(
        name=str(raw.get("name", path.stem)),
        task=task,
        base=_base_list(raw.get("base"), path, resolve),
        args=_str_list(raw.get("args"), "args", path),
        variants=variants,
        columns=_str_list(raw.get("columns"), "columns", path),
        checkpoint=checkpoint,
        samples=int(report.get("samples", 4)),
        timing_repeats=int(report.get("timing_repeats", 5)),
        wandb=dict(wandb),
        path=path,
    )


def logger_configs(
    variant: Variant, variant_dir: Path, wandb: Optional[dict[str, Any]] = None
) -> list[dict[str, Any]]:
    """LightningCLI ``trainer.logger`` entries of one variant: always a CSVLogger (the report
    reads its ``metrics.csv``), plus a WandbLogger in the ablation's group when ``wandb`` is
    given, so the W&B dashboard compares the variants of one ablation side by side."""
    loggers: list[dict[str, Any]] = [
        {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": str(variant_dir), "name": "csv", "version": 0},
        }
    ]
    if wandb is not None:
        init_args = {
            "project": wandb.get("project", "lightning_depth"),
            "group": wandb["group"],
            "name": variant.name,
            "job_type": "ablation",
            "save_dir": str(variant_dir),
            "tags": list(wandb.get("tags", [])),
            "log_model": False,
        }
        if wandb.get("entity"):
            init_args["entity"] = wandb["entity"]
        loggers.append(
            {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": init_args}
        )
    return loggers


def cli_args(
    config: AblationConfig,
    variant: Variant,
    variant_dir: Path,
    overrides: Sequence[str] = (),
    wandb: Optional[dict[str, Any]] = None,
) -> list[str]:
    """LightningCLI arguments of one variant, later ones winning: base configs, the variant's
    model, shared args, the variant's args, the user's overrides, then the ablation's own
    output folder and loggers."""
    args: list[str] = []
    for base in config.base:
        args += ["--config", base]
    if variant.model:
        args += ["--model", variant.model]
    args += [*config.args, *variant.args, *overrides]
    args += [
        f"--trainer.default_root_dir={variant_dir}",
        "--trainer.logger=" + json.dumps(logger_configs(variant, variant_dir, wandb)),
    ]
    return args


# -- one variant ------------------------------------------------------------------------------
def parameter_count(task: str, module: torch.nn.Module) -> int:
    """The table's parameter count of a network.

    Args:
        task: ``"mono"`` or ``"stereo"``.
        module: the network (e.g. ``model.net``).

    Returns:
        mono: weights plus batch-norm running statistics (1,966,465 for 4-1-4); stereo:
        weights only (43,269 for AnyNet with an 8-channel SPN).
    """
    # The paper counts the autoencoders as Keras does (weights plus BN running statistics) and
    # AnyNet as PyTorch does (weights only).
    if task == "mono":
        from lightning_depth.models.autoencoder import count_parameters

        return count_parameters(module)
    return sum(p.numel() for p in module.parameters())


def _slice(batch: dict, i: int) -> dict:
    return {
        k: (v[i : i + 1].detach().cpu() if isinstance(v, torch.Tensor) else [v[i]])
        for k, v in batch.items()
    }


def _cat(items: list[dict]) -> dict:
    out = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.cat(values)
        else:
            out[key] = [v for part in values for v in part]
    return out


def _cpu(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.detach().cpu()
    return [o.detach().cpu() for o in outputs]


@torch.inference_mode()
def _time_stages(model: Any, task: str, batch: dict, repeats: int) -> list[float]:
    """Median milliseconds of one forward pass of one sample (in eval mode) up to each stage
    (stereo: stage k includes stages 1..k, as AnyNet's anytime outputs are timed)."""
    one = {k: v[:1].to(model.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    if task == "mono":
        calls = [lambda: model(one["image"])]
    else:
        calls = [
            (lambda k=k: model(one["left"], one["right"], stages=k))
            for k in range(1, model.num_stages + 1)
        ]

    def sync() -> None:
        # CUDA runs asynchronously: wait for the kernels before reading the clock
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)

    was_training = model.training
    model.eval()
    times = []
    try:
        for _ in range(2):
            calls[-1]()  # warm-up: allocations, oneDNN / cuDNN kernel choice
        for call in calls:
            samples = []
            for _ in range(max(1, repeats)):
                sync()
                start = time.perf_counter()
                call()
                sync()
                samples.append((time.perf_counter() - start) * 1000.0)
            times.append(statistics.median(samples))
    finally:
        model.train(was_training)
    return times


def _per_sample(model: Any, task: str, batch: dict, outputs: Any) -> dict[str, torch.Tensor]:
    values = {
        k: v.detach().float().cpu() for k, v in model.per_sample_metrics(batch, outputs).items()
    }
    if task == "stereo":
        # the table's figures are the last stage's
        values["3px"] = values[f"3px_stage{len(outputs)}"]
        values["epe"] = values[f"epe_stage{len(outputs)}"]
    return values


@torch.no_grad()
def _test_pass(model: Any, task: str, loader: Any, samples: int) -> dict[str, Any]:
    """Per-sample metrics over the whole test split, and the first ``samples`` test samples
    with their predictions (for the pictures)."""
    was_training = model.training
    model.eval()
    names: list[str] = []
    per_sample: dict[str, list[torch.Tensor]] = {}
    kept: list[dict] = []
    kept_outputs: list[Any] = []
    try:
        for batch in loader:
            batch = model.transfer_batch_to_device(batch, model.device, 0)
            outputs = model.predict_outputs(batch)
            for key, values in _per_sample(model, task, batch, outputs).items():
                per_sample.setdefault(key, []).append(values)
            size = len(next(v for v in batch.values() if isinstance(v, torch.Tensor)))
            batch_names = batch.get("name") or [str(len(names) + i) for i in range(size)]
            names += list(batch_names)
            for i in range(size):
                if len(kept) < samples:
                    kept.append(_slice(batch, i))
                    if task == "mono":
                        kept_outputs.append(_cpu(outputs[i : i + 1]))
                    else:
                        kept_outputs.append([_cpu(o[i : i + 1]) for o in outputs])
    finally:
        model.train(was_training)
    values = {k: torch.cat(v).tolist() for k, v in per_sample.items()}
    first = _cat(kept) if kept else {}
    if task == "mono":
        outputs = torch.cat(kept_outputs) if kept_outputs else None
    else:
        outputs = [torch.cat(stage) for stage in zip(*kept_outputs)] if kept_outputs else None
    return {"names": names, "values": values, "batch": first, "outputs": outputs}


def _pictures(model: Any, batch: dict, outputs: Any) -> list[dict[str, np.ndarray]]:
    """Per kept sample: the model's ``visualize`` pictures, on the CPU."""
    if not batch:
        return []
    count = len(batch["name"])
    return [model.visualize(batch, outputs, index=i) for i in range(count)]


def run_variant(
    config: AblationConfig,
    variant: Variant,
    out: Path,
    overrides: Sequence[str] = (),
    wandb: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Fit one variant, test it, and return its results (numbers, curves, pictures).

    Returns:
        a dict with ``name``, ``info``, ``parameters``, ``test`` (epoch test metrics),
        ``per_sample`` (``names`` plus metric lists), ``inference_ms`` (per stage),
        ``fit_seconds``, ``curves`` (see :func:`read_loss_curves`), ``pictures`` (not
        JSON-serialisable; dropped by :func:`write_report`), ``log_dir`` and ``setup``
        (seed, epochs, split sizes).
    """
    from lightning_depth.cli import build_cli

    variant_dir = out / "variants" / variant.slug
    variant_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # sys.argv holds the ablate command's own arguments, which LightningCLI warns about
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = build_cli(cli_args(config, variant, variant_dir, overrides, wandb), run=False)
    model, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    expected = "MonoDepthModule" if config.task == "mono" else "StereoDepthModule"
    if type(model).__name__ != expected:
        raise ValueError(
            f"{config.path}: task {config.task!r} needs a {expected}, but variant "
            f"{variant.name!r} builds a {type(model).__name__}"
        )
    parameters = parameter_count(config.task, model.net)
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    fit_seconds = time.perf_counter() - start
    ckpt = "best" if config.checkpoint == "best" else None
    logged = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, verbose=False)[0]
    test = {k.split("/", 1)[1]: float(v) for k, v in logged.items() if k.startswith("test/")}
    loader = datamodule.test_dataloader()
    passed = _test_pass(model, config.task, loader, config.samples)
    first = next(iter(datamodule.test_dataloader()))
    inference_ms = _time_stages(model, config.task, first, config.timing_repeats)
    csv_logger = trainer.loggers[0]
    for logger in trainer.loggers[1:]:
        _finish_wandb(logger, {"num_parameters": parameters, "fit_seconds": fit_seconds})
    setup = {
        "seed": cli.config.get("seed_everything"),
        "max_epochs": trainer.max_epochs,
        "epochs_run": trainer.current_epoch,
        "train_samples": len(datamodule.train_dataloader().dataset),
        "val_samples": len(datamodule.val_dataloader().dataset),
        "test_samples": len(passed["names"]),
        "data": cli.config["data"]["class_path"],
        "root": str(cli.config["data"]["init_args"].get("root")),
        "device": _device_name(model.device),
    }
    return {
        "name": variant.name,
        "info": dict(variant.info),
        "model_config": variant.model,
        "parameters": parameters,
        "test": test,
        "per_sample": {"names": passed["names"], **passed["values"]},
        "inference_ms": inference_ms,
        "fit_seconds": fit_seconds,
        "curves": read_loss_curves(Path(csv_logger.log_dir) / "metrics.csv"),
        "pictures": _pictures(model, passed["batch"], passed["outputs"]),
        "log_dir": str(csv_logger.log_dir),
        "setup": setup,
    }


def _finish_wandb(logger: Any, summary: dict[str, Any]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger):
        logger.experiment.summary.update(summary)
        # One W&B run per variant: close this one before the next variant opens its own.
        logger.experiment.finish()


def read_loss_curves(path: str | Path) -> dict[str, dict[str, list[float]]]:
    """Per-epoch losses from a CSVLogger ``metrics.csv``.

    Returns:
        ``{key: {"epoch": [...], "value": [...]}}`` for every ``train/loss*`` epoch value (the
        ``_epoch`` suffix dropped) and every ``val/loss*`` value, e.g. ``train/loss``,
        ``val/loss_stage3``; rows without the key are skipped.

    Raises:
        FileNotFoundError: ``path`` is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV log not found: {path}")
    curves: dict[str, dict[str, list[float]]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            for key, text in row.items():
                if not text or key is None:
                    continue
                if key.startswith("train/loss") and key.endswith("_epoch"):
                    name = key[: -len("_epoch")]
                elif key.startswith("val/loss"):
                    name = key
                else:
                    continue
                curve = curves.setdefault(name, {"epoch": [], "value": []})
                curve["epoch"].append(int(float(row["epoch"])))
                curve["value"].append(float(text))
    return curves


def _wandb_settings(config: AblationConfig, enabled: bool) -> Optional[dict[str, Any]]:
    if not (enabled or config.wandb.get("enabled", False)):
        return None
    settings = dict(config.wandb)
    if not settings.get("group"):
        settings["group"] = f"ablation-{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return settings


def run_ablation(
    config: AblationConfig,
    out: str | Path,
    overrides: Sequence[str] = (),
    wandb: bool = False,
    only: Optional[Sequence[str]] = None,
) -> dict[str, Any]:
    """Train and test every variant, then write the report folder.

    Args:
        config: the ablation.
        out: report folder (created).
        overrides: LightningCLI arguments applied to every variant after the config's.
        wandb: log every variant as a W&B run in one group (also ``wandb.enabled`` in the
            config).
        only: names of the variants to run (default all).

    Returns:
        the results as written to ``results.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    variants = config.variants
    if only:
        unknown = sorted(set(only) - {v.name for v in variants})
        if unknown:
            raise ValueError(
                f"{config.path}: no variant named {unknown}; have {[v.name for v in variants]}"
            )
        variants = [v for v in variants if v.name in only]
    settings = _wandb_settings(config, wandb)
    start = time.perf_counter()
    results = []
    for variant in variants:
        print(f"[ablate] {config.name}: variant {variant.name!r}", flush=True)
        results.append(run_variant(config, variant, out, overrides, settings))
    # Same data, split and seed for every row: a difference here would make the table unfair.
    reference = results[0]["per_sample"]["names"]
    for result in results[1:]:
        if result["per_sample"]["names"] != reference:
            raise RuntimeError(
                f"variant {result['name']!r} was tested on other samples than "
                f"{results[0]['name']!r}; the base config must fix the data and split"
            )
    summary = {
        "name": config.name,
        "task": config.task,
        "config": str(config.path),
        "base": config.base,
        "overrides": list(overrides),
        "checkpoint": config.checkpoint,
        "wandb_group": settings["group"] if settings else None,
        "total_seconds": time.perf_counter() - start,
        "setup": results[0]["setup"],
        "variants": results,
    }
    return write_report(summary, out, columns=config.columns)


# -- report --------------------------------------------------------------------------------------
def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _fmt(x: Optional[float], digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def table(results: dict[str, Any], columns: Sequence[str] = ()) -> dict[str, list]:
    """The report's table as ``{"header": [...], "rows": [[str, ...], ...]}``.

    Mono: variant, the ``columns`` fields, parameters, test SSIM, AbsRel, delta<1.25,
    inference ms. Stereo: variant, the ``columns`` fields, parameters, 3-pixel error (%),
    EPE (px), then inference ms up to each stage.
    """
    variants = results["variants"]
    header = ["Variant", *[c.replace("_", " ").capitalize() for c in columns], "Parameters"]
    if results["task"] == "mono":
        header += ["Test SSIM", "AbsRel", "δ<1.25", "Inference (ms)"]
    else:
        stages = max(len(v["inference_ms"]) for v in variants)
        header += ["3-px error (%)", "EPE (px)"]
        header += [f"Stage {k} (ms)" for k in range(1, stages + 1)]
    rows = []
    for v in variants:
        row = [v["name"], *[v["info"].get(c, "") for c in columns], _fmt_int(v["parameters"])]
        test = v["test"]
        if results["task"] == "mono":
            row += [
                _fmt(test.get("ssim")),
                _fmt(test.get("abs_rel")),
                _fmt(test.get("delta1")),
                _fmt(v["inference_ms"][0], 2),
            ]
        else:
            three = test.get("3px")
            row += [_fmt(None if three is None else 100.0 * three, 2), _fmt(test.get("epe"), 3)]
            times = [_fmt(t, 2) for t in v["inference_ms"]]
            row += times + ["–"] * (stages - len(times))
        rows.append(row)
    return {"header": header, "rows": rows}


def _markdown_table(tab: dict[str, list]) -> str:
    lines = ["| " + " | ".join(tab["header"]) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(tab["header"]) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in tab["rows"]]
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_losses(results: dict[str, Any], path: Path) -> Path:
    """Training and validation loss per epoch, one line per variant; for stereo one row per
    stage (``loss_stage{k}``) under the total."""
    plt = _pyplot()
    variants = results["variants"]
    keys = ["loss"]
    if results["task"] == "stereo":
        stages = max(len(v["inference_ms"]) for v in variants)
        keys += [f"loss_stage{k}" for k in range(1, stages + 1)]
    fig, axes = plt.subplots(
        len(keys), 2, figsize=(10, 2.6 * len(keys)), squeeze=False, sharex=True
    )
    for r, key in enumerate(keys):
        for c, split in enumerate(("train", "val")):
            ax = axes[r][c]
            for i, v in enumerate(variants):
                curve = v["curves"].get(f"{split}/{key}")
                if curve:
                    # fixed colour per variant: AnyNet without SPN has no stage 4 line
                    ax.plot(
                        curve["epoch"],
                        curve["value"],
                        marker="o",
                        ms=3,
                        color=f"C{i}",
                        label=v["name"],
                    )
            ax.set_title(f"{split} {key.replace('_', ' ')}", fontsize=10)
            ax.set_ylabel("loss")
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    handles = [plt.Line2D([], [], color=f"C{i}", marker="o") for i in range(len(variants))]
    axes[0][0].legend(handles, [v["name"] for v in variants], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_box(results: dict[str, Any], key: str, label: str, path: Path, scale: float = 1.0) -> Path:
    """Box plot of a per-sample test metric, one box per variant (NaN samples dropped)."""
    plt = _pyplot()
    variants = results["variants"]
    data = [
        [scale * x for x in v["per_sample"][key] if not math.isnan(x)] or [math.nan]
        for v in variants
    ]
    fig, ax = plt.subplots(figsize=(1.6 * len(variants) + 2, 4))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(variants) + 1), [v["name"] for v in variants], rotation=15)
    ax.set_ylabel(label)
    ax.set_title(f"per-sample {label} on the test split")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_sample_bars(
    results: dict[str, Any], key: str, label: str, count: int, path: Path, scale: float = 1.0
) -> Path:
    """Grouped bars of a per-sample test metric for the first ``count`` test samples."""
    plt = _pyplot()
    variants = results["variants"]
    names = variants[0]["per_sample"]["names"][:count]
    width = 0.8 / len(variants)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(names) + 2), 4))
    for i, v in enumerate(variants):
        values = [scale * val for val in v["per_sample"][key][: len(names)]]
        ax.bar(x + (i - (len(variants) - 1) / 2) * width, values, width, label=v["name"])
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set_ylabel(label)
    ax.set_title(f"{label} of the first {len(names)} test samples")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_qualitative(results: dict[str, Any], path: Path) -> Optional[Path]:
    """One row per kept test sample: input, target, then each variant's (last-stage)
    prediction, all on the target's colour scale."""
    variants = results["variants"]
    if not variants[0].get("pictures"):
        return None
    plt = _pyplot()
    if results["task"] == "mono":
        inputs, target = ["input"], "target"
    else:
        inputs, target = ["left"], "ground_truth"
    rows = len(variants[0]["pictures"])
    titles = [*inputs, target, *[v["name"] for v in variants]]
    height, width = variants[0]["pictures"][0][target].shape[:2]
    fig, axes = plt.subplots(
        rows,
        len(titles),
        figsize=(2.4 * len(titles), 2.4 * rows * height / width + 0.4),
        squeeze=False,
    )
    for r in range(rows):
        reference = variants[0]["pictures"][r]
        images = [reference[k] for k in inputs] + [reference[target]]
        for v in variants:
            picture = v["pictures"][r]
            if results["task"] == "mono":
                images.append(picture["prediction"])
            else:
                last = max(int(k[5:]) for k in picture if k.startswith("stage"))
                images.append(picture[f"stage{last}"])
        for c, image in enumerate(images):
            ax = axes[r][c]
            ax.imshow(image)
            ax.set_axis_off()
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(
    results: dict[str, Any], out: str | Path, columns: Sequence[str] = ()
) -> dict[str, Any]:
    """Write ``report.md``, ``results.json`` and the PNG plots of an ablation to ``out``.

    Args:
        results: as assembled by :func:`run_ablation` (variants may carry ``pictures``, which
            go into the qualitative grid and not into the JSON).
        out: report folder.
        columns: variant ``info`` fields shown in the table.

    Returns:
        the JSON-serialisable results, with ``table`` and ``plots`` added.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mono = results["task"] == "mono"
    plots = {"losses": plot_losses(results, out / "losses.png").name}
    if mono:
        plots["ssim_box"] = plot_box(results, "ssim", "SSIM", out / "ssim_box.png").name
        plots["ssim_samples"] = plot_sample_bars(
            results, "ssim", "SSIM", 8, out / "ssim_samples.png"
        ).name
    else:
        plots["3px_box"] = plot_box(
            results, "3px", "3-px error (%)", out / "3px_box.png", scale=100.0
        ).name
        plots["3px_samples"] = plot_sample_bars(
            results, "3px", "3-px error (%)", 8, out / "3px_samples.png", scale=100.0
        ).name
    qualitative = plot_qualitative(results, out / "qualitative.png")
    if qualitative is not None:
        plots["qualitative"] = qualitative.name

    clean = {k: v for k, v in results.items() if k != "variants"}
    clean["variants"] = [
        {k: v for k, v in r.items() if k != "pictures"} for r in results["variants"]
    ]
    clean["table"] = table(clean, columns)
    clean["columns"] = list(columns)
    clean["plots"] = plots
    (out / "results.json").write_text(json.dumps(clean, indent=2, allow_nan=True) + "\n")
    (out / "report.md").write_text(_markdown(clean))
    return clean


def _markdown(results: dict[str, Any]) -> str:
    setup = results.get("setup", {})
    mono = results["task"] == "mono"
    lines = [f"# Ablation: {results['name']}", ""]
    if setup:
        lines += [
            f"Data: `{setup.get('data')}` at `{setup.get('root')}`; "
            f"{setup.get('train_samples')} training, {setup.get('val_samples')} validation and "
            f"{setup.get('test_samples')} test samples; seed {setup.get('seed')}; "
            f"{setup.get('max_epochs')} epoch(s); tested with the "
            f"{results.get('checkpoint', 'last')} weights.",
            "",
        ]
    lines += [_markdown_table(results["table"]), ""]
    if mono:
        lines += [
            "Parameters count the batch-norm running statistics (Keras' total). SSIM is "
            "computed on log-depth; AbsRel and δ<1.25 on metric depth over valid pixels. "
            "Inference: median time of one sample's forward pass on "
            f"{_device_note(results)}.",
        ]
    else:
        lines += [
            "3-px error: share of valid pixels off by more than 3 px and 5 % (KITTI D1), mean "
            "over test samples, last stage. Stage k (ms): median time of one sample's forward "
            f"pass up to stage k on {_device_note(results)}.",
        ]
    lines += ["", "| Variant | Fit time (s) |", "|---|---:|"]
    lines += [f"| {v['name']} | {v['fit_seconds']:.1f} |" for v in results["variants"]]
    if results.get("wandb_group"):
        lines += ["", f"W&B group: `{results['wandb_group']}`"]
    lines += ["", "## Plots", ""]
    captions = {
        "losses": "Training and validation loss per epoch"
        + ("" if mono else " (total and per stage)"),
        "ssim_box": "Per-sample test SSIM",
        "ssim_samples": "Test SSIM of the first samples",
        "3px_box": "Per-sample test 3-pixel error",
        "3px_samples": "Test 3-pixel error of the first samples",
        "qualitative": "Test samples: input, target and each variant's prediction",
    }
    for key, name in results["plots"].items():
        lines += [f"![{captions.get(key, key)}]({name})", ""]
    return "\n".join(lines)


def _device_note(results: dict[str, Any]) -> str:
    return results.get("setup", {}).get("device", "the training device")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads)"


# -- command line -------------------------------------------------------------------------------
def main(argv: Sequence[str]) -> int:
    """``lightning_depth ablate --config FILE [--out DIR] [--wandb] [--only NAME ...]
    [--base CONFIG ...] [LightningCLI overrides]``."""
    parser = argparse.ArgumentParser(
        prog="lightning_depth ablate",
        description=(
            "Train every variant of an ablation on the same data, split, seed and budget, test "
            "them and write report.md, results.json and plots. Further arguments "
            "(e.g. --data.init_args.root=data/diode --trainer.max_epochs=30) go to every "
            "variant's LightningCLI."
        ),
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config", required=True, help="ablation config, e.g. configs/ablation/mono.yaml"
    )
    parser.add_argument(
        "--out", default=None, help="report folder (default outputs/ablation/<name>)"
    )
    parser.add_argument(
        "--base",
        nargs="+",
        default=None,
        help="LightningCLI configs replacing the ablation's base (e.g. configs/mono/diode_414.yaml)",
    )
    parser.add_argument("--only", nargs="+", default=None, help="names of the variants to run")
    parser.add_argument("--wandb", action="store_true", help="log each variant to W&B in one group")
    parser.add_argument("--wandb-project", default=None)
    parser.add_argument("--wandb-group", default=None)
    args, overrides = parser.parse_known_args(list(argv))
    if overrides and not overrides[0].startswith("--"):
        parser.error(
            f"unexpected argument {overrides[0]!r}; overrides look like --trainer.max_epochs=3"
        )
    config = load_ablation_config(args.config)
    if args.base is not None:
        missing = [b for b in args.base if not Path(b).is_file()]
        if missing:
            parser.error(f"--base configs not found: {missing}")
        config.base = [str(Path(b).resolve()) for b in args.base]
    if args.wandb_project:
        config.wandb["project"] = args.wandb_project
    if args.wandb_group:
        config.wandb["group"] = args.wandb_group
    out = Path(args.out) if args.out else Path("outputs") / "ablation" / config.name
    results = run_ablation(config, out, overrides, wandb=args.wandb, only=args.only)
    print(_markdown_table(results["table"]))
    print(f"report written to {out / 'report.md'} ({results['total_seconds']:.0f} s)")
    return 0
