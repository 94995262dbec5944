"""Tiny end-to-end mono and stereo ablations through ``lightning_depth ablate``: the table's
numbers are the ones the test loop logged, and every report file is written."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from lightning_depth.cli import main
from tests.ablation.checks import (
    CONFIGS,
    MONO,
    MONO_COUNTS,
    STEREO,
    STEREO_COUNTS,
    assert_picture,
    report_rows,
)


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
            f"--data.init_args.synth_dir={root / 'data'}",
            "--data.init_args.synth_samples=12",
            "--data.init_args.synth_size=[48, 64]",  # (H, W)
            "--data.init_args.size=[32, 32]",
            "--data.init_args.val_fraction=0.25",
            "--data.init_args.test_fraction=0.25",
            "--trainer.max_epochs=1",
        ]
    )
    assert code == 0
    return root / "report"


@pytest.mark.slow
def test_mono_ablation_report(mono_report: Path) -> None:
    results = json.loads((mono_report / "results.json").read_text())
    assert results["task"] == "mono"
    variants = results["variants"]
    assert [v["parameters"] for v in variants] == MONO_COUNTS
    rows = report_rows((mono_report / "report.md").read_text())
    assert rows == results["table"]["rows"]
    assert results["table"]["header"][4:] == ["SSIM", "AbsRel", "δ<1.25", "Inference (ms)"]
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
        assert_picture(mono_report / name)


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
            f"--data.init_args.synth_dir={tmp_path / 'data'}",
            "--data.init_args.synth_scenes=1",
            "--data.init_args.synth_frames=6",
            "--data.init_args.synth_size=[64, 128]",  # (H, W)
            "--data.init_args.split_by=frame",
            "--data.init_args.val_fraction=0.3",
            "--data.init_args.test_fraction=0.3",
            "--data.init_args.size=[64, 128]",
            "--data.init_args.eval_size=[64, 128]",
            "--trainer.max_epochs=1",
            # without and with SPN (3 and 4 stages); the other counts: see test_run
            "--only",
            "AnyNet",
            "AnyNet SPN-8",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "stereo"
    variants = results["variants"]
    assert [v["parameters"] for v in variants] == [STEREO_COUNTS[0], STEREO_COUNTS[-1]]
    assert [len(v["inference_ms"]) for v in variants] == [3, 4]
    rows = report_rows((out / "report.md").read_text())
    assert rows == results["table"]["rows"]
    assert results["table"]["header"][3:] == [
        "3-px error (%)",
        "EPE (px)",
        *[f"Stage {k} (ms)" for k in range(1, 5)],
    ]
    for row, v in zip(rows, variants):
        assert row[2] == f"{v['parameters']:,}"
        assert row[3] == f"{100 * v['test']['3px']:.2f}"
        assert row[4] == f"{v['test']['epe']:.3f}"
        logged = _csv_test_metrics(v["log_dir"])
        assert logged["test/3px"] == pytest.approx(v["test"]["3px"])
        per_sample = [x for x in v["per_sample"]["3px"] if not math.isnan(x)]
        assert np.mean(per_sample) == pytest.approx(v["test"]["3px"], abs=1e-6)
        assert len(v["per_sample"]["names"]) == 2
    assert rows[0][-1] == "–"  # no stage 4 without SPN
    assert "val/loss_stage4" in variants[1]["curves"]
    assert "val/loss_stage4" not in variants[0]["curves"]
    for name in ("losses.png", "3px_box.png", "3px_samples.png", "qualitative.png"):
        assert_picture(out / name)
    saved = out / "variants" / "anynet_spn_8" / "csv" / "version_0" / "config.yaml"
    net = yaml.safe_load(saved.read_text())["model"]["init_args"]["net"]
    assert net["init_args"]["spn_channels"] == 8


@pytest.mark.slow
def test_seeded_stereo_ablation_also_tested_on_motorcycle(tmp_path: Path) -> None:
    """Two variants, two seeds and a further test set (the real Motorcycle pair): every run
    is its own fit, the Motorcycle figures are those of each run's weights on the pair
    (computed here from scikit-image's pair), and the table and comparison combine the runs
    as the numbers say."""
    from skimage.data import stereo_motorcycle

    from tests.data.test_middlebury import _bad, _prediction

    config = tmp_path / "seeded.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "seeded",
                "task": "stereo",
                "base": [str(CONFIGS / "demo" / "stereo.yaml")],
                "args": ["--trainer.callbacks=[]", "--trainer.enable_progress_bar=false"],
                "seeds": [3, 4],
                "also_test": [
                    {
                        "name": "Moto",
                        "data": str(CONFIGS / "data" / "middlebury.yaml"),
                        "init_args": {
                            "root": None,
                            "synth_dir": str(tmp_path / "middlebury"),
                            "num_workers": 0,
                        },
                    }
                ],
                "variants": [
                    {"name": "plain", "args": ["--model.init_args.net.init_args.spn_channels=0"]},
                    {"name": "spn", "args": ["--model.init_args.net.init_args.spn_channels=2"]},
                ],
            }
        )
    )
    out = tmp_path / "report"
    code = main(
        ["ablate", "--config", str(config), "--out", str(out),
         f"--data.init_args.synth_dir={tmp_path / 'data'}", "--data.init_args.synth_scenes=1",
         "--data.init_args.synth_frames=6", "--data.init_args.synth_size=[64, 128]",
         "--data.init_args.split_by=frame", "--data.init_args.val_fraction=0.3",
         "--data.init_args.test_fraction=0.3", "--data.init_args.size=[64, 128]",
         "--data.init_args.eval_size=[64, 128]", "--data.init_args.num_workers=0",
         "--trainer.max_epochs=1"]
    )  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [3, 4]
    left, right, gt = stereo_motorcycle()
    for v in results["variants"]:
        assert [r["seed"] for r in v["runs"]] == [3, 4]
        for run in v["runs"]:
            slug = "plain" if v["name"] == "plain" else "spn"
            assert Path(run["log_dir"]).is_relative_to(
                out / "variants" / slug / f"seed_{run['seed']}"
            )
            # the run's own test split, as its CSV log has it (first test/3px row)
            with (Path(run["log_dir"]) / "metrics.csv").open(newline="") as f:
                logged = [float(r["test/3px"]) for r in csv.DictReader(f) if r.get("test/3px")]
            assert len(logged) == 2  # the test split, then Moto
            assert run["test"]["3px"] == pytest.approx(logged[0])
            # its weights on the Motorcycle pair, evaluated here
            pred = _prediction(next(Path(run["log_dir"]).rglob("*.ckpt")), left, right)
            assert run["test"]["Moto/bad2"] == pytest.approx(_bad(pred, gt, 2), abs=1e-6)
            assert run["test"]["Moto/3px"] == pytest.approx(logged[1])
        # the runs differ (the seed reached the fit) and the table combines them
        epe = np.array([r["test"]["epe"] for r in v["runs"]])
        assert epe[0] != epe[1]
        assert v["test"]["epe"] == pytest.approx(epe.mean())
        assert v["test_std"]["epe"] == pytest.approx(epe.std(ddof=1))
        px = np.array([r["test"]["3px"] for r in v["runs"]])
        assert v["test"]["3px"] == pytest.approx(px.mean())
    rows = report_rows((out / "report.md").read_text())
    header = results["table"]["header"]
    assert header[2:4] == ["3-px error (%)", "EPE (px)"]
    assert "3-px error (%), Moto" in header and "bad-2.0 all (%), Moto" in header
    for row, v in zip(rows, results["variants"]):
        assert row[2] == f"{100 * v['test']['3px']:.2f} ± {100 * v['test_std']['3px']:.2f}"
        col = header.index("bad-2.0 all (%), Moto")
        assert (
            row[col]
            == f"{100 * v['test']['Moto/bad2']:.2f} ± {100 * v['test_std']['Moto/bad2']:.2f}"
        )
    plain, spn = results["variants"]
    pairs = {(c["variant"], c["key"]): c for c in results["comparison"]}
    diffs = [
        b["test"]["Moto/3px"] - a["test"]["Moto/3px"] for a, b in zip(plain["runs"], spn["runs"])
    ]
    assert pairs[("spn", "Moto/3px")]["diff_mean"] == pytest.approx(np.mean(diffs))
    assert pairs[("spn", "Moto/3px")]["better"] == sum(d < 0 for d in diffs)
    assert "Order by 3-px error (%), Moto, best first" in (out / "report.md").read_text()
