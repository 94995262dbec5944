"""The pre-flight data check: every sample checked before the first training step.

A bad file (a NaN depth, a truncated PNG, a malformed PFM, a missing mask) would otherwise
surface only when the sampler reaches it, possibly hours into an epoch. :func:`scan` runs the
layout's :meth:`~lightning_depth.data.layout.Layout.check` (the layout's own checks and
messages, with image headers and checksums verified instead of decoding the pixels) on every
sample, in worker processes, and :class:`ScanResult` lists every bad sample at once.

Outcomes are cached by the path, size and modification time of each file of a sample (one JSON
file per source and layout, in ``<cache_dir>/checks/`` or ``~/.cache/lightning_depth/checks/``,
never in the data folder), so a second run only stats the files; a sample is read again when
one of its files changes, or when :data:`CHECK_VERSION` changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from PIL import Image

from lightning_depth.data.layout import Folder, Layout, Sample, Source
from lightning_depth.io.errors import DataError
from lightning_depth.io.images import _RGB_CONVERTIBLE, _require_file

__all__ = [
    "CHECK_VERSION",
    "ON_BAD_SAMPLES",
    "ScanResult",
    "default_check_dir",
    "probe_rgb",
    "problem_kind",
    "scan",
    "write_report",
]

PathLike = Union[str, os.PathLike]

#: bump when a layout's checks change: cached outcomes are then computed again
CHECK_VERSION = 1
#: what a DataModule does with bad samples: stop with one error, or leave them out
ON_BAD_SAMPLES = ("error", "exclude")
#: bad files named in an error message (all are counted, and all are in a report)
MAX_LISTED = 20
#: fewer samples to read than this are read in this process (a pool costs ~0.1 s to start)
PARALLEL_FROM = 64

#: problem kinds and the phrases of the readers' messages (``io``, the layouts) that mark
#: them, first match wins
PROBLEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("missing file", ("missing ", "does not exist", "is a folder, not a file")),
    ("NaN/inf values", (" NaN ", "non-finite")),
    ("negative values", ("negative values",)),
    ("bad PFM", ("PFM",)),
    ("corrupt image", ("is corrupt or truncated", "pillow mode")),
    ("unreadable array", (".npy array", "expected a numeric array")),
    ("wrong shape", ("has shape", "single-channel")),
    ("sizes differ", ("must match", " but ")),
)

_log = logging.getLogger(__name__)


def default_check_dir(cache_dir: Optional[PathLike] = None) -> Path:
    """Where check outcomes are cached: ``<cache_dir>/checks``, else
    ``~/.cache/lightning_depth/checks``."""
    if cache_dir:
        return Path(cache_dir) / "checks"
    return Path.home() / ".cache" / "lightning_depth" / "checks"


def probe_rgb(path: PathLike) -> tuple[int, int]:
    """The size of an image file that :func:`~lightning_depth.io.images.read_rgb` would read,
    checked without decoding its pixels where the format allows (PNG: every chunk's checksum
    and the end of the file are verified).

    Returns:
        ``(H, W)``.

    Raises:
        DataError: as ``read_rgb``: missing, corrupt or truncated, or not an 8-bit image.
    """
    path = Path(path)
    _require_file(path, "image")
    try:
        with Image.open(path) as img:
            mode, (width, height) = img.mode, img.size
            if mode not in _RGB_CONVERTIBLE:
                raise DataError(
                    f"image {path} has pillow mode {mode!r}; expected an 8-bit RGB, RGBA, "
                    "grey or palette image"
                )
            if img.format == "PNG":
                img.verify()  # reads the chunks and their CRCs, not the pixels
            else:
                img.load()  # other formats verify nothing: decode
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"image {path} is corrupt or truncated: cannot decode it ({e})") from e
    return height, width


def problem_kind(message: str) -> str:
    """The kind of problem a reader's message describes (see :data:`PROBLEMS`), ``"other"``
    if none matches."""
    for kind, phrases in PROBLEMS:
        if any(phrase in message for phrase in phrases):
            return kind
    return "other"


@dataclass
class ScanResult:
    """What :func:`scan` found.

    Attributes:
        what: the subject of messages: ``"DIODE root /data/diode"``.
        total: samples checked (cached outcomes included).
        bad: bad sample -> its problem (the reader's message, naming the file), in sample
            order.
        read: samples read in this scan (the others' outcomes came from the cache).
        seconds: time the scan took.
        cache_file: where outcomes are cached (``None``: not cached).
    """

    what: str
    total: int
    bad: dict[Sample, str] = field(default_factory=dict)
    read: int = 0
    seconds: float = 0.0
    cache_file: Optional[Path] = None

    @property
    def cached(self) -> int:
        """Samples whose outcome came from the cache."""
        return self.total - self.read

    def counts(self) -> dict[str, int]:
        """Bad samples per problem kind, most frequent first."""
        return dict(Counter(problem_kind(p) for p in self.bad.values()).most_common())

    def message(self) -> str:
        """Every bad sample counted by problem, the first :data:`MAX_LISTED` named."""
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts().items())
        problems = list(self.bad.values())
        lines = [
            f"{self.what}: {len(problems)} of {self.total} samples are bad ({counts}); "
            + ("they are:" if len(problems) <= MAX_LISTED else f"the first {MAX_LISTED}:")
        ]
        lines += [f"  {problem}" for problem in problems[:MAX_LISTED]]
        if len(problems) > MAX_LISTED:
            lines.append(f"  ... and {len(problems) - MAX_LISTED} more")
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: how many samples, how many bad, how fast."""
        return (
            f"data check of {self.what}: {self.total} samples, {len(self.bad)} bad, in "
            f"{self.seconds:.2f} s ({self.read} read, {self.cached} from the cache)"
        )


def _cache_key(layout: Layout, source: Source) -> str:
    identity = f"{type(layout).__qualname__}|{layout.name}|{source.identity()}"
    return hashlib.sha1(identity.encode()).hexdigest()[:20]


def _load_cache(path: Optional[Path], header: dict) -> dict[str, list]:
    if path is None or not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a damaged cache is only a slower check
    if not isinstance(saved, dict) or any(saved.get(k) != v for k, v in header.items()):
        return {}
    samples = saved.get("samples")
    return samples if isinstance(samples, dict) else {}


def _save_cache(path: Optional[Path], header: dict, entries: dict[str, list]) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # write then rename: a process reading it (another rank) never sees half a file
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({**header, "samples": entries}))
        partial.replace(path)
    except OSError as e:
        _log.warning(
            "data check: cannot write the check cache %s (%s); the next run checks again", path, e
        )


def _check_one(layout: Layout, source: Source, sample: Sample) -> Optional[str]:
    try:
        with source.local(sample) as files:
            layout.check(files)
    except DataError as e:
        return str(e)
    except OSError as e:
        return f"{layout.files[0]} {source.where(sample[0])}: cannot read the sample ({e})"
    return None


def _check_all(layout: Layout, source: Source, samples: Sequence[Sample]) -> list[Optional[str]]:
    return [_check_one(layout, source, sample) for sample in samples]


def available_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _check_many(
    layout: Layout, source: Source, samples: list[Sample], workers: int
) -> list[Optional[str]]:
    """Problems of ``samples`` (``None``: good), in their order."""
    if workers <= 1 or len(samples) < PARALLEL_FROM or not isinstance(source, Folder):
        # Archives: in this process, in archive order (a compressed archive is one pass).
        position = getattr(source, "position", None)
        order = list(range(len(samples)))
        if position is not None:
            order.sort(key=lambda i: position(samples[i][0]))
        problems: list[Optional[str]] = [None] * len(samples)
        for i, problem in zip(order, _check_all(layout, source, [samples[i] for i in order])):
            problems[i] = problem
        return problems
    n_chunks = min(len(samples), workers * 4)
    bounds = [len(samples) * k // n_chunks for k in range(n_chunks + 1)]
    chunks = [samples[a:b] for a, b in zip(bounds, bounds[1:])]
    # fork: the workers start at once, without importing the package again
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork") if "fork" in methods else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        results = pool.map(_check_all, repeat(layout), repeat(source), chunks)
        return [problem for chunk in results for problem in chunk]


def scan(
    layout: Layout,
    source: Source,
    samples: Sequence[Sample],
    check_dir: Optional[PathLike] = None,
    workers: Optional[int] = None,
) -> ScanResult:
    """Check every sample of ``samples`` (listed from ``source`` by ``layout``, possibly with
    missing files, see ``Layout.list(missing="keep")``).

    Args:
        layout: the dataset's layout; its ``check`` judges a sample.
        source: where the files are.
        samples: the samples to check.
        check_dir: where outcomes are cached (see :func:`default_check_dir`; ``None``: not
            cached).
        workers: worker processes for a folder (default: one per available CPU).

    Returns:
        every bad sample with its problem; nothing is raised for bad samples.
    """
    start = time.perf_counter()
    cache_file = None
    if check_dir is not None:
        cache_file = Path(check_dir) / f"{_cache_key(layout, source)}.json"
    header = {"version": CHECK_VERSION, "layout": layout.name, "source": source.identity()}
    entries = _load_cache(cache_file, header)
    outcome: dict[Sample, Optional[str]] = {}
    todo: list[tuple[Sample, str, list]] = []
    for sample in samples:
        key = str(sample[0])  # the main file as listed
        stamps = [source.stamp(path) for path in sample]
        saved = entries.get(key)
        if isinstance(saved, list) and len(saved) == 2 and saved[0] == stamps:
            outcome[sample] = saved[1]
        elif None in stamps:  # nothing to read: a file is missing
            i = stamps.index(None)
            what = layout.files[i] if i < len(layout.files) else "file"
            problem = (
                layout.missing(source, sample[0], sample[i], what)
                if i
                else f"{what} {source.noun} {source.where(sample[0])} does not exist"
            )
            outcome[sample] = problem
            entries[key] = [stamps, problem]
        else:
            todo.append((sample, key, stamps))
    problems = _check_many(layout, source, [t[0] for t in todo], workers or available_cpus())
    for (sample, key, stamps), problem in zip(todo, problems):
        outcome[sample] = problem
        entries[key] = [stamps, problem]
    if todo:
        _save_cache(cache_file, header, entries)
    return ScanResult(
        what=f"{layout.name} {source.describe()}",
        total=len(samples),
        bad={s: outcome[s] for s in samples if outcome[s] is not None},
        read=len(todo),
        seconds=time.perf_counter() - start,
        cache_file=cache_file,
    )


def write_report(
    result: ScanResult,
    parts: Mapping[str, Sequence[Sample]],
    layout: Layout,
    source: Source,
    path: PathLike,
) -> Path:
    """Write the bad samples of ``parts`` (split name -> samples) as JSON to ``path``: per
    sample its split, name, files, problem kind and message; returns ``path``."""
    rows = [
        {
            "split": split,
            "sample": layout.name_of(sample),
            "files": [source.where(p) for p in sample],
            "kind": problem_kind(result.bad[sample]),
            "problem": result.bad[sample],
        }
        for split, samples in parts.items()
        for sample in samples
        if sample in result.bad
    ]
    report = {
        "source": result.what,
        "checked": result.total,
        "excluded": len(rows),
        "per_split": dict(Counter(row["split"] for row in rows)),
        "per_problem": dict(Counter(row["kind"] for row in rows).most_common()),
        "samples": rows,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # DDP processes write it too
    partial.write_text(json.dumps(report, indent=1) + "\n")
    partial.replace(path)
    return path
