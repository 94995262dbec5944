"""Reading files from tar archives in place, without extracting them: the source ``"archive"``.

Datasets are published as archives (DIODE's ``val.tar.gz``; Monkaa's ``frames_cleanpass.tar``
and ``disparity.tar.bz2``), whose members are the files of the extracted folder. An
:class:`ArchiveSet` is a source (see :mod:`~lightning_depth.data.layout`): a dataset's layout
lists and reads its samples from it as from a :class:`~lightning_depth.data.layout.Folder`.

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

Members are decoded by the same readers as extracted files (a layout's ``read`` gets them as
small temporary files), so a sample from an archive is bit-identical to the same sample from
a folder; errors name ``<archive>:<member>``.
"""

from __future__ import annotations

import bz2
import contextlib
import fnmatch
import gzip
import json
import os
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Iterator, Optional, Sequence, Union

from lightning_depth.io.errors import DataError

__all__ = ["ArchiveSet", "TarArchive"]

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
    DataModules build it in ``prepare_data``, so the DDP processes of a run load it). The open
    file handle is per process (reopened after a fork), so a DataLoader worker never shares a
    file position with another.

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
    """Several archives seen as one tree of members (e.g. Monkaa's frames + disparity): the
    source ``"archive"`` (see :class:`~lightning_depth.data.layout.Source`). Paths are member
    names as ``PurePosixPath``.

    Args:
        paths: the archives. A member name found in two archives is an error.
        index_dir: where to keep the archives' indexes (see :class:`TarArchive`).
    """

    noun = "member"

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

    def __contains__(self, name: Union[str, PurePosixPath]) -> bool:
        return _name(name) in self.owner

    def read(self, name: Union[str, PurePosixPath]) -> bytes:
        name = _name(name)
        if name not in self.owner:
            raise DataError(f"no archive among {self._listed()} has member {name}")
        return self.owner[name].read(name)

    def _listed(self) -> str:
        return ", ".join(str(a.path) for a in self.archives)

    # -- the Source interface ----------------------------------------------------------------

    def describe(self) -> str:
        return f"archives {self._listed()}"

    def empty_state(self, what: str) -> str:
        return f"hold no {what}"

    def location(self, pattern: str) -> str:
        return pattern

    def glob(self, patterns: Sequence[str]) -> list[PurePosixPath]:
        """Members matching any pattern, part by part as ``Path.glob`` matches (``*`` stays
        within one path component), sorted."""
        split = [pattern.split("/") for pattern in patterns]
        found = set()
        for name in self.owner:
            parts = name.split("/")
            for pattern in split:
                if len(parts) == len(pattern) and all(
                    fnmatch.fnmatchcase(p, q) for p, q in zip(parts, pattern)
                ):
                    found.add(name)
                    break
        return [PurePosixPath(name) for name in sorted(found)]

    def exists(self, path: Union[str, PurePosixPath]) -> bool:
        return path in self

    def where(self, path: Union[str, PurePosixPath]) -> str:
        """``<archive>:<member>`` for messages (just the name when no archive has it)."""
        name = _name(path)
        archive = self.owner.get(name)
        return f"{archive.path}:{name}" if archive else name

    def identity(self) -> str:
        return "archives " + ", ".join(str(a.path.resolve()) for a in self.archives)

    def stamp(self, path: Union[str, PurePosixPath]) -> Optional[list[int]]:
        """The archive's size and modification time and the member's offset and size."""
        name = _name(path)
        archive = self.owner.get(name)
        if archive is None:
            return None
        stat = archive.path.stat()
        return [stat.st_size, stat.st_mtime_ns, *archive.members[name]]

    def position(self, path: Union[str, PurePosixPath]) -> tuple[int, int]:
        """Where member ``path`` lies (archive number, offset): reading in this order is one
        pass over each archive, which a compressed archive needs."""
        name = _name(path)
        archive = self.owner.get(name)
        if archive is None:
            return (len(self.archives), 0)
        return self.archives.index(archive), archive.members[name][0]

    @contextlib.contextmanager
    def local(self, paths: Sequence[Union[str, PurePosixPath]]) -> Iterator[list[Path]]:
        """Members as temporary files (for readers that take paths); errors raised inside
        name ``<archive>:<member>`` instead of the temporary path."""
        names = [_name(p) for p in paths]
        with tempfile.TemporaryDirectory(dir=_SPOOL_DIR, prefix="ld_archive_") as tmp:
            files = []
            for i, name in enumerate(names):
                path = Path(tmp) / f"{i}_{PurePosixPath(name).name}"
                path.write_bytes(self.read(name))
                files.append(path)
            try:
                yield files
            except DataError as e:
                message = str(e)
                for path, name in zip(files, names):
                    message = message.replace(str(path), self.where(name))
                raise type(e)(message) from e


def _name(path: Union[str, PurePosixPath]) -> str:
    return path.as_posix() if isinstance(path, PurePosixPath) else str(path)
