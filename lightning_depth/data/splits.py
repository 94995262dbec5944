"""The seeded train/val/test split of every DataModule (and of ``lightning_depth prepare``).

One rule for every dataset: ``val_fraction`` and ``test_fraction`` of the units (samples,
or whole groups such as scenes) are held out and train keeps the rest. Counts are the
largest-remainder rounding of the exact shares (so they always sum to the number of units),
ties going to the larger share; a held-out part asked for gets at least one unit, taken from
train, and train must keep one. The units are then drawn by one seeded permutation: its
first units are the test split, the next ones validation, the rest train (so changing
``val_fraction`` leaves the test split as it was). The split depends only on the sorted
sample list and the seed, so it is the same on every machine, rank and source.
"""

from __future__ import annotations

import math
from typing import Callable, Hashable, Optional, Sequence, TypeVar

import numpy as np

from lightning_depth.io.errors import DataError

__all__ = ["check_fractions", "split_counts", "split_samples"]

T = TypeVar("T")


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise ``ValueError`` unless ``0 <= val_fraction``, ``0 <= test_fraction`` and their sum
    leaves training data (``< 1``)."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1):
        raise ValueError(
            f"need 0 <= val_fraction < 1 and 0 <= test_fraction < 1, got {val_fraction} and "
            f"{test_fraction}"
        )
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must leave training data, got "
            f"{val_fraction} + {test_fraction}"
        )


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    # round() guards the exact shares against float noise such as 0.7 * 10 = 7.000000000000001
    exact = [round(f * n, 9) for f in fractions]
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(3), key=lambda i: (counts[i] - exact[i], -fractions[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    for i in (1, 2):
        if fractions[i] > 0 and counts[i] == 0:
            counts[i], counts[0] = 1, counts[0] - 1
    return counts


def split_counts(
    n: int, val_fraction: float, test_fraction: float, unit: str = "sample"
) -> list[int]:
    """Sizes ``[train, val, test]`` of a split of ``n`` units (see the module docstring).

    Example:
        >>> split_counts(10, val_fraction=0.1, test_fraction=0.1)
        [8, 1, 1]

    Raises:
        ValueError: fractions out of range (:func:`check_fractions`).
        DataError: too few units for a non-empty train split and each held-out split asked
            for; the message names the smallest number that works.
    """
    check_fractions(val_fraction, test_fraction)
    fractions = (1 - val_fraction - test_fraction, val_fraction, test_fraction)
    counts = _counts(n, fractions)
    if counts[0] < 1:
        need = n + 1
        while _counts(need, fractions)[0] < 1:
            need += 1
        parts = sum(f > 0 for f in fractions)
        raise DataError(
            f"cannot split {n} {unit}s into {parts} non-empty parts (val_fraction="
            f"{val_fraction}, test_fraction={test_fraction}): {n} {unit}s are too few; need "
            f"at least {need}"
        )
    return counts


def split_samples(
    samples: Sequence[T],
    val_fraction: float,
    test_fraction: float,
    seed: int = 42,
    group_by: Optional[Callable[[T], Hashable]] = None,
    unit: str = "sample",
) -> tuple[list[T], list[T], list[T]]:
    """Seeded disjoint train/val/test split of ``samples`` (see the module docstring).

    Args:
        samples: the samples, sorted (folder paths, archive members: any items).
        val_fraction: share of units for validation (0: none).
        test_fraction: share of units for test (0: none).
        seed: seed of the permutation.
        group_by: the unit a sample belongs to (e.g. its scene): every group falls whole in
            one split, and fractions count groups. ``None``: each sample is its own unit.
        unit: what a unit is called in messages (``"sample"``, ``"frame"``, ``"scene"``).

    Returns:
        ``(train, val, test)``, each in the order of ``samples``.

    Raises:
        ValueError, DataError: as :func:`split_counts`.
    """
    if group_by is None:
        groups = [[i] for i in range(len(samples))]
    else:
        members: dict[Hashable, list[int]] = {}
        for i, sample in enumerate(samples):
            members.setdefault(group_by(sample), []).append(i)
        groups = [members[key] for key in sorted(members)]
    _, n_val, n_test = split_counts(len(groups), val_fraction, test_fraction, unit)
    order = np.random.default_rng(seed).permutation(len(groups))

    def gather(chosen: np.ndarray) -> list[T]:
        return [samples[i] for i in sorted(i for g in chosen for i in groups[g])]

    return (
        gather(order[n_test + n_val :]),
        gather(order[n_test : n_test + n_val]),
        gather(order[:n_test]),
    )
