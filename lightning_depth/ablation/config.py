"""The ablation config file: its schema (:class:`AblationConfig`, :class:`Variant`) and
:func:`load_ablation_config`, which checks every key and names the file in each error."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

__all__ = ["AblationConfig", "ExtraTest", "Variant", "load_ablation_config"]

#: keys an ablation config may hold.
KNOWN_KEYS = (
    "also_test",
    "args",
    "base",
    "checkpoint",
    "columns",
    "name",
    "report",
    "seeds",
    "task",
    "variants",
    "wandb",
)
EXTRA_TEST_KEYS = ("name", "data", "init_args")
CHECKPOINTS = ("last", "best")

#: ``resolve(value, what)``: a config path relative to the ablation config, made absolute.
Resolver = Callable[[str, str], str]


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
class ExtraTest:
    """A further test set every trained variant is tested on (e.g. a real benchmark pair).

    Args:
        name: short name; its metrics are reported as ``<name>/<key>`` and its table columns
            as ``<headline label>, <name>``.
        data: absolute path of a LightningCLI data config (``class_path`` and ``init_args``).
        init_args: overrides of that config's ``init_args`` (e.g. ``{root: null}``).
    """

    name: str
    data: str
    init_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class AblationConfig:
    """A parsed ablation config; see :mod:`lightning_depth.ablation` for the file format.

    Args:
        name: ablation name (report title, default output folder, W&B group prefix).
        task: the task name every variant must build (``DepthTask.name``, e.g. ``"mono"``),
            or ``None`` to accept whichever task the first variant builds.
        base: LightningCLI configs every variant shares: absolute paths, or inline configs as
            JSON strings.
        args: LightningCLI arguments every variant shares.
        variants: the rows.
        columns: variant ``info`` fields shown in the table, in order.
        checkpoint: weights the test split sees: ``"last"`` (end of the budget) or ``"best"``
            (the best validation epoch; the trainer needs a best checkpoint callback).
        samples: test samples in the qualitative grid and the per-sample bars.
        timing_repeats: forward passes timed per timed part (the median is reported).
        seeds: every variant is trained once per seed (``seed_everything`` and the data's
            ``shuffle_seed``: initialisation, training order and augmentation; the split stays
            the same) and the table shows mean +- standard deviation. Empty: one run with the
            base config's seeds.
        also_test: further test sets each trained variant is tested on.
        wandb: W&B settings (``enabled``, ``project``, ``group``, ``entity``, ``tags``).
        path: the file it was read from.
    """

    name: str
    task: Optional[str]
    base: list[str]
    args: list[str]
    variants: list[Variant]
    columns: list[str] = field(default_factory=list)
    checkpoint: str = "last"
    samples: int = 4
    timing_repeats: int = 5
    seeds: list[int] = field(default_factory=list)
    also_test: list[ExtraTest] = field(default_factory=list)
    wandb: dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None


def load_ablation_config(path: str | Path) -> AblationConfig:
    """Read and check an ablation config; relative config paths resolve against its folder.

    Raises:
        FileNotFoundError: the file, a base config or a model config is missing.
        ValueError: the file is not a mapping, or a key is missing or malformed (the message
            names the file and the key).
    """
    path = Path(path).resolve()
    raw = _read_mapping(path)
    resolve = _resolver(path)
    report = _mapping(raw, "report", path)
    return AblationConfig(
        name=str(raw.get("name", path.stem)),
        task=_task(raw, path),
        base=_base_list(raw.get("base"), path, resolve),
        args=_str_list(raw.get("args"), "args", path),
        variants=_variants(raw.get("variants"), path, resolve),
        columns=_str_list(raw.get("columns"), "columns", path),
        checkpoint=_checkpoint(raw, path),
        samples=_count(report, "samples", 4, path, minimum=0),
        timing_repeats=_count(report, "timing_repeats", 5, path, minimum=1),
        seeds=check_seeds(raw.get("seeds"), str(path)),
        also_test=_extra_tests(raw.get("also_test"), path, resolve),
        wandb=_mapping(raw, "wandb", path),
        path=path,
    )


# -- validators ---------------------------------------------------------------------------------
def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"ablation config not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: an ablation config must be a mapping with 'variants'")
    unknown = sorted(set(raw) - set(KNOWN_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; expected some of {sorted(KNOWN_KEYS)}")
    return raw


def _resolver(path: Path) -> Resolver:
    def resolve(value: str, what: str) -> str:
        p = Path(value)
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise FileNotFoundError(f"{path}: {what} {value!r} not found (looked at {p})")
        return str(p.resolve())

    return resolve


def _task(raw: dict[str, Any], path: Path) -> Optional[str]:
    # Which names exist is the tasks' business: the run checks the built model's name.
    task = raw.get("task")
    if task is not None and (not isinstance(task, str) or not task):
        raise ValueError(f"{path}: task must be a task name (e.g. mono), got {task!r}")
    return task


def _str_list(value: Any, what: str, path: Path) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise ValueError(f"{path}: {what} must be a list of strings, got {value!r}")
    return [str(v) for v in value]


def _base_list(value: Any, path: Path, resolve: Resolver) -> list[str]:
    # A base entry is a config file (relative to the ablation config) or an inline mapping,
    # which LightningCLI's --config takes as a string: a demo budget that --base drops.
    if value is None:
        return []
    out = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            out.append(json.dumps(item))
        elif isinstance(item, str):
            out.append(resolve(item, "base config"))
        else:
            raise ValueError(f"{path}: base entries must be config paths or mappings, got {item!r}")
    return out


def _variants(value: Any, path: Path, resolve: Resolver) -> list[Variant]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{path}: 'variants' must be a non-empty list of mappings")
    variants = [_variant(i, item, path, resolve) for i, item in enumerate(value)]
    slugs = [v.slug for v in variants]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"{path}: variant names must differ (as folder names): {slugs}")
    return variants


def _variant(index: int, item: Any, path: Path, resolve: Resolver) -> Variant:
    if not isinstance(item, dict) or "name" not in item:
        raise ValueError(f"{path}: variant {index} must be a mapping with a 'name', got {item!r}")
    item = dict(item)
    name = str(item.pop("name"))
    model = item.pop("model", None)
    args = _str_list(item.pop("args", None), f"variant {name!r} args", path)
    if model is None and not args:
        raise ValueError(f"{path}: variant {name!r} needs a 'model' config or 'args'")
    return Variant(
        name=name,
        model=resolve(str(model), f"variant {name!r} model") if model else None,
        args=args,
        info={k: str(v) for k, v in item.items()},
    )


def _checkpoint(raw: dict[str, Any], path: Path) -> str:
    checkpoint = raw.get("checkpoint", "last")
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"{path}: checkpoint must be 'last' or 'best', got {checkpoint!r}")
    return checkpoint


def _mapping(raw: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {key} must be a mapping, got {value!r}")
    return dict(value)


def _count(section: dict[str, Any], key: str, default: int, path: Path, minimum: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{path}: report.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def check_seeds(value: Any, where: str) -> list[int]:
    """``seeds`` as a list of distinct integers (``None``: no list).

    Raises:
        ValueError: not a list of distinct integers (the message starts with ``where``).
    """
    if value is None:
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, list)
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or len(set(value)) != len(value)
    ):
        raise ValueError(f"{where}: seeds must be a list of distinct integers, got {value!r}")
    return list(value)


def _extra_tests(value: Any, path: Path, resolve: Resolver) -> list[ExtraTest]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{path}: also_test must be a list of mappings with 'name' and 'data'")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or "name" not in item or "data" not in item:
            raise ValueError(
                f"{path}: also_test entry {i} must be a mapping with 'name' and 'data' "
                f"(a data config), got {item!r}"
            )
        unknown = sorted(set(item) - set(EXTRA_TEST_KEYS))
        if unknown:
            raise ValueError(
                f"{path}: also_test entry {i}: unknown keys {unknown}; expected some of "
                f"{list(EXTRA_TEST_KEYS)}"
            )
        init_args = item.get("init_args") or {}
        if not isinstance(init_args, dict):
            raise ValueError(f"{path}: also_test entry {i}: init_args must be a mapping")
        name = str(item["name"])
        if not name or "/" in name:
            raise ValueError(f"{path}: also_test entry {i}: name must be non-empty, without '/'")
        out.append(
            ExtraTest(name, resolve(str(item["data"]), f"also_test {name!r} data"), init_args)
        )
    if len({t.name for t in out}) != len(out):
        raise ValueError(f"{path}: also_test names must differ: {[t.name for t in out]}")
    return out
