"""``lightning_depth ablate``: config parsing, per-variant CLI arguments and loggers, loss
curves from CSV logs, the report writer, and tiny end-to-end mono and stereo ablations."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from lightning.pytorch import LightningDataModule
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from PIL import Image

from lightning_depth.ablation import (
    Variant,
    cli_args,
    load_ablation_config,
    logger_configs,
    parameter_count,
    read_loss_curves,
    table,
    write_report,
)
from lightning_depth.cli import DepthCLI, main
from lightning_depth.tasks.base import DepthTask

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MONO = CONFIGS / "ablation" / "mono.yaml"
STEREO = CONFIGS / "ablation" / "stereo.yaml"
MONO_COUNTS = [1_966_465, 489_089, 489_089]
STEREO_COUNTS = [34_629, 34_827, 35_277, 36_933, 43_269]


# -- config -----------------------------------------------------------------------------------
def test_shipped_configs_load_with_the_paper_variants() -> None:
    mono = load_ablation_config(MONO)
    assert mono.task == "mono"
    assert [v.name for v in mono.variants] == ["4-1-4 LeakyReLU", "3-1-3 LeakyReLU", "3-1-3 Swish"]
    assert [Path(v.model).name for v in mono.variants] == [
        "mono_414.yaml",
        "mono_313.yaml",
        "mono_313_swish.yaml",
    ]
    assert mono.variants[2].info == {"structure": "3-1-3", "activation": "Swish"}
    assert mono.base[0] == str((CONFIGS / "demo" / "mono.yaml").resolve())
    assert json.loads(mono.base[1]) == {"trainer": {"max_epochs": 4}}  # the demo budget
    stereo = load_ablation_config(STEREO)
    assert stereo.task == "stereo"
    assert [Path(v.model).name for v in stereo.variants] == [
        f"anynet_spn{c}.yaml" for c in (0, 1, 2, 4, 8)
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "must be a mapping"),
        ("task: mono\nvariants: []", "non-empty list"),
        ("task: depth\nvariants: [{name: a, args: [--x=1]}]", "task must be one of"),
        ("task: mono\nvariants: [{name: a}]", "needs a 'model' config or 'args'"),
        ("task: mono\nvariants: [{name: a, model: nope.yaml}]", "'nope.yaml' not found"),
        ("task: mono\nbase: [gone.yaml]\nvariants: [{name: a, args: [--x=1]}]", "base config"),
        ("task: mono\nvariantz: []", "unknown keys ['variantz']"),
        (
            "task: mono\nvariants: [{name: A b, args: [--x=1]}, {name: a-B, args: [--x=2]}]",
            "names must differ",
        ),
        ("task: mono\ncheckpoint: first\nvariants: [{name: a, args: [--x=1]}]", "'last' or 'best'"),
    ],
)
def test_bad_config_errors_name_the_file_and_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        load_ablation_config(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_config_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_ablation_config(tmp_path / "missing.yaml")


def test_variant_slug_is_a_folder_name() -> None:
    assert Variant(name="4-1-4 LeakyReLU", args=["--x=1"]).slug == "4_1_4_leakyrelu"
    assert Variant(name="AnyNet SPN-8", args=["--x=1"]).slug == "anynet_spn_8"


# -- per-variant CLI ----------------------------------------------------------------------------
def _variant_cli(config, variant, out: Path, **kwargs) -> DepthCLI:
    return DepthCLI(
        DepthTask,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=cli_args(config, variant, out, **kwargs),
        run=False,
    )


def test_variant_cli_gets_its_model_the_shared_data_and_the_user_overrides(tmp_path: Path) -> None:
    config = load_ablation_config(MONO)
    variant = config.variants[2]
    cli = _variant_cli(config, variant, tmp_path, overrides=["--trainer.max_epochs=3"])
    assert type(cli.model.net.down[0].act).__name__ == "SiLU"  # the variant's Swish
    assert cli.model.net.depth == 3
    # the base's data, the user's budget, the ablation's logger and no demo callbacks
    assert cli.config["data"]["init_args"]["root"] == ".cache/lightning_depth/diode_demo"
    assert cli.trainer.max_epochs == 3  # over the ablation's demo budget
    assert [type(lg) for lg in cli.trainer.loggers] == [CSVLogger]
    assert Path(cli.trainer.loggers[0].log_dir) == tmp_path / "csv" / "version_0"
    assert not any(type(c).__name__ == "LearningReport" for c in cli.trainer.callbacks)


def test_real_data_base_gives_the_papers_setup_with_the_variants_model(tmp_path: Path) -> None:
    # what `--base configs/mono/diode_414.yaml` does: the experiment's data and budget
    config = load_ablation_config(MONO)
    config.base = [str(CONFIGS / "mono" / "diode_414.yaml")]
    cli = _variant_cli(config, config.variants[1], tmp_path)
    data = cli.config["data"]["init_args"]
    assert data["root"] == "data/diode" and list(data["size"]) == [256, 256]
    assert cli.trainer.max_epochs == 30
    assert cli.model.net.depth == 3  # the variant's model, not the base's 4-1-4


@pytest.mark.parametrize(("path", "counts"), [(MONO, MONO_COUNTS), (STEREO, STEREO_COUNTS)])
def test_shipped_variants_have_the_paper_parameter_counts(
    tmp_path: Path, path: Path, counts: list[int]
) -> None:
    config = load_ablation_config(path)
    built = [_variant_cli(config, v, tmp_path / v.slug).model for v in config.variants]
    assert [parameter_count(config.task, m.net) for m in built] == counts


def test_wandb_puts_every_variant_in_one_group(tmp_path: Path) -> None:
    config = load_ablation_config(STEREO)
    settings = {"project": "p", "group": "ablation-stereo-x", "tags": ["t"]}
    runs = []
    for variant in config.variants[:2]:
        loggers = logger_configs(variant, tmp_path / variant.slug, settings)
        assert loggers[0]["class_path"].endswith("CSVLogger")
        cli = _variant_cli(config, variant, tmp_path / variant.slug, wandb=settings)
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


# -- CSV curves and the report ------------------------------------------------------------------
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


def _fake_stereo_results() -> dict:
    rng = np.random.default_rng(0)
    variants = []
    for name, stages, params in (("A", 3, 34_629), ("B", 4, 43_269)):
        values = rng.uniform(0, 1, 6).tolist()
        values[2] = math.nan  # a sample without valid ground truth
        variants.append(
            {
                "name": name,
                "info": {"structure": name.lower()},
                "parameters": params,
                "test": {"3px": 0.123456, "epe": 1.23456},
                "per_sample": {"names": [f"s/{i}" for i in range(6)], "3px": values},
                "inference_ms": [1.0 * k for k in range(1, stages + 1)],
                "fit_seconds": 2.0,
                "curves": {
                    "train/loss": {"epoch": [0, 1], "value": [2.0, 1.0]},
                    f"val/loss_stage{stages}": {"epoch": [0, 1], "value": [3.0, 2.0]},
                },
                "pictures": [
                    {
                        "left": np.full((8, 16, 3), 50, np.uint8),
                        "ground_truth": np.full((8, 16, 3), 90, np.uint8),
                        **{
                            f"stage{k}": np.full((8, 16, 3), 20 * k, np.uint8)
                            for k in range(1, stages + 1)
                        },
                    }
                ],
            }
        )
    return {"name": "t", "task": "stereo", "variants": variants}


def test_report_writer_on_given_results(tmp_path: Path) -> None:
    written = write_report(_fake_stereo_results(), tmp_path, columns=["structure"])
    tab = written["table"]
    assert tab["header"][:5] == ["Variant", "Structure", "Parameters", "3-px error (%)", "EPE (px)"]
    assert tab["rows"][0][:5] == ["A", "a", "34,629", "12.35", "1.235"]
    assert tab["rows"][0][-1] == "–"  # no stage 4 without SPN
    assert tab["rows"][1][-1] == "4.00"
    saved = json.loads((tmp_path / "results.json").read_text())
    assert "pictures" not in saved["variants"][0]
    assert saved["table"] == tab
    report = (tmp_path / "report.md").read_text()
    assert "| A | a | 34,629 | 12.35 | 1.235 | 1.00 | 2.00 | 3.00 | – |" in report
    for name in ("losses.png", "3px_box.png", "3px_samples.png", "qualitative.png"):
        assert f"]({name})" in report
        _assert_picture(tmp_path / name)


def test_table_rows_follow_the_variants() -> None:
    results = _fake_stereo_results()
    results["variants"].reverse()
    assert [row[0] for row in table(results)["rows"]] == ["B", "A"]


# -- end to end ---------------------------------------------------------------------------------
def _assert_picture(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert pixels.std() > 1.0, f"{path} is blank"


def _report_rows(report: str) -> list[list[str]]:
    lines = report.split("\n\n")
    block = next(b for b in lines if b.startswith("| Variant |") and "Parameters" in b)
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]


def _csv_test_metrics(log_dir: str) -> dict[str, float]:
    with (Path(log_dir) / "metrics.csv").open(newline="") as f:
        out = {}
        for row in csv.DictReader(f):
            out.update({k: float(v) for k, v in row.items() if k.startswith("test/") and v})
    return out


@pytest.fixture(scope="module")
def mono_report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ablate_mono")
    code = main(
        [
            "ablate",
            "--config",
            str(MONO),
            "--out",
            str(root / "report"),
            f"--data.init_args.root={root / 'data'}",
            "--data.init_args.synth_samples=12",
            "--data.init_args.synth_size=[64, 48]",
            "--data.init_args.size=[32, 32]",
            "--data.init_args.fractions=[0.5, 0.25, 0.25]",
            "--trainer.max_epochs=1",
        ]
    )
    assert code == 0
    return root / "report"


@pytest.mark.slow
def test_mono_ablation_report(mono_report: Path) -> None:
    results = json.loads((mono_report / "results.json").read_text())
    variants = results["variants"]
    assert [v["parameters"] for v in variants] == MONO_COUNTS
    rows = _report_rows((mono_report / "report.md").read_text())
    assert rows == results["table"]["rows"]
    for row, v in zip(rows, variants):
        assert row[:4] == [
            v["name"],
            v["info"]["structure"],
            v["info"]["activation"],
            f"{v['parameters']:,}",
        ]
        assert row[4:7] == [f"{v['test'][k]:.4f}" for k in ("ssim", "abs_rel", "delta1")]
        # the table's numbers are the ones the test loop logged
        logged = _csv_test_metrics(v["log_dir"])
        assert logged["test/ssim"] == pytest.approx(v["test"]["ssim"])
        # per-sample SSIMs average to the epoch SSIM (torchmetrics averages over samples)
        assert np.mean(v["per_sample"]["ssim"]) == pytest.approx(v["test"]["ssim"], abs=1e-5)
        assert v["per_sample"]["names"] == variants[0]["per_sample"]["names"]
        assert v["curves"]["train/loss"]["epoch"] == [0]
        assert len(v["curves"]["val/loss"]["value"]) == 1
    assert results["setup"]["test_samples"] == 3 and results["setup"]["seed"] == 42
    for name in ("losses.png", "ssim_box.png", "ssim_samples.png", "qualitative.png"):
        _assert_picture(mono_report / name)


@pytest.mark.slow
def test_stereo_ablation_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    code = main(
        [
            "ablate",
            "--config",
            str(STEREO),
            "--out",
            str(out),
            f"--data.init_args.root={tmp_path / 'data'}",
            "--data.init_args.synth_scenes=1",
            "--data.init_args.synth_frames=6",
            "--data.init_args.synth_size=[128, 64]",
            "--data.init_args.split_by=frame",
            "--data.init_args.val_fraction=0.3",
            "--data.init_args.test_fraction=0.3",
            "--data.init_args.crop_size=[64, 128]",
            "--data.init_args.eval_size=[64, 128]",
            "--trainer.max_epochs=1",
            # without and with SPN (3 and 4 stages); the other counts: see the fast test
            "--only",
            "AnyNet",
            "AnyNet SPN-8",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    variants = results["variants"]
    assert [v["parameters"] for v in variants] == [STEREO_COUNTS[0], STEREO_COUNTS[-1]]
    assert [len(v["inference_ms"]) for v in variants] == [3, 4]
    rows = _report_rows((out / "report.md").read_text())
    assert rows == results["table"]["rows"]
    for row, v in zip(rows, variants):
        assert row[2] == f"{v['parameters']:,}"
        assert row[3] == f"{100 * v['test']['3px']:.2f}"
        assert row[4] == f"{v['test']['epe']:.3f}"
        logged = _csv_test_metrics(v["log_dir"])
        assert logged["test/3px"] == pytest.approx(v["test"]["3px"])
        per_sample = [x for x in v["per_sample"]["3px"] if not math.isnan(x)]
        assert np.mean(per_sample) == pytest.approx(v["test"]["3px"], abs=1e-6)
        assert len(v["per_sample"]["names"]) == 2
    assert "val/loss_stage4" in variants[1]["curves"]
    assert "val/loss_stage4" not in variants[0]["curves"]
    for name in ("losses.png", "3px_box.png", "3px_samples.png", "qualitative.png"):
        _assert_picture(out / name)
    saved = out / "variants" / "anynet_spn_8" / "csv" / "version_0" / "config.yaml"
    net = yaml.safe_load(saved.read_text())["model"]["init_args"]["net"]
    assert net["init_args"]["spn_channels"] == 8


def test_report_rows_helper_finds_the_results_table() -> None:
    # the helper above must find the results table, not the fit-time table
    text = "| Variant | Parameters |\n|---|---:|\n| a | 1 |\n\n| Variant | Fit time (s) |\n|---|---:|\n| a | 2.0 |"
    assert _report_rows(text) == [["a", "1"]]
