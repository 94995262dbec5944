"""The ablation report: the table, ``report.md`` and ``results.json``.

It reads a results dict only, never a task: ``headlines`` (dicts of
:class:`~lightning_depth.tasks.base.Headline`'s fields, the first primary) and
``metrics_note`` describe the task, and each variant's ``inference_ms`` maps the task's timed
parts to milliseconds. A task the report has never seen reports the same way.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Optional, Sequence

from lightning_depth.ablation.plots import write_plots
from lightning_depth.ablation.stats import compare_to_first, orders

__all__ = ["markdown_table", "table", "timed_parts", "write_report"]

MISSING = "n/a"  # a metric the test did not give, or NaN
NOT_RUN = "–"  # a timed part the variant has not (AnyNet without SPN has no stage 4)


def _fmt(x: Optional[float], digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    return f"{x:.{digits}f}"


def timed_parts(results: dict[str, Any]) -> list[str]:
    """The timed parts of every variant, in order of first appearance."""
    parts: dict[str, None] = {}
    for v in results["variants"]:
        parts.update(dict.fromkeys(v["inference_ms"]))
    return list(parts)


def _part_label(part: str) -> str:
    # "stage1" -> "Stage 1", "decoder_head" -> "Decoder head"
    return re.sub(r"(\D)(\d)", r"\1 \2", part).replace("_", " ").capitalize()


def _timing_header(parts: Sequence[str]) -> list[str]:
    if len(parts) == 1:
        return ["Inference (ms)"]
    return [f"{_part_label(p)} (ms)" for p in parts]


def _headline_cell(
    test: dict[str, float], headline: dict[str, Any], std: Optional[dict[str, float]] = None
) -> str:
    value = test.get(headline["key"])
    scale, digits = headline.get("scale", 1.0), headline.get("digits", 4)
    cell = _fmt(None if value is None else scale * value, digits)
    spread = (std or {}).get(headline["key"])
    if value is None or spread is None:
        return cell
    return f"{cell} ± {_fmt(scale * spread, digits)}"


def table(results: dict[str, Any], columns: Sequence[str] = ()) -> dict[str, list]:
    """The report's table as ``{"header": [...], "rows": [[str, ...], ...]}``.

    Columns: variant, the ``columns`` fields, parameters, one per headline (its label,
    ``scale * value`` with its digits; ``n/a`` when missing; ``mean ± std`` when the variant
    ran several seeds), then the inference time: one
    column if the task times one part, else one per part (``–`` where a variant lacks it).
    """
    variants = results["variants"]
    headlines = results.get("headlines") or []
    parts = timed_parts(results)
    header = ["Variant", *[c.replace("_", " ").capitalize() for c in columns], "Parameters"]
    header += [h["label"] for h in headlines] + _timing_header(parts)
    rows = []
    for v in variants:
        row = [v["name"], *[v["info"].get(c, "") for c in columns], f"{v['parameters']:,}"]
        row += [_headline_cell(v["test"], h, v.get("test_std")) for h in headlines]
        times = v["inference_ms"]
        row += [_fmt(times[p], 2) if p in times else NOT_RUN for p in parts]
        rows.append(row)
    return {"header": header, "rows": rows}


def markdown_table(tab: dict[str, list]) -> str:
    """A :func:`table` as a Markdown table (first column left-aligned, the rest right)."""
    lines = ["| " + " | ".join(tab["header"]) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(tab["header"]) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in tab["rows"]]
    return "\n".join(lines)


def write_report(
    results: dict[str, Any], out: str | Path, columns: Sequence[str] = ()
) -> dict[str, Any]:
    """Write ``report.md``, ``results.json`` and the PNG plots of an ablation to ``out``.

    Args:
        results: as assembled by :func:`~lightning_depth.ablation.run.run_ablation`:
            ``name``, ``task``, ``headlines``, ``metrics_note``, optional ``setup``,
            ``checkpoint`` and ``wandb_group``, and ``variants``, each with ``name``,
            ``info``, ``parameters``, ``test``, ``per_sample``, ``inference_ms``,
            ``fit_seconds``, ``curves``, ``loss_curve_keys``, ``picture_roles`` and
            ``pictures`` (which go into the qualitative grid and not into the JSON).
        out: report folder.
        columns: variant ``info`` fields shown in the table.

    Returns:
        the JSON-serialisable results, with ``table``, ``columns`` and ``plots`` added.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(results, out)
    clean = {k: v for k, v in results.items() if k != "variants"}
    clean["variants"] = [
        {k: v for k, v in r.items() if k != "pictures"} for r in results["variants"]
    ]
    clean["table"] = table(clean, columns)
    if all("runs" in v for v in clean["variants"]):
        headlines = clean.get("headlines") or []
        clean["comparison"] = compare_to_first(clean["variants"], headlines)
        ranked = [orders(clean["variants"], h) for h in headlines]
        clean["orders"] = [order for order in ranked if order["mean"]]
    clean["columns"] = list(columns)
    clean["plots"] = {key: name for key, name, _ in plots}
    (out / "results.json").write_text(json.dumps(clean, indent=2, allow_nan=True) + "\n")
    captions = {key: caption for key, _, caption in plots}
    (out / "report.md").write_text(_markdown(clean, captions))
    return clean


def _setup_sentence(results: dict[str, Any]) -> list[str]:
    setup = results.get("setup")
    if not setup:
        return []
    seeds = results.get("seeds") or []
    seed = (
        f"seeds {', '.join(map(str, seeds))} (mean ± standard deviation over the seeds; "
        f"plots, per-sample values and times from seed {seeds[0]})"
        if len(seeds) > 1
        else f"seed {setup.get('seed')}"
    )
    extras = [e["name"] for e in results.get("also_test") or []]
    also = f" Also tested on: {', '.join(extras)}." if extras else ""
    return [
        f"Data: `{setup.get('data')}` at `{setup.get('root')}`; "
        f"{setup.get('train_samples')} training, {setup.get('val_samples')} validation and "
        f"{setup.get('test_samples')} test samples; {seed}; "
        f"{setup.get('max_epochs')} epoch(s); tested with the "
        f"{results.get('checkpoint', 'last')} weights.{also}",
        "",
    ]


def _comparison_lines(results: dict[str, Any]) -> list[str]:
    comparison = results.get("comparison") or []
    if not comparison:
        return []
    scales = {h["key"]: h for h in results.get("headlines") or []}
    reference = comparison[0]["reference"]
    lines = [
        "",
        f"Against {reference}, seed by seed (variant minus {reference}; relative to "
        f"{reference}'s mean; runs where the variant is better):",
        "",
        "| Variant | Metric | Difference | Relative | Better in |",
        "|---|---|---:|---:|---:|",
    ]
    for c in comparison:
        h = scales[c["key"]]
        scale, digits = h.get("scale", 1.0), h.get("digits", 4)
        diff = f"{scale * c['diff_mean']:+.{digits}f}"
        if c["diff_std"] is not None:
            diff += f" ± {_fmt(scale * c['diff_std'], digits)}"
        relative = MISSING if c["relative"] is None else f"{100 * c['relative']:+.1f}%"
        lines.append(
            f"| {c['variant']} | {c['label']} | {diff} | {relative} | {c['better']}/{c['runs']} |"
        )
    # The order by each test set's primary headline (the task's first).
    first_key = (results.get("headlines") or [{"key": ""}])[0]["key"]
    for order in results.get("orders") or []:
        primary = order["key"] == first_key or order["key"].endswith("/" + first_key)
        if len(order["per_seed"]) < 2 or not primary:
            continue
        label = scales[order["key"]]["label"]
        verdict = "the same in every seed" if order["stable"] else "NOT the same in every seed"
        lines += ["", f"Order by {label}, best first: {verdict}."]
        lines += [f"- mean: {' > '.join(order['mean'])}"]
        lines += [f"- seed {e['seed']}: {' > '.join(e['order'])}" for e in order["per_seed"]]
    return lines


def _timing_sentence(results: dict[str, Any]) -> str:
    device = results.get("setup", {}).get("device", "the training device")
    parts = timed_parts(results)
    if len(parts) == 1:
        return f"Inference: median time of one sample's forward pass on {device}."
    labels = ", ".join(_part_label(p) for p in parts)
    return (
        f"Times (ms): median time of one sample's forward pass up to each part ({labels}) "
        f"on {device}."
    )


def _markdown(results: dict[str, Any], captions: dict[str, str]) -> str:
    lines = [f"# Ablation: {results['name']}", ""]
    lines += _setup_sentence(results)
    lines += [markdown_table(results["table"]), ""]
    note = results.get("metrics_note", "")
    lines += [f"{note} {_timing_sentence(results)}".strip()]
    lines += _comparison_lines(results)
    lines += ["", "| Variant | Fit time (s) |", "|---|---:|"]
    lines += [f"| {v['name']} | {v['fit_seconds']:.1f} |" for v in results["variants"]]
    if results.get("wandb_group"):
        lines += ["", f"W&B group: `{results['wandb_group']}`"]
    lines += ["", "## Plots", ""]
    for key, name in results["plots"].items():
        lines += [f"![{captions.get(key, key)}]({name})", ""]
    return "\n".join(lines)
