"""The metrics of the real stereo benchmarks, by name: Middlebury 2014's bad-2.0 and bad-4.0 and
KITTI's D1-all, each over all pixels with ground truth and over the non-occluded ones.

A DataModule of a benchmark names the metrics its benchmark reports (its
``benchmark_metrics``) and gives, besides the disparity, the non-occlusion mask under the batch
key :data:`NONOCCLUDED_KEY`; the stereo task then builds them with :func:`benchmark_metric` and
reports them next to its own (``test/bad2``, ``test/d1_noc``, ...).

=============  ============================================================  ==============
key            bad pixel (a hole, i.e. a non-finite prediction, always is)    pooling
=============  ============================================================  ==============
``bad2``       ``|d - gt| > 2`` px, every pixel with ground truth            mean of images
``bad4``       ``|d - gt| > 4`` px, every pixel with ground truth            mean of images
``bad2_noc``   ``|d - gt| > 2`` px, non-occluded pixels                       mean of images
``bad4_noc``   ``|d - gt| > 4`` px, non-occluded pixels                       mean of images
``d1_all``     ``|d - gt| > 3`` px and ``> 5 %`` of gt, every pixel with gt  all pixels
``d1_noc``     the same, non-occluded pixels                                  all pixels
=============  ============================================================  ==============

Middlebury averages per-scene values (its official table weighs some scenes half; here every
scene weighs the same) and its thresholds are in pixels of the images evaluated (the official
table scales half- and quarter-resolution results up to full resolution first, so its bad-2.0
at quarter resolution is 0.5 px here). KITTI's devkit pools the pixels of all images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from lightning_depth.metrics.stereo import BadPixelRate

__all__ = [
    "BENCHMARK_METRICS",
    "NONOCCLUDED_KEY",
    "BenchmarkMetric",
    "benchmark_metric",
    "check_benchmark_metrics",
]

#: batch key of the bool ``(B, 1, H, W)`` non-occlusion mask (True: visible in both views and
#: with ground truth); a sample without a mask gives all False, and counts in no ``*_noc``
NONOCCLUDED_KEY = "nonoccluded"


@dataclass(frozen=True)
class BenchmarkMetric:
    """A benchmark metric: its key, its label in reports and its :class:`BadPixelRate`
    settings."""

    key: str
    label: str
    threshold: float
    relative: float = 0.0
    region: str = "all"
    reduction: str = "sample"


#: every benchmark metric by key (see the module docstring)
BENCHMARK_METRICS: dict[str, BenchmarkMetric] = {
    m.key: m
    for m in (
        BenchmarkMetric("bad2", "bad-2.0 all (%)", 2.0),
        BenchmarkMetric("bad4", "bad-4.0 all (%)", 4.0),
        BenchmarkMetric("bad2_noc", "bad-2.0 noc (%)", 2.0, region="nonoccluded"),
        BenchmarkMetric("bad4_noc", "bad-4.0 noc (%)", 4.0, region="nonoccluded"),
        BenchmarkMetric("d1_all", "D1-all (%)", 3.0, 0.05, reduction="pixel"),
        BenchmarkMetric("d1_noc", "D1-noc (%)", 3.0, 0.05, "nonoccluded", reduction="pixel"),
    )
}


def check_benchmark_metrics(keys: Iterable[str]) -> tuple[str, ...]:
    """``keys`` as a tuple, each checked.

    Raises:
        ValueError: a key that is not in :data:`BENCHMARK_METRICS` (the message lists them).
    """
    keys = tuple(keys)
    unknown = [k for k in keys if k not in BENCHMARK_METRICS]
    if unknown:
        raise ValueError(
            f"unknown benchmark metrics {unknown}; known: {', '.join(BENCHMARK_METRICS)}"
        )
    return keys


def benchmark_metric(key: str) -> BadPixelRate:
    """A fresh :class:`BadPixelRate` of the benchmark metric ``key``.

    Raises:
        ValueError: an unknown key.
    """
    (key,) = check_benchmark_metrics([key])
    m = BENCHMARK_METRICS[key]
    return BadPixelRate(m.threshold, m.relative, region=m.region, reduction=m.reduction)
