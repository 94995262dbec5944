"""The report writer on given results: the table, report.md, results.json and the plots, for
the stereo layout (stages, NaN samples) and for a task the report code has never seen."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from lightning_depth.ablation import table, write_report
from tests.ablation.checks import assert_picture, report_rows

# Written out here, not imported from tasks/: the report must work from the results alone.
STEREO_HEADLINES = [
    {
        "key": "3px",
        "label": "3-px error (%)",
        "scale": 100.0,
        "digits": 2,
        "higher_is_better": False,
    },
    {"key": "epe", "label": "EPE (px)", "scale": 1.0, "digits": 3, "higher_is_better": False},
]


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
                "task": "stereo",
                "parameters": params,
                "test": {"3px": 0.123456, "epe": 1.23456},
                "per_sample": {"names": [f"s/{i}" for i in range(6)], "3px": values},
                "inference_ms": {f"stage{k}": 1.0 * k for k in range(1, stages + 1)},
                "fit_seconds": 2.0,
                "curves": {
                    "train/loss": {"epoch": [0, 1], "value": [2.0, 1.0]},
                    f"val/loss_stage{stages}": {"epoch": [0, 1], "value": [3.0, 2.0]},
                },
                "loss_curve_keys": ["loss", *[f"loss_stage{k}" for k in range(1, stages + 1)]],
                "picture_roles": {
                    "inputs": ["left"],
                    "target": "ground_truth",
                    "prediction": f"stage{stages}",
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
    return {
        "name": "t",
        "task": "stereo",
        "headlines": STEREO_HEADLINES,
        "metrics_note": "3-px error: share of valid pixels off by more than 3 px.",
        "variants": variants,
    }


def test_report_writer_on_given_results(tmp_path: Path) -> None:
    written = write_report(_fake_stereo_results(), tmp_path, columns=["structure"])
    tab = written["table"]
    assert tab["header"][:5] == ["Variant", "Structure", "Parameters", "3-px error (%)", "EPE (px)"]
    assert tab["header"][5:] == [f"Stage {k} (ms)" for k in range(1, 5)]
    assert tab["rows"][0][:5] == ["A", "a", "34,629", "12.35", "1.235"]
    assert tab["rows"][0][-1] == "–"  # no stage 4 without SPN
    assert tab["rows"][1][-1] == "4.00"
    saved = json.loads((tmp_path / "results.json").read_text())
    assert "pictures" not in saved["variants"][0]
    assert saved["table"] == tab and saved["task"] == "stereo"
    report = (tmp_path / "report.md").read_text()
    assert "| A | a | 34,629 | 12.35 | 1.235 | 1.00 | 2.00 | 3.00 | – |" in report
    assert "3-px error: share of valid pixels" in report
    for name in ("losses.png", "3px_box.png", "3px_samples.png", "qualitative.png"):
        assert f"]({name})" in report
        assert_picture(tmp_path / name)


def test_table_rows_follow_the_variants() -> None:
    results = _fake_stereo_results()
    results["variants"].reverse()
    assert [row[0] for row in table(results)["rows"]] == ["B", "A"]


def test_report_of_a_task_it_has_never_seen(tmp_path: Path) -> None:
    # A made-up task: one headline "mae" in centimetres, one timed part, its own pictures.
    variants = []
    for name, mae in (("small", 0.25), ("large", math.nan)):
        variants.append(
            {
                "name": name,
                "info": {},
                "task": "toy",
                "parameters": 1234,
                "test": {"mae": mae},
                "per_sample": {"names": ["x", "y", "z"], "mae": [0.2, 0.3, 0.25]},
                "inference_ms": {"forward": 1.5},
                "fit_seconds": 1.0,
                "curves": {"train/loss_l2": {"epoch": [0, 1], "value": [1.0, 0.5]}},
                "loss_curve_keys": ["loss", "loss_l2"],
                "picture_roles": {
                    "inputs": ["rgb", "sparse"],
                    "target": "truth",
                    "prediction": "guess",
                },
                "pictures": [
                    {
                        k: np.full((10, 10, 3), v, np.uint8)
                        for k, v in (("rgb", 10), ("sparse", 60), ("truth", 120), ("guess", 200))
                    }
                ],
            }
        )
    results = {
        "name": "toy ablation",
        "task": "toy",
        "headlines": [{"key": "mae", "label": "MAE (cm)", "scale": 100.0, "digits": 1}],
        "metrics_note": "MAE over all pixels.",
        "variants": variants,
    }
    written = write_report(results, tmp_path)
    assert written["table"]["header"] == ["Variant", "Parameters", "MAE (cm)", "Inference (ms)"]
    assert written["table"]["rows"] == [
        ["small", "1,234", "25.0", "1.50"],
        ["large", "1,234", "n/a", "1.50"],
    ]
    report = (tmp_path / "report.md").read_text()
    assert report_rows(report) == written["table"]["rows"]
    assert "MAE over all pixels. Inference: median time" in report
    assert set(written["plots"]) == {"losses", "mae_box", "mae_samples", "qualitative"}
    for name in written["plots"].values():
        assert f"]({name})" in report
        assert_picture(tmp_path / name)


def test_report_rows_helper_finds_the_results_table() -> None:
    # the helper must find the results table, not the fit-time table
    text = "| Variant | Parameters |\n|---|---:|\n| a | 1 |\n\n| Variant | Fit time (s) |\n|---|---:|\n| a | 2.0 |"
    assert report_rows(text) == [["a", "1"]]
