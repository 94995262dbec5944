"""``lightning_depth ablate``: the command line over :func:`~lightning_depth.ablation.run.run_ablation`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from lightning_depth.ablation.config import check_seeds, load_ablation_config
from lightning_depth.ablation.report import markdown_table
from lightning_depth.ablation.run import run_ablation

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="train every variant once per seed (replaces the config's seeds); the table "
        "shows mean ± std and the report compares the variants seed by seed",
    )
    parser.add_argument("--wandb", action="store_true", help="log each variant to W&B in one group")
    parser.add_argument("--wandb-project", default=None)
    parser.add_argument("--wandb-group", default=None)
    return parser


def main(argv: Sequence[str]) -> int:
    """``lightning_depth ablate --config FILE [--out DIR] [--wandb] [--only NAME ...]
    [--seeds N ...] [--base CONFIG ...] [LightningCLI overrides]``."""
    parser = _parser()
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
    if args.seeds is not None:
        config.seeds = check_seeds(args.seeds, "--seeds")
    if args.wandb_project:
        config.wandb["project"] = args.wandb_project
    if args.wandb_group:
        config.wandb["group"] = args.wandb_group
    out = Path(args.out) if args.out else Path("outputs") / "ablation" / config.name
    results = run_ablation(config, out, overrides, wandb=args.wandb, only=args.only)
    print(markdown_table(results["table"]))
    print(f"report written to {out / 'report.md'} ({results['total_seconds']:.0f} s)")
    return 0
