"""Several seeds per variant (ablation.stats): combining runs, paired comparisons against the
first variant, the order per seed, and the table cells they give. Expected values are
computed here with numpy from the hand-made runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lightning_depth.ablation.report import table
from lightning_depth.ablation.stats import (
    combine_runs,
    compare_to_first,
    orders,
    prefixed_headlines,
)

HEADLINES = [
    {"key": "3px", "label": "3-px error (%)", "scale": 100.0, "digits": 2},
    {"key": "ssim", "label": "SSIM", "scale": 1.0, "digits": 4, "higher_is_better": True},
]
SEEDS = [0, 1, 2]
# variant -> per-seed (3px, ssim)
VALUES = {
    "A": [(0.30, 0.60), (0.34, 0.62), (0.20, 0.70)],
    "B": [(0.25, 0.61), (0.36, 0.66), (0.18, 0.69)],
    "C": [(0.40, 0.50), (0.42, 0.52), (0.44, 0.48)],
}


def _run(name: str, seed: int, px: float, ssim: float) -> dict:
    return {
        "name": name,
        "info": {},
        "parameters": 10,
        "test": {"3px": px, "ssim": ssim, **({"only_some": 1.0} if seed else {})},
        "inference_ms": {"forward": 1.0 + seed},
        "per_sample": {"names": ["x"], "3px": [px]},
        "fit_seconds": 10.0 * (seed + 1),
        "log_dir": f"/logs/{name}/{seed}",
        "setup": {"seed": seed},
    }


def _combined() -> list[dict]:
    return [
        combine_runs([_run(n, s, *v) for s, v in zip(SEEDS, values)])
        for n, values in VALUES.items()
    ]


def test_combine_runs_means_and_sample_deviations() -> None:
    a = _combined()[0]
    px = np.array([v[0] for v in VALUES["A"]])
    assert a["test"]["3px"] == pytest.approx(px.mean())
    assert a["test_std"]["3px"] == pytest.approx(px.std(ddof=1))
    assert "only_some" not in a["test"]  # a key only some runs have is not averaged
    assert a["fit_seconds"] == pytest.approx(20.0)
    assert [r["seed"] for r in a["runs"]] == SEEDS
    assert [r["test"]["3px"] for r in a["runs"]] == px.tolist()
    assert a["inference_ms"] == {"forward": 1.0}  # the first seed's
    assert a["log_dir"] == "/logs/A/0"


def test_one_run_has_no_deviation_and_keeps_its_values() -> None:
    one = combine_runs([_run("A", 0, 0.3, 0.6)])
    assert one["test"] == {"3px": 0.3, "ssim": 0.6}
    assert "test_std" not in one
    assert one["runs"][0]["seed"] == 0


def test_combine_runs_refuses_runs_of_several_variants() -> None:
    with pytest.raises(ValueError, match="several variants"):
        combine_runs([_run("A", 0, 0.3, 0.6), _run("B", 1, 0.3, 0.6)])
    with pytest.raises(ValueError, match="at least one run"):
        combine_runs([])


def test_compare_to_first_pairs_runs_by_seed() -> None:
    rows = {(c["variant"], c["key"]): c for c in compare_to_first(_combined(), HEADLINES)}
    assert set(rows) == {(v, k) for v in ("B", "C") for k in ("3px", "ssim")}
    for (name, key), row in rows.items():
        col = 0 if key == "3px" else 1
        mine = np.array([v[col] for v in VALUES[name]])
        ref = np.array([v[col] for v in VALUES["A"]])
        diffs = mine - ref
        assert row["reference"] == "A" and row["runs"] == 3
        assert row["diff_mean"] == pytest.approx(diffs.mean())
        assert row["diff_std"] == pytest.approx(diffs.std(ddof=1))
        assert row["relative"] == pytest.approx(diffs.mean() / ref.mean())
        better = (diffs > 0) if key == "ssim" else (diffs < 0)  # the headline's direction
        assert row["better"] == int(better.sum())
    assert rows[("B", "3px")]["better"] == 2 and rows[("B", "ssim")]["better"] == 2
    assert rows[("C", "3px")]["better"] == 0


def test_compare_to_first_refuses_unpaired_seeds() -> None:
    a = combine_runs([_run("A", s, 0.3, 0.6) for s in (0, 1)])
    b = combine_runs([_run("B", s, 0.3, 0.6) for s in (0, 2)])
    with pytest.raises(ValueError, match="do not pair"):
        compare_to_first([a, b], HEADLINES)
    assert compare_to_first([a], HEADLINES) == []


def test_orders_per_seed_and_stability() -> None:
    variants = _combined()
    by_error = orders(variants, HEADLINES[0])
    # lower is better: seed 0 B < A < C, seed 1 A < B < C, seed 2 B < A < C
    assert [e["order"] for e in by_error["per_seed"]] == [
        ["B", "A", "C"],
        ["A", "B", "C"],
        ["B", "A", "C"],
    ]
    assert by_error["mean"] == ["B", "A", "C"] and by_error["stable"] is False
    by_ssim = orders(variants, HEADLINES[1])  # higher is better
    assert [e["order"] for e in by_ssim["per_seed"]] == [
        ["B", "A", "C"],
        ["B", "A", "C"],
        ["A", "B", "C"],
    ]
    assert by_ssim["mean"] == ["B", "A", "C"]  # means 0.6533 > 0.64 > 0.5
    assert by_ssim["stable"] is False
    stable = orders(variants[:1] + variants[2:], HEADLINES[0])
    assert stable["mean"] == ["A", "C"] and stable["stable"] is True


def test_orders_leave_out_nan() -> None:
    variants = _combined()
    variants[1]["runs"][0]["test"]["3px"] = math.nan
    assert orders(variants, HEADLINES[0])["per_seed"][0]["order"] == ["A", "C"]


def test_table_cells_show_mean_and_deviation() -> None:
    variants = _combined()
    tab = table({"variants": variants, "headlines": HEADLINES})
    px = np.array([v[0] for v in VALUES["A"]]) * 100
    ssim = np.array([v[1] for v in VALUES["A"]])
    assert tab["rows"][0][2:4] == [
        f"{px.mean():.2f} ± {px.std(ddof=1):.2f}",
        f"{ssim.mean():.4f} ± {ssim.std(ddof=1):.4f}",
    ]


def test_prefixed_headlines_name_the_test_set() -> None:
    out = prefixed_headlines(HEADLINES, "Motorcycle")
    assert [h["key"] for h in out] == ["Motorcycle/3px", "Motorcycle/ssim"]
    assert out[0]["label"] == "3-px error (%), Motorcycle"
    assert out[1]["higher_is_better"] is True and out[0]["scale"] == 100.0
