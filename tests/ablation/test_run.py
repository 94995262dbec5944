"""Each variant's LightningCLI (model, shared data, overrides, loggers, checks), the command
line, and loss curves from CSV logs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from lightning_depth.ablation import load_ablation_config, logger_configs, read_loss_curves
from lightning_depth.ablation.run import BEST_CHECKPOINT_ARG, build_variant
from lightning_depth.callbacks import BestCheckpoint
from lightning_depth.cli import main
from tests.ablation.checks import CONFIGS, MONO, MONO_COUNTS, STEREO, STEREO_COUNTS


def test_variant_cli_gets_its_model_the_shared_data_and_the_user_overrides(tmp_path: Path) -> None:
    config = load_ablation_config(MONO)
    variant = config.variants[2]
    cli = build_variant(config, variant, tmp_path, overrides=["--trainer.max_epochs=3"])
    assert type(cli.model.net.down[0].act).__name__ == "SiLU"  # the variant's Swish
    assert cli.model.net.depth == 3
    # the base's data, the user's budget, the ablation's logger and no demo callbacks
    data = cli.config["data"]["init_args"]
    assert data["root"] is None and data["synth_samples"] == 240  # the generated demo set
    assert cli.trainer.max_epochs == 3  # over the ablation's demo budget
    assert [type(lg) for lg in cli.trainer.loggers] == [CSVLogger]
    assert Path(cli.trainer.loggers[0].log_dir) == tmp_path / "csv" / "version_0"
    assert not any(type(c).__name__ == "LearningReport" for c in cli.trainer.callbacks)


def test_real_data_base_gives_the_papers_setup_with_the_variants_model(tmp_path: Path) -> None:
    # what `--base configs/mono/diode_414.yaml` does: the experiment's data and budget
    config = load_ablation_config(MONO)
    config.base = [str(CONFIGS / "mono" / "diode_414.yaml")]
    cli = build_variant(config, config.variants[1], tmp_path)
    data = cli.config["data"]["init_args"]
    assert data["root"] == "data/diode" and list(data["size"]) == [256, 256]
    assert cli.trainer.max_epochs == 30
    assert cli.model.net.depth == 3  # the variant's model, not the base's 4-1-4


STEREO_THINGS = CONFIGS / "ablation" / "stereo_things.yaml"
MONO_PHOTO = CONFIGS / "ablation" / "mono_photo.yaml"


@pytest.mark.parametrize(
    ("path", "counts"),
    [
        (MONO, MONO_COUNTS),
        (STEREO, STEREO_COUNTS),
        (MONO_PHOTO, MONO_COUNTS),
        (STEREO_THINGS, STEREO_COUNTS),
    ],
)
def test_shipped_variants_have_the_paper_parameter_counts(
    tmp_path: Path, path: Path, counts: list[int]
) -> None:
    config = load_ablation_config(path)
    built = [build_variant(config, v, tmp_path / v.slug).model for v in config.variants]
    assert [m.parameter_count() for m in built] == counts


def test_variant_of_another_task_is_refused(tmp_path: Path) -> None:
    config = load_ablation_config(MONO)
    config.task = "stereo"
    with pytest.raises(ValueError) as info:
        build_variant(config, config.variants[0], tmp_path)
    message = str(info.value)
    for part in (str(MONO), "'4-1-4 LeakyReLU'", "'stereo'", "'mono'"):
        assert part in message


def test_best_checkpoint_needs_a_best_checkpoint_callback(tmp_path: Path) -> None:
    config = load_ablation_config(MONO)  # its args reset trainer.callbacks
    config.checkpoint = "best"
    with pytest.raises(ValueError, match="keeps no best checkpoint") as info:
        build_variant(config, config.variants[1], tmp_path)
    assert str(MONO) in str(info.value) and BEST_CHECKPOINT_ARG in str(info.value)
    config.args.append(BEST_CHECKPOINT_ARG)
    cli = build_variant(config, config.variants[1], tmp_path)
    assert isinstance(cli.trainer.checkpoint_callback, BestCheckpoint)
    config.args = []  # the default callbacks keep a best checkpoint of their own
    cli = build_variant(config, config.variants[1], tmp_path)
    assert isinstance(cli.trainer.checkpoint_callback, BestCheckpoint)


def test_wandb_puts_every_variant_in_one_group(tmp_path: Path) -> None:
    config = load_ablation_config(STEREO)
    settings = {"project": "p", "group": "ablation-stereo-x", "tags": ["t"]}
    runs = []
    for variant in config.variants[:2]:
        loggers = logger_configs(variant, tmp_path / variant.slug, settings)
        assert loggers[0]["class_path"].endswith("CSVLogger")
        cli = build_variant(config, variant, tmp_path / variant.slug, wandb=settings)
        wandb = cli.trainer.loggers[1]
        assert isinstance(wandb, WandbLogger)
        runs.append(wandb._wandb_init)
    assert [r["group"] for r in runs] == ["ablation-stereo-x"] * 2
    assert [r["name"] for r in runs] == ["AnyNet", "AnyNet SPN-1"]
    assert runs[0]["project"] == "p"


def test_stray_positional_argument_is_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["ablate", "--config", str(MONO), "oops"])
    assert "unexpected argument 'oops'" in capsys.readouterr().err


def test_read_loss_curves_takes_epoch_values(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    rows = [
        {"epoch": "0", "step": "1", "train/loss_step": "9.0"},
        {"epoch": "0", "step": "3", "val/loss": "5.0", "val/loss_stage1": "2.0"},
        {"epoch": "0", "step": "3", "train/loss_epoch": "7.0"},
        {"epoch": "1", "step": "7", "val/loss": "4.0", "val/loss_stage1": "1.5"},
        {"epoch": "1", "step": "7", "train/loss_epoch": "6.0", "val/ssim": "0.5"},
    ]
    keys = ["epoch", "step", "train/loss_step", "train/loss_epoch", "val/loss", "val/loss_stage1"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys + ["val/ssim"])
        writer.writeheader()
        writer.writerows(rows)
    curves = read_loss_curves(path)
    assert set(curves) == {"train/loss", "val/loss", "val/loss_stage1"}
    assert curves["train/loss"] == {"epoch": [0, 1], "value": [7.0, 6.0]}
    assert curves["val/loss_stage1"] == {"epoch": [0, 1], "value": [2.0, 1.5]}
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        read_loss_curves(tmp_path / "nothing.csv")


def test_seeded_stereo_ablation_fine_tunes_the_shipped_stages(tmp_path: Path) -> None:
    config = load_ablation_config(STEREO_THINGS)
    variant = config.variants[1]  # SPN-1
    cli = build_variant(config, variant, tmp_path, seed=7)
    assert cli.config["seed_everything"] == 7  # the ablation's seed over the recipe's 42
    assert cli.datamodule.shuffle_seed == 7 and cli.datamodule.seed == 42  # same split
    (init,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "InitWeights"]
    assert (init.source, init.exclude) == ("anynet_spn8", ["net.spn.*"])
    data = cli.config["data"]["init_args"]
    assert (data["synth_seed"], data["synth_scenes"], list(data["size"])) == (1, 400, [128, 256])
    assert data["augment"] is True  # the recipe's training, kept
    assert cli.trainer.max_epochs == 8
    assert cli.model.net.spn_channels == 1
    optimizer = cli.model.configure_optimizers()
    assert optimizer["optimizer"].param_groups[0]["lr"] == pytest.approx(1e-3)
    assert optimizer["lr_scheduler"]["scheduler"].T_max == 8


def test_seeded_mono_ablation_keeps_the_recipes_loss(tmp_path: Path) -> None:
    config = load_ablation_config(MONO_PHOTO)
    built = [build_variant(config, v, tmp_path / v.slug, seed=0) for v in config.variants]
    assert [c.model.net.depth for c in built] == [4, 3, 3]
    assert [type(c.model.net.down[0].act).__name__ for c in built] == [
        "LeakyReLU",
        "LeakyReLU",
        "SiLU",
    ]
    for cli in built:
        assert cli.model.loss_fn.smoothness == "edge_aware"  # the corrected loss
        assert cli.model.net.head_type == "linear"
        assert cli.config["data"]["init_args"]["synth_style"] == "photo"
        assert cli.trainer.max_epochs == 2
