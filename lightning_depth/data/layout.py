"""What every dataset is made of, whatever the dataset and wherever its files are.

- A :class:`Layout` (one per dataset: ``diode.DIODELayout``, ``monkaa.MonkaaLayout``) knows
  how a sample's files are named and lie under a root: it lists the samples of a *source* and
  reads and checks one sample into numpy arrays.
- A *source* holds the files: a :class:`Folder`, or the original tar archives read in place
  (:class:`~lightning_depth.data.archive.ArchiveSet`). Sources know nothing of datasets.
- A :class:`SampleTransform` (one per dataset) turns what a layout reads into a *record*
  (what ``lightning_depth prepare`` stores in shards) and a record into the tensors the
  network gets (resize, crop, flip, normalise).

A sample is a tuple of paths: absolute ``Path`` s in a folder, archive member names
(``PurePosixPath``) in archives; the first is the sample's main file (its image).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path, PurePath
from stat import S_ISREG
from typing import Iterator, Optional, Protocol, Sequence, Union

import numpy as np
import torch

from lightning_depth.io.errors import DataError

__all__ = ["Folder", "Layout", "Sample", "SampleTransform", "Source", "check_pair_sizes"]

PathLike = Union[str, os.PathLike]
Sample = tuple[PurePath, ...]


class Source(Protocol):
    """Where samples are read from (:class:`Folder`, ``archive.ArchiveSet``)."""

    #: what one of its files is called in messages: ``"file"``, ``"member"``
    noun: str

    def describe(self) -> str:
        """``"root <folder>"``, ``"archives <a>, <b>"``: the subject of a message."""

    def empty_state(self, what: str) -> str:
        """Why nothing was found: ``"does not exist"``, ``"holds no <what>"``."""

    def location(self, pattern: str) -> str:
        """Where a root-relative glob ``pattern`` was searched, for messages."""

    def glob(self, patterns: Sequence[str]) -> list[PurePath]:
        """The paths matching any root-relative ``pattern``, sorted."""

    def exists(self, path: PurePath) -> bool:
        """Whether ``path`` (as returned by :meth:`glob`, or built from one) is a file."""

    def where(self, path: PurePath) -> str:
        """``path`` as a message names it."""

    def identity(self) -> str:
        """What the source is, the same from any working directory (keys the check cache)."""

    def stamp(self, path: PurePath) -> Optional[list[int]]:
        """Numbers that change when file ``path`` changes (size, modification time, ...);
        ``None`` when it is missing."""

    def local(self, paths: Sequence[PurePath]) -> contextlib.AbstractContextManager[list[Path]]:
        """Readable local files of ``paths``; errors raised inside name ``paths``."""


class Folder:
    """A folder of extracted files (the source ``"folder"``).

    Args:
        root: the folder; paths it lists are ``root / <relative path>`` (absolute when
            ``root`` is). Reading takes paths as they are.
    """

    noun = "file"

    def __init__(self, root: PathLike = ".") -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"root {self.root}"

    def empty_state(self, what: str) -> str:
        return "does not exist" if not self.root.exists() else f"holds no {what}"

    def location(self, pattern: str) -> str:
        return str(self.root / pattern)

    def glob(self, patterns: Sequence[str]) -> list[PurePath]:
        return sorted(path for pattern in patterns for path in self.root.glob(pattern))

    def exists(self, path: PurePath) -> bool:
        return Path(path).is_file()

    def where(self, path: PurePath) -> str:
        return str(path)

    def identity(self) -> str:
        return f"folder {self.root.resolve()}"

    def stamp(self, path: PurePath) -> Optional[list[int]]:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return [stat.st_size, stat.st_mtime_ns] if S_ISREG(stat.st_mode) else None

    @contextlib.contextmanager
    def local(self, paths: Sequence[PurePath]) -> Iterator[list[Path]]:
        yield [Path(p) for p in paths]


class Layout:
    """A dataset's on-disk layout: list the samples of a source, read and check one.

    Subclasses set :attr:`name`, :attr:`description`, :attr:`files` and :attr:`empty`, and
    implement :meth:`patterns`, :meth:`companions` and :meth:`read`.
    """

    #: the dataset's name in messages
    name: str = ""
    #: the layout in words, for messages: ``<root>/<split>/...``
    description: str = ""
    #: what each file of a sample is, main file first: ``("image", "depth", "depth mask")``
    files: tuple[str, ...] = ()
    #: what a source without samples holds none of
    empty: str = "samples"

    def patterns(self) -> list[str]:
        """Root-relative glob patterns of the samples' main files."""
        raise NotImplementedError

    def companions(self, main: PurePath) -> tuple[PurePath, ...]:
        """The other files of the sample whose main file is ``main``, in :attr:`files` order."""
        raise NotImplementedError

    def read(self, paths: Sequence[PathLike]) -> dict[str, np.ndarray]:
        """Read and check the local files of one sample (in :attr:`files` order).

        Raises:
            DataError: a file is missing, unreadable or invalid, or the files disagree (the
                message names the files).
        """
        raise NotImplementedError

    def check(self, paths: Sequence[PathLike]) -> None:
        """Check the local files of one sample as :meth:`read` does, as cheaply as possible
        (the pre-flight check, :mod:`~lightning_depth.data.check`, runs it on every sample).
        Subclasses skip what costs and cannot fail (decoding images whose headers and
        checksums are sound); the default reads the sample.

        Raises:
            DataError: as :meth:`read`.
        """
        self.read(paths)

    def missing(self, source: Source, main: PurePath, path: PurePath, what: str) -> str:
        """The message for file ``path`` (a ``what``) of the sample whose main file is
        ``main``, missing from ``source``."""
        return (
            f"missing {what} {source.noun} {source.where(path)} for {self.files[0]} "
            f"{source.where(main)}"
        )

    def name_of(self, sample: Sample) -> str:
        """The sample's name (outputs and batches carry it): its main file's stem."""
        return sample[0].stem

    def list(self, source: Source, missing: str = "error") -> list[Sample]:
        """The samples of ``source``, sorted by main file.

        Args:
            source: where to look.
            missing: ``"error"``: a sample that lacks one of its files is an error;
                ``"keep"``: it is listed all the same (the pre-flight check reports it, with
                every other bad sample, and the split does not depend on it).

        Raises:
            DataError: no sample is found (naming where it looked and the expected layout),
                or (``missing="error"``) a sample lacks one of its files (named).
        """
        if missing not in ("error", "keep"):
            raise ValueError(f"missing must be 'error' or 'keep', got {missing!r}")
        mains = source.glob(self.patterns())
        if not mains:
            searched = ", ".join(source.location(p) for p in self.patterns())
            raise DataError(
                f"{self.name} {source.describe()} {source.empty_state(self.empty)}: searched "
                f"{searched}; expected the layout {self.description}"
            )
        samples = []
        for main in mains:
            others = self.companions(main)
            if missing == "error":
                for path, what in zip(others, self.files[1:]):
                    if not source.exists(path):
                        raise DataError(self.missing(source, main, path, what))
            samples.append((main, *others))
        return samples

    def has_samples(self, source: Source) -> bool:
        """Whether ``source`` holds any sample's main file (nothing is checked)."""
        return bool(source.glob(self.patterns()))


class SampleTransform(Protocol):
    """A dataset's transform, shared by the folder, archive and shard sources."""

    #: the record's arrays: name -> (dtype, ndim); shards are checked against it
    fields: dict[str, tuple[type, int]]

    def record(self, arrays: dict[str, np.ndarray], files: Sequence[str]) -> dict[str, np.ndarray]:
        """What a layout read -> the record shards store (``files`` name the sample's files
        for messages)."""

    def __call__(
        self,
        record: dict[str, np.ndarray],
        generator: Optional[torch.Generator] = None,
        where: str = "sample",
    ) -> dict[str, torch.Tensor]:
        """A record -> the item's tensors; random augmentation is drawn from ``generator``
        (``None``: torch's global RNG); ``where`` names the sample in messages."""


def check_pair_sizes(
    left_path: PathLike,
    left_size: Sequence[int],
    right_path: PathLike,
    right_size: Sequence[int],
    error: type[DataError] = DataError,
) -> None:
    """Raise ``error`` naming both files when a stereo pair's images differ in size."""
    if tuple(left_size) != tuple(right_size):
        h0, w0 = left_size[:2]
        h1, w1 = right_size[:2]
        raise error(
            f"left image {left_path} is {h0}x{w0} but right image {right_path} is {h1}x{w1} (HxW)"
        )
