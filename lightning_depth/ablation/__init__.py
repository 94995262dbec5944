"""``lightning_depth ablate``: train every variant of an ablation on the same data, split, seed
and budget, evaluate each on the test split, and write a report folder.

An ablation config (``configs/ablation/*.yaml``) names the LightningCLI configs every variant
shares (``base``: data, trainer budget, seed), extra LightningCLI arguments for all of them
(``args``), and the variants, each a model config and/or its own arguments::

    name: mono
    task: mono                        # optional: the task name every variant must build
    base:                             # paths relative to this file, or inline configs
      - ../demo/mono.yaml
      - {trainer: {max_epochs: 4}}
    args: [--trainer.callbacks=[]]
    columns: [structure, activation]  # variant fields shown in the table
    checkpoint: last                  # or best (needs a best checkpoint callback)
    seeds: [0, 1, 2]                  # optional: each variant once per seed (init, order, aug.)
    also_test:                        # optional: further test sets, e.g. a real pair
      - {name: Motorcycle, data: ../data/middlebury.yaml, init_args: {root: null}}
    variants:
      - name: 4-1-4 LeakyReLU
        structure: 4-1-4
        activation: LeakyReLU
        model: ../model/mono_414.yaml
        args: []

The report folder holds ``report.md`` (the paper's table), ``results.json`` (every number in
the table and more), PNG plots and one sub-folder per variant (and seed) with its CSV log and
checkpoints. With several seeds the table shows mean ± standard deviation, and the report
compares every variant with the first seed by seed (paired differences, how many seeds it
wins) and says whether the order of the variants is the same in every seed
(:mod:`.stats`).
The table, notes and plots come from the task contract (headlines, timed parts, loss curve
keys, picture roles), so any :class:`~lightning_depth.tasks.base.DepthTask` can be ablated.

Modules: :mod:`.config` (the file), :mod:`.run` (each variant's LightningCLI, fit and test),
:mod:`.measure` (per-sample metrics, pictures, timing), :mod:`.stats` (seeds combined,
comparisons), :mod:`.report` (table, Markdown, JSON), :mod:`.plots`, :mod:`.command`
(``main``).
"""

from lightning_depth.ablation.command import main
from lightning_depth.ablation.config import AblationConfig, Variant, load_ablation_config
from lightning_depth.ablation.report import table, write_report
from lightning_depth.ablation.run import logger_configs, read_loss_curves, run_ablation

__all__ = [
    "AblationConfig",
    "Variant",
    "load_ablation_config",
    "logger_configs",
    "main",
    "read_loss_curves",
    "run_ablation",
    "table",
    "write_report",
]
