"""The ablation report's PNG plots. They read the results dict only (see
:func:`~lightning_depth.ablation.report.write_report`): the task's loss curve keys, its
primary headline and its picture roles come with the results, so any task plots."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

__all__ = [
    "plot_box",
    "plot_losses",
    "plot_qualitative",
    "plot_sample_bars",
    "write_plots",
]

#: test samples in the per-sample bars.
SAMPLE_BARS = 8


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def loss_keys(results: dict[str, Any]) -> list[str]:
    """The tasks' ``loss_curve_keys`` of every variant, in order of first appearance."""
    keys: dict[str, None] = {}
    for v in results["variants"]:
        keys.update(dict.fromkeys(v.get("loss_curve_keys", ["loss"])))
    return list(keys)


def plot_losses(results: dict[str, Any], path: Path) -> Path:
    """Training and validation loss per epoch, one line per variant and one row per loss
    curve key (e.g. the total, then per-stage terms)."""
    plt = _pyplot()
    variants = results["variants"]
    keys = loss_keys(results)
    fig, axes = plt.subplots(
        len(keys), 2, figsize=(10, 2.6 * len(keys)), squeeze=False, sharex=True
    )
    for r, key in enumerate(keys):
        for c, split in enumerate(("train", "val")):
            ax = axes[r][c]
            for i, v in enumerate(variants):
                curve = v["curves"].get(f"{split}/{key}")
                if curve:
                    # fixed colour per variant: a variant may lack a row's curve
                    ax.plot(
                        curve["epoch"],
                        curve["value"],
                        marker="o",
                        ms=3,
                        color=f"C{i}",
                        label=v["name"],
                    )
            ax.set_title(f"{split} {key.replace('_', ' ')}", fontsize=10)
            ax.set_ylabel("loss")
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    handles = [plt.Line2D([], [], color=f"C{i}", marker="o") for i in range(len(variants))]
    axes[0][0].legend(handles, [v["name"] for v in variants], fontsize=8)
    return _save(fig, path)


def plot_box(results: dict[str, Any], key: str, label: str, path: Path, scale: float = 1.0) -> Path:
    """Box plot of a per-sample test metric, one box per variant (NaN samples dropped)."""
    plt = _pyplot()
    variants = results["variants"]
    data = [
        [scale * x for x in v["per_sample"].get(key, []) if not math.isnan(x)] or [math.nan]
        for v in variants
    ]
    fig, ax = plt.subplots(figsize=(1.6 * len(variants) + 2, 4))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(variants) + 1), [v["name"] for v in variants], rotation=15)
    ax.set_ylabel(label)
    ax.set_title(f"per-sample {label} on the test split")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_sample_bars(
    results: dict[str, Any], key: str, label: str, count: int, path: Path, scale: float = 1.0
) -> Path:
    """Grouped bars of a per-sample test metric for the first ``count`` test samples."""
    plt = _pyplot()
    variants = results["variants"]
    names = variants[0]["per_sample"]["names"][:count]
    width = 0.8 / len(variants)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(names) + 2), 4))
    for i, v in enumerate(variants):
        values = [scale * val for val in v["per_sample"].get(key, [])[: len(names)]]
        values += [math.nan] * (len(names) - len(values))
        ax.bar(x + (i - (len(variants) - 1) / 2) * width, values, width, label=v["name"])
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set_ylabel(label)
    ax.set_title(f"{label} of the first {len(names)} test samples")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_qualitative(results: dict[str, Any], path: Path) -> Optional[Path]:
    """One row per kept test sample: the inputs and the target (of the first variant's
    pictures), then each variant's final prediction, as the tasks' ``picture_roles`` name
    them. ``None`` when no pictures were kept."""
    variants = results["variants"]
    if not variants[0].get("pictures"):
        return None
    plt = _pyplot()
    roles = variants[0]["picture_roles"]
    inputs, target = list(roles["inputs"]), roles["target"]
    rows = len(variants[0]["pictures"])
    titles = [*inputs, target, *[v["name"] for v in variants]]
    height, width = variants[0]["pictures"][0][target].shape[:2]
    fig, axes = plt.subplots(
        rows,
        len(titles),
        figsize=(2.4 * len(titles), 2.4 * rows * height / width + 0.4),
        squeeze=False,
    )
    for r in range(rows):
        reference = variants[0]["pictures"][r]
        images = [reference[k] for k in inputs] + [reference[target]]
        images += [v["pictures"][r][v["picture_roles"]["prediction"]] for v in variants]
        for c, image in enumerate(images):
            ax = axes[r][c]
            ax.imshow(image)
            ax.set_axis_off()
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
    return _save(fig, path)


def write_plots(results: dict[str, Any], out: Path) -> list[tuple[str, str, str]]:
    """Every plot of the report, written to ``out``.

    Returns:
        ``(key, file name, caption)`` per plot: ``losses``, ``<primary>_box`` and
        ``<primary>_samples`` (the primary headline, e.g. ``ssim_box``), ``qualitative``.
    """
    keys = loss_keys(results)
    terms = f" ({', '.join(k.replace('_', ' ') for k in keys)})" if len(keys) > 1 else ""
    plots = [
        (
            "losses",
            plot_losses(results, out / "losses.png"),
            f"Training and validation loss per epoch{terms}",
        )
    ]
    headlines = results.get("headlines") or []
    if headlines:
        primary = headlines[0]
        key, label, scale = primary["key"], primary["label"], primary.get("scale", 1.0)
        slug = re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_") or "primary"
        box = plot_box(results, key, label, out / f"{slug}_box.png", scale=scale)
        bars = plot_sample_bars(
            results, key, label, SAMPLE_BARS, out / f"{slug}_samples.png", scale=scale
        )
        plots += [
            (f"{slug}_box", box, f"Per-sample test {label}"),
            (f"{slug}_samples", bars, f"Test {label} of the first samples"),
        ]
    qualitative = plot_qualitative(results, out / "qualitative.png")
    if qualitative is not None:
        plots.append(
            (
                "qualitative",
                qualitative,
                "Test samples: inputs, target and each variant's prediction",
            )
        )
    return [(key, path.name, caption) for key, path, caption in plots]
