"""Several seeds per variant: combining a variant's runs, the headlines of further test sets,
and the comparisons a report states (paired differences against the first variant, the order
of the variants per seed).

Pure functions of results dicts (as :func:`~lightning_depth.ablation.run.run_variant` returns
them); nothing here trains or reads files.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Optional, Sequence

__all__ = ["combine_runs", "compare_to_first", "orders", "prefixed_headlines", "seeds_of"]

#: a variant's per-run fields kept in its ``runs`` list.
RUN_FIELDS = ("seed", "test", "fit_seconds", "log_dir")


def seeds_of(result: dict[str, Any]) -> list[Any]:
    """The seeds of a combined variant's runs, in order."""
    return [run["seed"] for run in result["runs"]]


def _mean_std(values: Sequence[float]) -> tuple[float, Optional[float]]:
    # NaN stays NaN (a metric a run could not give is not averaged away).
    mean = math.fsum(values) / len(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


def combine_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One variant's runs (one per seed) as one result.

    Returns:
        the first run's result (per-sample values, curves, pictures and timings are the first
        seed's) with ``test`` replaced by the mean over the runs of every key all runs have,
        ``test_std`` (sample standard deviations; only with more than one run),
        ``fit_seconds`` the mean, and ``runs``: per run its ``seed``, ``test``,
        ``fit_seconds`` and ``log_dir``.

    Raises:
        ValueError: no runs, or runs of different variants.
    """
    if not runs:
        raise ValueError("combine_runs needs at least one run")
    names = {run["name"] for run in runs}
    if len(names) > 1:
        raise ValueError(f"combine_runs got runs of several variants: {sorted(names)}")
    first = runs[0]
    per_run = [
        {"seed": run["setup"].get("seed"), **{k: run[k] for k in RUN_FIELDS[1:]}} for run in runs
    ]
    keys = [k for k in first["test"] if all(k in run["test"] for run in runs)]
    stats = {k: _mean_std([run["test"][k] for run in runs]) for k in keys}
    combined = dict(first)
    combined["test"] = {k: mean for k, (mean, _) in stats.items()}
    if len(runs) > 1:
        combined["test_std"] = {k: std for k, (_, std) in stats.items()}
    combined["fit_seconds"] = math.fsum(run["fit_seconds"] for run in runs) / len(runs)
    combined["runs"] = per_run
    return combined


def prefixed_headlines(headlines: Sequence[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Headlines of a further test set ``name``: key ``<name>/<key>``, label
    ``<label>, <name>``."""
    return [{**h, "key": f"{name}/{h['key']}", "label": f"{h['label']}, {name}"} for h in headlines]


def _better(diff: float, higher_is_better: bool) -> bool:
    return diff > 0 if higher_is_better else diff < 0


def compare_to_first(
    variants: Sequence[dict[str, Any]], headlines: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each variant after the first against the first, run by run (same seed), per headline.

    Returns:
        one dict per (variant, headline) with ``variant``, ``reference``, ``key``,
        ``label``, ``diff_mean`` and ``diff_std`` (variant minus reference, unscaled;
        ``diff_std`` ``None`` with one seed), ``relative`` (``diff_mean`` over the
        reference's mean; ``None`` when that is 0), ``better`` (runs where the variant is
        better, by the headline's direction) and ``runs`` (runs compared). Headlines a run
        lacks are left out.

    Raises:
        ValueError: a variant's seeds differ from the first's (runs would not pair).
    """
    if len(variants) < 2:
        return []
    reference = variants[0]
    out = []
    for variant in variants[1:]:
        if seeds_of(variant) != seeds_of(reference):
            raise ValueError(
                f"variant {variant['name']!r} ran seeds {seeds_of(variant)}, "
                f"{reference['name']!r} {seeds_of(reference)}: runs do not pair"
            )
        for h in headlines:
            key = h["key"]
            pairs = [
                (run["test"][key], ref["test"][key])
                for run, ref in zip(variant["runs"], reference["runs"])
                if key in run["test"] and key in ref["test"]
            ]
            if not pairs or len(pairs) != len(reference["runs"]):
                continue
            diffs = [a - b for a, b in pairs]
            mean, std = _mean_std(diffs)
            ref_mean = math.fsum(b for _, b in pairs) / len(pairs)
            out.append(
                {
                    "variant": variant["name"],
                    "reference": reference["name"],
                    "key": key,
                    "label": h["label"],
                    "diff_mean": mean,
                    "diff_std": std,
                    "relative": mean / ref_mean if ref_mean else None,
                    "better": sum(_better(d, h.get("higher_is_better", False)) for d in diffs),
                    "runs": len(diffs),
                }
            )
    return out


def orders(variants: Sequence[dict[str, Any]], headline: dict[str, Any]) -> dict[str, Any]:
    """The variants ranked best first by one headline, in each run (seed) and on the mean.

    Returns:
        ``{"key", "per_seed": [{"seed", "order": [names]}], "mean": [names], "stable"}``;
        ``stable`` is true when every seed gives the mean's order. Runs without the key (or
        NaN) are left out of the ranking of their seed.
    """
    key, higher = headline["key"], headline.get("higher_is_better", False)

    def ranked(values: dict[str, float]) -> list[str]:
        known = {n: v for n, v in values.items() if not math.isnan(v)}
        return sorted(known, key=lambda n: -known[n] if higher else known[n])

    per_seed = []
    for i, run in enumerate(variants[0]["runs"]):
        values = {
            v["name"]: v["runs"][i]["test"][key] for v in variants if key in v["runs"][i]["test"]
        }
        per_seed.append({"seed": run["seed"], "order": ranked(values)})
    mean = ranked({v["name"]: v["test"][key] for v in variants if key in v["test"]})
    return {
        "key": key,
        "per_seed": per_seed,
        "mean": mean,
        "stable": all(entry["order"] == mean for entry in per_seed),
    }
