"""Running an ablation: each variant's LightningCLI (configs, loggers, checks), its fit and
test, the measurements of :mod:`~lightning_depth.ablation.measure`, then the report."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from lightning_depth.ablation.config import AblationConfig, ExtraTest, Variant
from lightning_depth.ablation.measure import (
    describe_task,
    device_name,
    per_sample_pass,
    pictures,
    time_parts,
)
from lightning_depth.ablation.report import write_report
from lightning_depth.ablation.stats import combine_runs, prefixed_headlines
from lightning_depth.callbacks.checkpoints import BestCheckpoint
from lightning_depth.config import DepthCLI, build_cli

__all__ = [
    "build_extra_test",
    "build_variant",
    "cli_args",
    "logger_configs",
    "read_loss_curves",
    "run_ablation",
    "run_variant",
]

#: what makes ``checkpoint: best`` possible when a config replaces ``trainer.callbacks``.
BEST_CHECKPOINT_ARG = "--trainer.callbacks+=lightning_depth.callbacks.BestCheckpoint"


# -- one variant's LightningCLI -----------------------------------------------------------------
def logger_configs(
    variant: Variant,
    variant_dir: Path,
    wandb: Optional[dict[str, Any]] = None,
    seed: Optional[int] = None,
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
            "name": variant.name if seed is None else f"{variant.name} (seed {seed})",
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
    seed: Optional[int] = None,
) -> list[str]:
    """LightningCLI arguments of one variant, later ones winning: base configs, the variant's
    model, shared args, the variant's args, the user's overrides, then the ablation's own
    seed (when it runs several), output folder and loggers."""
    args: list[str] = []
    for base in config.base:
        args += ["--config", base]
    if variant.model:
        args += ["--model", variant.model]
    args += [*config.args, *variant.args, *overrides]
    if seed is not None:
        # The weights' initialisation and the training order and augmentation vary with the
        # seed; the split stays the data's own (data.init_args.seed), the same for every run.
        args += [f"--seed_everything={seed}", f"--data.init_args.shuffle_seed={seed}"]
    args += [
        f"--trainer.default_root_dir={variant_dir}",
        "--trainer.logger=" + json.dumps(logger_configs(variant, variant_dir, wandb, seed)),
    ]
    return args


def build_variant(
    config: AblationConfig,
    variant: Variant,
    variant_dir: Path,
    overrides: Sequence[str] = (),
    wandb: Optional[dict[str, Any]] = None,
    seed: Optional[int] = None,
) -> DepthCLI:
    """One variant's LightningCLI with its model, data and trainer built (not run).

    Raises:
        ValueError: the config names a ``task`` and the variant builds another, or
            ``checkpoint: best`` and the trainer keeps no best checkpoint.
    """
    cli = build_cli(cli_args(config, variant, variant_dir, overrides, wandb, seed), run=False)
    name = cli.model.name
    if config.task is not None and name != config.task:
        raise ValueError(
            f"{config.path}: task {config.task!r}, but variant {variant.name!r} builds a "
            f"{name!r} model ({type(cli.model).__name__})"
        )
    if config.checkpoint == "best" and not _keeps_best(cli.trainer.checkpoint_callback):
        raise ValueError(
            f"{config.path}: checkpoint: best, but variant {variant.name!r} keeps no best "
            f"checkpoint (its trainer.callbacks have none); add {BEST_CHECKPOINT_ARG} to args"
        )
    return cli


def _keeps_best(callback: Any) -> bool:
    # trainer.test(ckpt_path="best") reads the first checkpoint callback; Lightning's own
    # (added when none is configured) watches no metric, so its "best" is the last.
    return isinstance(callback, BestCheckpoint) or getattr(callback, "monitor", None) is not None


def build_extra_test(extra: ExtraTest) -> Any:
    """The DataModule of a further test set: its data config's ``class_path`` built with the
    config's ``init_args`` updated by the entry's.

    Raises:
        ValueError: the data config has no ``class_path`` (the message names the file).
    """
    from lightning.pytorch.cli import instantiate_class

    raw = yaml.safe_load(Path(extra.data).read_text())
    if not isinstance(raw, dict) or "class_path" not in raw:
        raise ValueError(
            f"{extra.data}: also_test {extra.name!r} needs a data config with a class_path"
        )
    init_args = {**(raw.get("init_args") or {}), **extra.init_args}
    return instantiate_class((), {"class_path": raw["class_path"], "init_args": init_args})


def _test_metrics(logged: dict[str, Any], prefix: str = "") -> dict[str, float]:
    return {
        prefix + k.split("/", 1)[1]: float(v) for k, v in logged.items() if k.startswith("test/")
    }


# -- fit, test, measure ---------------------------------------------------------------------------
def run_variant(
    config: AblationConfig,
    variant: Variant,
    out: Path,
    overrides: Sequence[str] = (),
    wandb: Optional[dict[str, Any]] = None,
    seed: Optional[int] = None,
) -> dict[str, Any]:
    """Fit one variant (with ``seed_everything=seed`` when given), test it on the test split
    and on each of ``config.also_test``, and return its results (numbers, curves, pictures).

    Returns:
        a dict with ``name``, ``info``, ``parameters`` (the task's ``parameter_count()``),
        ``test`` (epoch test metrics; those of a further test set as ``<name>/<key>``),
        ``per_sample`` (``names`` plus metric lists),
        ``inference_ms`` (``{timed part: ms}``), ``extra_headlines`` (the task's headlines on
        each further test set, see :func:`~lightning_depth.ablation.stats.prefixed_headlines`),
        ``fit_seconds``, ``curves`` (see
        :func:`read_loss_curves`), ``pictures`` (not JSON-serialisable; dropped by
        :func:`~lightning_depth.ablation.report.write_report`), ``log_dir``, ``setup``
        (seed, epochs, split sizes) and the task's description
        (:func:`~lightning_depth.ablation.measure.describe_task`).
    """
    variant_dir = out / "variants" / variant.slug
    if seed is not None:
        variant_dir = variant_dir / f"seed_{seed}"
    variant_dir.mkdir(parents=True, exist_ok=True)
    cli = build_variant(config, variant, variant_dir, overrides, wandb, seed)
    model, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    parameters = model.parameter_count()
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    fit_seconds = time.perf_counter() - start
    ckpt = "best" if config.checkpoint == "best" else None
    logged = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, verbose=False)[0]
    test = _test_metrics(logged)
    passed = per_sample_pass(model, datamodule.test_dataloader(), config.samples)
    first = next(iter(datamodule.test_dataloader()))
    inference_ms = time_parts(model, first, config.timing_repeats)
    description = describe_task(model)  # before a benchmark set adds its own headlines
    headlines_extra: list[dict[str, Any]] = []
    for extra in config.also_test:
        # The weights just tested (the best ones were loaded for checkpoint: best).
        logged = trainer.test(model, datamodule=build_extra_test(extra), verbose=False)[0]
        test.update(_test_metrics(logged, prefix=f"{extra.name}/"))
        headlines_extra += prefixed_headlines(describe_task(model)["headlines"], extra.name)
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
        "root": _data_folder(datamodule, cli.config["data"]["init_args"].get("root")),
        "device": device_name(model.device),
    }
    return {
        "name": variant.name,
        "info": dict(variant.info),
        "model_config": variant.model,
        **description,
        "extra_headlines": headlines_extra,
        "parameters": parameters,
        "test": test,
        "per_sample": {"names": passed["names"], **passed["values"]},
        "inference_ms": inference_ms,
        "fit_seconds": fit_seconds,
        "curves": read_loss_curves(Path(csv_logger.log_dir) / "metrics.csv"),
        "pictures": pictures(model, passed["batch"], passed["outputs"]),
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


# -- the whole ablation ---------------------------------------------------------------------------
def _wandb_settings(config: AblationConfig, enabled: bool) -> Optional[dict[str, Any]]:
    if not (enabled or config.wandb.get("enabled", False)):
        return None
    settings = dict(config.wandb)
    if not settings.get("group"):
        settings["group"] = f"ablation-{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return settings


def _selected(config: AblationConfig, only: Optional[Sequence[str]]) -> list[Variant]:
    variants = config.variants
    if not only:
        return variants
    unknown = sorted(set(only) - {v.name for v in variants})
    if unknown:
        raise ValueError(
            f"{config.path}: no variant named {unknown}; have {[v.name for v in variants]}"
        )
    return [v for v in variants if v.name in only]


def _check_comparable(results: list[dict[str, Any]]) -> None:
    # One task and the same test samples for every row: otherwise the table compares nothing.
    first = results[0]
    for result in results[1:]:
        if result["task"] != first["task"]:
            raise RuntimeError(
                f"variant {result['name']!r} builds a {result['task']!r} model but "
                f"{first['name']!r} a {first['task']!r} one; an ablation compares one task"
            )
        if result["per_sample"]["names"] != first["per_sample"]["names"]:
            raise RuntimeError(
                f"variant {result['name']!r} was tested on other samples than "
                f"{first['name']!r}; the base config must fix the data and split"
            )


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
    variants = _selected(config, only)
    settings = _wandb_settings(config, wandb)
    seeds: list[Optional[int]] = list(config.seeds) or [None]
    start = time.perf_counter()
    runs: list[list[dict[str, Any]]] = []
    for variant in variants:
        runs.append([])
        for seed in seeds:
            what = f"variant {variant.name!r}" + ("" if seed is None else f", seed {seed}")
            print(f"[ablate] {config.name}: {what}", flush=True)
            runs[-1].append(run_variant(config, variant, out, overrides, settings, seed))
    _check_comparable([run for variant_runs in runs for run in variant_runs])
    results = [combine_runs(variant_runs) for variant_runs in runs]
    # The task's headlines and note are the same for every variant: state them once.
    shared = {k: results[0][k] for k in ("headlines", "metrics_note", "extra_headlines")}
    for result in results:
        for key in shared:
            result.pop(key)
    shared["headlines"] = shared["headlines"] + shared.pop("extra_headlines")
    summary = {
        "name": config.name,
        "task": results[0]["task"],
        **shared,
        "config": str(config.path),
        "base": config.base,
        "overrides": list(overrides),
        "checkpoint": config.checkpoint,
        "seeds": list(config.seeds),
        "also_test": [
            {"name": e.name, "data": e.data, "init_args": e.init_args} for e in config.also_test
        ],
        "wandb_group": settings["group"] if settings else None,
        "total_seconds": time.perf_counter() - start,
        "setup": results[0]["setup"],
        "variants": results,
    }
    return write_report(summary, out, columns=config.columns)


def _data_folder(datamodule: Any, root: Any) -> str:
    """The folder the variant read: ``root``, or a generated set's cache folder."""
    try:
        return str(datamodule.data_root)
    except (AttributeError, ValueError):  # not a folder DataModule, or shards/archives
        return str(root)
