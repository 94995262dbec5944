"""Reading DIODE and Monkaa samples from their original tar archives, without extracting them.

The published archives: DIODE's ``val.tar.gz`` / ``train.tar.gz`` (members
``val/indoors/scene_XXXXX/scan_XXXXX/<id>.png``, ``<id>_depth.npy``, ``<id>_depth_mask.npy``),
Monkaa's ``frames_cleanpass.tar`` (members ``frames_cleanpass/<scene>/{left,right}/NNNN.png``)
and ``disparity.tar.bz2`` (members ``disparity/<scene>/{left,right}/NNNN.pfm``).

Trade-off of reading in place: an archive is indexed once (one pass over its headers) and
each member is then read at its recorded offset.

- Uncompressed ``.tar``: a seek and a read per member, as fast as a folder (Monkaa's frames
  archive is published uncompressed).
- ``.tar.gz`` / ``.tar.bz2``: gzip and bzip2 streams cannot be entered in the middle, so the
  index pass decompresses the whole archive once, and a member is reached by decompressing
  forward from the current position; a read *behind* the current position restarts from the
  beginning. Reading members in archive order (evaluation, ``prepare``) is one sequential
  pass; shuffled training on a compressed archive costs on average half an archive
  decompression per sample, so it only suits small archives (measured in
  ``benchmarks/bench_data.py``). For training, convert once with
  ``lightning_depth prepare`` (shards) or recompress to an uncompressed ``.tar``.

Members are decoded by the same readers as extracted files (:func:`~lightning_depth.io.images.
read_rgb`, ``read_npy``, ``read_pfm``), so a sample from an archive is bit-identical to the same
sample from a folder; errors name ``<archive>:<member>``.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import os
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Iterator, Optional, Sequence, Union

import torch

from lightning_depth.data.diode import (
    DEPTH_SUFFIX,
    MASK_SUFFIX,
    MonoDepthFilesDataset,
    load_diode_sample,
)
from lightning_depth.data.loaders import Item, split_item
from lightning_depth.data.monkaa import (
    DISPARITY_DIR,
    FRAMES_DIR,
    MonkaaDataset,
    MonkaaError,
    read_monkaa_files,
)
from lightning_depth.data.transforms import hflip as flip_lr
from lightning_depth.io.errors import DataError

PathLike = Union[str, os.PathLike]

# Decoding a member through a small temporary file lets every member go through the very
# readers used for extracted files (same validation, same bits); /dev/shm keeps it in memory.
_SPOOL_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


def _normalise(name: str) -> str:
    """Member name without a leading ``./`` (tar files made with ``tar -C dir .`` have it)."""
    return str(PurePosixPath(name)).lstrip("/") if name not in (".", "./") else ""


def _compression(path: Path) -> Optional[str]:
    """``"gz"``, ``"bz2"`` or ``None``, from the magic bytes (not the file name)."""
    with open(path, "rb") as f:
        magic = f.read(3)
    if magic[:2] == b"\x1f\x8b":
        return "gz"
    if magic == b"BZh":
        return "bz2"
    return None


def _open_raw(path: Path) -> IO[bytes]:
    """Seekable decompressed view of an archive."""
    compression = _compression(path)
    if compression == "gz":
        return gzip.open(path, "rb")
    if compression == "bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


class TarArchive:
    """One tar archive (plain, gzip or bzip2), indexed once, members read by name.

    The index (member name -> data offset and size) is built at construction, which for a
    compressed archive means decompressing it once; with ``index_dir`` it is saved there (keyed
    by the archive's name, size and modification time) and later constructions load it (the
    DataModules build it in ``prepare_data``, so the DDP processes of a run load it). The open file handle is per process (reopened after a
    fork), so a DataLoader worker never shares a file position with another.

    Args:
        path: the archive.
        index_dir: folder to keep the index in (``None``: index on every construction).

    Raises:
        DataError: the archive is missing, not a tar archive, or truncated (the message names
            the archive and the last member read).
    """

    def __init__(self, path: PathLike, index_dir: Optional[PathLike] = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            reason = "is a folder, not a file" if self.path.exists() else "does not exist"
            raise DataError(f"archive {self.path} {reason}")
        self.compression = _compression(self.path)
        stat = self.path.stat()
        saved = None
        if index_dir is not None:
            saved = Path(index_dir) / f"{self.path.name}.{stat.st_size}.{stat.st_mtime_ns}.json"
        if saved is not None and saved.is_file():
            self.members = {k: tuple(v) for k, v in json.loads(saved.read_text()).items()}
        else:
            self.members = self._index()
            if saved is not None:
                saved.parent.mkdir(parents=True, exist_ok=True)
                # write then rename, so a process reading it never sees half a file
                partial = saved.with_suffix(f".{os.getpid()}.tmp")
                partial.write_text(json.dumps(self.members))
                partial.replace(saved)
        self._file: Optional[IO[bytes]] = None
        self._pid = -1

    def _index(self) -> dict[str, tuple[int, int]]:
        members: dict[str, tuple[int, int]] = {}
        last = "(none)"
        try:
            with tarfile.open(self.path, "r:*") as tar:
                for info in tar:
                    if info.isfile():
                        last = _normalise(info.name)
                        members[last] = (info.offset_data, info.size)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise DataError(
                f"archive {self.path} is not a readable tar archive or is truncated (last "
                f"member read: {last}): {e}"
            ) from e
        return members

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, -1
        return state

    def names(self) -> list[str]:
        """Sorted names of the regular-file members."""
        return sorted(self.members)

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def read(self, name: str) -> bytes:
        """The bytes of member ``name``.

        Raises:
            DataError: no such member, or the archive ends before the member does.
        """
        if name not in self.members:
            raise DataError(f"archive {self.path} has no member {name}")
        offset, size = self.members[name]
        if self._file is None or self._pid != os.getpid():
            self._file = _open_raw(self.path)
            self._pid = os.getpid()
        try:
            self._file.seek(offset)
            data = self._file.read(size)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"archive member {self.path}:{name} cannot be read: {e}") from e
        if len(data) != size:
            raise DataError(
                f"archive member {self.path}:{name} is truncated: {len(data)} of {size} bytes"
            )
        return data


class ArchiveSet:
    """Several archives seen as one tree of members (e.g. Monkaa's frames + disparity).

    Args:
        paths: the archives. A member name found in two archives is an error.
        index_dir: where to keep the archives' indexes (see :class:`TarArchive`).
    """

    def __init__(self, paths: Sequence[PathLike], index_dir: Optional[PathLike] = None) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths:
            raise ValueError("need at least one archive path")
        self.archives = [TarArchive(p, index_dir=index_dir) for p in paths]
        self.owner: dict[str, TarArchive] = {}
        for archive in self.archives:
            for name in archive.members:
                if name in self.owner:
                    raise DataError(
                        f"member {name} is in both {self.owner[name].path} and {archive.path}"
                    )
                self.owner[name] = archive

    def names(self) -> list[str]:
        return sorted(self.owner)

    def __contains__(self, name: str) -> bool:
        return name in self.owner

    def where(self, name: str) -> str:
        """``<archive>:<member>`` for messages."""
        archive = self.owner.get(name)
        return f"{archive.path}:{name}" if archive else f"<no archive>:{name}"

    def read(self, name: str) -> bytes:
        if name not in self.owner:
            listed = ", ".join(str(a.path) for a in self.archives)
            raise DataError(f"no archive among {listed} has member {name}")
        return self.owner[name].read(name)

    @contextlib.contextmanager
    def spooled(self, names: Sequence[str]) -> Iterator[list[Path]]:
        """Members as temporary files (for readers that take paths); errors raised inside
        name ``<archive>:<member>`` instead of the temporary path."""
        with tempfile.TemporaryDirectory(dir=_SPOOL_DIR, prefix="ld_archive_") as tmp:
            paths = []
            for i, name in enumerate(names):
                path = Path(tmp) / f"{i}_{PurePosixPath(name).name}"
                path.write_bytes(self.read(name))
                paths.append(path)
            try:
                yield paths
            except DataError as e:
                message = str(e)
                for path, name in zip(paths, names):
                    message = message.replace(str(path), self.where(name))
                raise type(e)(message) from e


# -- DIODE ---------------------------------------------------------------------------------


def list_diode_archive(
    archives: ArchiveSet,
    splits: Sequence[str] = ("val",),
    scene_types: Sequence[str] = ("indoors", "outdoor"),
) -> list[tuple[str, str, str]]:
    """``(image, depth, mask)`` member triples of DIODE archives, sorted by member name.

    Sorted member names give the same order as :func:`~lightning_depth.data.diode.
    list_diode_samples` on the extracted folder, hence the same seeded split.

    Raises:
        DataError: no image member in the layout, or an image lacks its depth or mask member.
    """
    prefixes = tuple(f"{s}/{t}/" for s in splits for t in scene_types)
    images = []
    for name in archives.names():
        parts = PurePosixPath(name).parts
        if (
            name.startswith(prefixes)
            and name.endswith(".png")
            and len(parts) == 5
            and parts[2].startswith("scene_")
            and parts[3].startswith("scan_")
        ):
            images.append(name)
    if not images:
        listed = ", ".join(str(a.path) for a in archives.archives)
        raise DataError(
            f"DIODE archives {listed} hold no member <split>/<type>/scene_*/scan_*/<id>.png for "
            f"splits {tuple(splits)} and scene types {tuple(scene_types)}"
        )
    triples = []
    for image in images:
        stem = image[: -len(".png")]
        triple = (image, stem + DEPTH_SUFFIX, stem + MASK_SUFFIX)
        for member, what in zip(triple[1:], ("depth", "depth mask")):
            if member not in archives:
                raise DataError(f"missing {what} member {member} for image {archives.where(image)}")
        triples.append(triple)
    return triples


class DIODEArchiveDataset(MonoDepthFilesDataset):
    """DIODE samples read from archives in place; items as :class:`~lightning_depth.data.
    diode.DIODEDataset`'s (bit-identical to the extracted files').

    Args:
        archives: the archive set.
        files: ``(image, depth, mask)`` member triples (from :func:`list_diode_archive`).
        size: output ``(H, W)``.
        hflip: random horizontal flips.
    """

    def __init__(
        self,
        archives: ArchiveSet,
        files: Sequence[tuple[str, str, str]],
        size: tuple[int, int] = (256, 256),
        hflip: bool = False,
    ) -> None:
        super().__init__(files, size=size, hflip=hflip)
        self.archives = archives
        self.members = [tuple(triple) for triple in files]

    def __getitem__(self, item: Item) -> dict:
        index, generator = split_item(item)
        with self.archives.spooled(self.members[index]) as (image, depth, mask):
            sample = load_diode_sample(image, depth, mask, size=self.size)
        if self.hflip and bool(torch.rand((), generator=generator) < 0.5):
            sample["image"], sample["target"], sample["mask"] = flip_lr(
                sample["image"], sample["target"], sample["mask"]
            )
        sample["name"] = self.sample_name(index)
        return sample


# -- Monkaa --------------------------------------------------------------------------------


def list_monkaa_archive(
    archives: ArchiveSet, frames_dir: str = FRAMES_DIR
) -> list[tuple[Path, Path, Path]]:
    """``(left, right, disparity)`` member names (as relative paths) of Monkaa archives, sorted.

    Raises:
        MonkaaError: no left image member, or a left image lacks its right image or disparity.
    """
    lefts = []
    for name in archives.names():
        parts = PurePosixPath(name).parts
        if len(parts) == 4 and parts[0] == frames_dir and parts[2] == "left":
            if name.endswith(".png"):
                lefts.append(name)
    if not lefts:
        listed = ", ".join(str(a.path) for a in archives.archives)
        raise MonkaaError(
            f"Monkaa archives {listed} hold no member {frames_dir}/<scene>/left/NNNN.png"
        )
    samples = []
    for left in lefts:
        _, scene, _, file = PurePosixPath(left).parts
        right = f"{frames_dir}/{scene}/right/{file}"
        disparity = f"{DISPARITY_DIR}/{scene}/left/{file[: -len('.png')]}.pfm"
        for member, what in ((right, "right image"), (disparity, "disparity")):
            if member not in archives:
                raise MonkaaError(f"missing {what} member {member} for left image {left}")
        samples.append((Path(left), Path(right), Path(disparity)))
    return samples


class MonkaaArchiveDataset(MonkaaDataset):
    """Monkaa samples read from the frames and disparity archives in place; items and
    arguments as :class:`~lightning_depth.data.monkaa.MonkaaDataset`, with ``samples`` the
    member names from :func:`list_monkaa_archive`."""

    def __init__(self, archives: ArchiveSet, samples: Sequence, **kwargs) -> None:
        super().__init__(samples, **kwargs)
        self.archives = archives

    def read(self, index: int):
        names = [p.as_posix() for p in self.samples[index]]
        with self.archives.spooled(names) as paths:
            return read_monkaa_files(*paths)
