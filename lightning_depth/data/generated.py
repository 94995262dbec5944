"""Generated datasets on disk: where they go, how a folder is known to hold one, and the rule
that user data is never written to.

A generated set is written only into an empty (or new) folder, and leaves there a marker file
(:data:`MARKER`) with its settings; a folder is taken to hold a set only when its marker
matches. So a DataModule's cache folder, named by the settings (:func:`default_synth_dir`),
is generated once and then reused, ``lightning_depth synth`` refuses a non-empty folder
(``--overwrite`` replaces a set it wrote there before, never anything else), and two settings
never mix in one folder.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from lightning_depth.data.log import announce
from lightning_depth.io.errors import DataError

__all__ = ["MARKER", "SYNTH_ROOT", "Generated", "default_synth_dir", "ensure_set", "write_set"]

PathLike = Union[str, os.PathLike]

#: the file a generated set leaves in its folder: its settings and what it wrote
MARKER = "lightning_depth_synth.json"
#: where DataModules generate by default (relative to the working directory)
SYNTH_ROOT = Path(".cache") / "lightning_depth"


@dataclass(frozen=True)
class Generated:
    """A generated dataset, described before it is written.

    Attributes:
        name: folder name that identifies the settings, e.g. ``diode_240_96x128_seed0``.
        description: for the log line, e.g. ``240 DIODE-layout samples (96x128, seed 0)``.
        settings: everything the content depends on (JSON values), kept in the marker.
        write: writes the set into a folder; returns the main files written.
    """

    name: str
    description: str
    settings: dict[str, Any]
    write: Callable[[Path], list[Path]]


def default_synth_dir(generated: Generated) -> Path:
    """``.cache/lightning_depth/<name>``: different settings, different folders."""
    return SYNTH_ROOT / generated.name


def read_marker(folder: PathLike) -> Optional[dict]:
    """The marker of ``folder`` (``None``: none, or unreadable)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _normalised(settings: dict) -> dict:
    return json.loads(json.dumps(settings))  # tuples -> lists, as read back from the marker


def _write(generated: Generated, folder: Path) -> list[Path]:
    before = set(_entries(folder))
    paths = generated.write(folder)
    marker = {
        "settings": _normalised(generated.settings),
        "entries": sorted(set(_entries(folder)) - before),
        "samples": len(paths),
    }
    (folder / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    return paths


def write_set(generated: Generated, out: PathLike, overwrite: bool = False) -> list[Path]:
    """Write ``generated`` into ``out`` (``lightning_depth synth``).

    Args:
        generated: the set.
        out: the folder: new, empty, or (with ``overwrite``) holding a set generated there
            before, which is removed first (so sizes or settings never mix).
        overwrite: replace a set generated in ``out`` before.

    Returns:
        the main files written.

    Raises:
        DataError: ``out`` is not empty (without ``overwrite``), or holds files that were not
            generated there (with ``overwrite``: they are not deleted).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out} is a file, not a folder")
    names = _entries(out)
    if names:
        marker = read_marker(out)
        if not overwrite:
            held = "a generated set" if marker is not None else f"{_listing(names)}"
            raise DataError(
                f"output folder {out} is not empty (it holds {held}); pass --overwrite to "
                "replace a set generated there, or choose an empty or new folder"
            )
        if marker is None or not isinstance(marker.get("entries"), list):
            raise DataError(
                f"output folder {out} holds {_listing(names)} but no {MARKER}, so not a set "
                "generated there; --overwrite only replaces generated sets and deletes nothing "
                "else: choose an empty or new folder"
            )
        for name in [*marker["entries"], MARKER]:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return _write(generated, out)


def ensure_set(generated: Generated, folder: PathLike) -> Path:
    """Make sure ``folder`` holds ``generated`` (a DataModule's generated data): a folder whose
    marker matches is used as it is; a new or empty one is written (announced in one log
    line), through a temporary sibling renamed at the end, so an interrupted run leaves no
    half set behind.

    Returns:
        ``folder``.

    Raises:
        DataError: ``folder`` is not empty and does not hold this set (nothing is written).
    """
    folder = Path(folder)
    settings = _normalised(generated.settings)
    marker = read_marker(folder)
    if marker is not None and marker.get("settings") == settings:
        return folder
    names = _entries(folder)
    if names or (folder.exists() and not folder.is_dir()):
        held = (
            f"a generated set with other settings ({json.dumps(marker.get('settings'))})"
            if marker is not None
            else f"{_listing(names) or 'a file'} and no {MARKER}"
        )
        raise DataError(
            f"synth_dir {folder} holds {held}, not the set asked for ({json.dumps(settings)}); "
            "data are generated only into a new or empty folder: remove it or choose another "
            "synth_dir (by default the folder is named by the settings)"
        )
    announce(f"generating {generated.description} into {folder}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        _write(generated, partial)
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        partial.rename(folder)
    except OSError:
        done = read_marker(folder)
        if done is None or done.get("settings") != settings:
            raise
        # another process (node) wrote the same set meanwhile
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder
