"""Reading DIODE and Monkaa from their original archives in place: same samples as the
extracted folders, the published names and layouts, random access, and bad archives."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_depth.data.archive import ArchiveSet, TarArchive
from lightning_depth.data.diode import (
    DIODEDataModule,
    DIODEDataset,
    list_diode_samples,
    synthesize_diode,
)
from lightning_depth.data.monkaa import (
    MonkaaDataModule,
    MonkaaDataset,
    list_monkaa_samples,
    synthesize_monkaa,
)
from lightning_depth.io.errors import DataError


def make_diode_archive(folder: Path, out: Path, split: str = "val") -> Path:
    """``<split>.tar.gz`` with members ``<split>/indoors/scene_.../scan_.../<id>.png``, as
    DIODE publishes them."""
    path = out / f"{split}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder / split, arcname=split)
    return path


def make_monkaa_archives(folder: Path, out: Path) -> list[Path]:
    """``frames_cleanpass.tar`` (uncompressed, as published) and ``disparity.tar.bz2``."""
    frames, disparity = out / "frames_cleanpass.tar", out / "disparity.tar.bz2"
    with tarfile.open(frames, "w") as tar:
        tar.add(folder / "frames_cleanpass", arcname="frames_cleanpass")
    with tarfile.open(disparity, "w:bz2") as tar:
        tar.add(folder / "disparity", arcname="disparity")
    return [frames, disparity]


@pytest.fixture(scope="module")
def diode(tmp_path_factory):
    root = tmp_path_factory.mktemp("diode")
    synthesize_diode(root / "folder", n=6, size=(32, 48), seed=3)
    return root / "folder", make_diode_archive(root / "folder", root)


@pytest.fixture(scope="module")
def monkaa(tmp_path_factory):
    root = tmp_path_factory.mktemp("monkaa")
    synthesize_monkaa(root / "folder", scenes=2, frames=3, size=(32, 64), seed=0)
    return root / "folder", make_monkaa_archives(root / "folder", root)


def _assert_same(a: dict, b: dict, keys) -> None:
    assert a["name"] == b["name"]
    for key in keys:
        assert a[key].dtype == b[key].dtype
        assert torch.equal(a[key], b[key]), key


# -- the archive index -----------------------------------------------------------------------


def test_index_lists_members_with_real_names(diode, monkaa):
    folder, archive = diode
    tar = TarArchive(archive)
    assert tar.compression == "gz"
    want = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert tar.names() == want
    assert all(n.startswith("val/indoors/scene_") or n.startswith("val/outdoor/") for n in want)
    frames, disparity = (TarArchive(p) for p in monkaa[1])
    assert (frames.compression, disparity.compression) == (None, "bz2")
    assert frames.names()[0].startswith("frames_cleanpass/scene_000_x2/left/0000.png")
    assert disparity.names()[0] == "disparity/scene_000_x2/left/0000.pfm"


def test_random_access_reads_exact_bytes_in_any_order(monkaa):
    folder, paths = monkaa
    archives = ArchiveSet(paths)
    names = archives.names()
    # backwards through bz2 forces restarts from the beginning of the stream
    for name in reversed(names):
        assert archives.read(name) == (folder / name).read_bytes()


def test_leading_dot_slash_members_are_normalised(tmp_path):
    (tmp_path / "src" / "a").mkdir(parents=True)
    (tmp_path / "src" / "a" / "x.bin").write_bytes(b"abc")
    with tarfile.open(tmp_path / "t.tar", "w") as tar:
        tar.add(tmp_path / "src", arcname=".")
    assert TarArchive(tmp_path / "t.tar").names() == ["a/x.bin"]


def test_index_is_saved_and_reused(monkaa, tmp_path, monkeypatch):
    path = monkaa[1][1]
    first = TarArchive(path, index_dir=tmp_path / "idx")
    assert len(list((tmp_path / "idx").glob("disparity.tar.bz2.*.json"))) == 1

    def no_indexing(self):
        raise AssertionError("indexed again")

    monkeypatch.setattr(TarArchive, "_index", no_indexing)
    again = TarArchive(path, index_dir=tmp_path / "idx")
    assert again.members == first.members
    name = again.names()[3]
    assert again.read(name) == (monkaa[0] / name).read_bytes()
    dm = MonkaaDataModule(
        str(monkaa[0]),
        source="archive",
        archives=[str(p) for p in monkaa[1]],
        cache_dir=str(tmp_path / "idx2"),
        size=(16, 32),
        val_fraction=0.3,
    )
    with pytest.raises(AssertionError, match="indexed again"):
        dm.prepare_data()  # builds the index on this (the first) process


# -- same samples as the folders -------------------------------------------------------------


def test_diode_archive_samples_equal_folder_samples(diode):
    folder, archive = diode
    archives = ArchiveSet([archive])
    members = list_diode_samples(archives)
    files = list_diode_samples(folder)
    assert [m[0].as_posix() for m in members] == [
        f[0].relative_to(folder).as_posix() for f in files
    ]
    from_folder = DIODEDataset(files, size=(16, 32), hflip=True)
    from_archive = DIODEDataset(members, size=(16, 32), hflip=True, source=archives)
    assert len(from_archive) == 6
    for i in reversed(range(len(from_folder))):
        _assert_same(from_folder[(i, 7)], from_archive[(i, 7)], ("image", "target", "mask"))


def test_monkaa_archive_samples_equal_folder_samples(monkaa):
    folder, paths = monkaa
    archives = ArchiveSet(paths)
    members = list_monkaa_samples(archives)
    samples = list_monkaa_samples(folder)
    assert [tuple(p.as_posix() for p in m) for m in members] == [
        tuple(p.relative_to(folder).as_posix() for p in s) for s in samples
    ]
    for kwargs, item in (({"training": True, "size": (16, 32)}, (4, 11)), ({}, 2)):
        a = MonkaaDataset(samples, **kwargs)[item]
        b = MonkaaDataset(members, source=archives, **kwargs)[item]
        _assert_same(a, b, ("left", "right", "disparity"))


def test_datamodules_split_archives_as_folders(diode, monkaa):
    splits = {}
    for source, kwargs in (("folder", {}), ("archive", {"archives": [str(diode[1])]})):
        dm = DIODEDataModule(str(diode[0]), source=source, size=(16, 16), **kwargs)
        dm.setup()
        splits[source] = [[s["name"] for s in ds] for ds in (dm.train_set, dm.val_set)]
    assert splits["folder"] == splits["archive"]
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (1, 3, 16, 16)

    names = {}
    for source, kwargs in (("folder", {}), ("archive", {"archives": [str(p) for p in monkaa[1]]})):
        dm = MonkaaDataModule(
            str(monkaa[0]), source=source, size=(16, 32), val_fraction=0.3, **kwargs
        )
        dm.setup()
        names[source] = [dm.val_set[i]["name"] for i in range(len(dm.val_set))]
    assert names["folder"] == names["archive"] and len(names["folder"]) == 2


def test_archive_source_with_loader_workers(monkaa):
    # each worker opens the archives itself (the bz2 stream position is per process)
    kwargs = dict(size=(16, 32), val_fraction=0.3, batch_size=2, num_workers=2)
    archives = [str(p) for p in monkaa[1]]
    dm = MonkaaDataModule(str(monkaa[0]), source="archive", archives=archives, **kwargs)
    dm.setup()
    names = [n for batch in dm.train_dataloader() for n in batch["name"]]
    assert sorted(names) == sorted(
        f"{p[0].parent.parent.name}/{p[0].stem}" for p in dm.train_samples
    )


def test_datamodule_archive_source_needs_archives():
    with pytest.raises(ValueError, match="archives="):
        DIODEDataModule("unused", source="archive")
    with pytest.raises(ValueError, match="source must be"):
        MonkaaDataModule("unused", source="zip")


# -- bad archives ----------------------------------------------------------------------------


def test_truncated_gz_archive_names_archive_and_last_member(diode, tmp_path):
    data = diode[1].read_bytes()
    cut = tmp_path / "val.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"val\.tar\.gz.*truncated.*last member read: val/"):
        TarArchive(cut)


def test_truncated_plain_tar_names_the_member(monkaa, tmp_path):
    frames = monkaa[1][0]
    tar = TarArchive(frames)
    name = tar.names()[-1]
    offset, size = tar.members[name]
    cut = tmp_path / "frames_cleanpass.tar"
    cut.write_bytes(frames.read_bytes()[: offset + size // 2])
    with pytest.raises(DataError, match=rf"frames_cleanpass\.tar.*{name}"):
        ArchiveSet([cut]).read(name)


def test_corrupt_member_error_names_archive_and_member(tmp_path, monkaa):
    folder = monkaa[0]
    bad = "disparity/scene_000_x2/left/0001.pfm"
    with tarfile.open(tmp_path / "disparity.tar.bz2", "w:bz2") as tar:
        for path in sorted((folder / "disparity").rglob("*.pfm")):
            member = path.relative_to(folder).as_posix()
            data = b"P6\n1 1\n" if member == bad else path.read_bytes()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archives = ArchiveSet([monkaa[1][0], tmp_path / "disparity.tar.bz2"])
    members = list_monkaa_samples(archives)
    index = [m[2].as_posix() for m in members].index(bad)
    with pytest.raises(DataError, match=rf"disparity\.tar\.bz2:{bad}: not a PFM file"):
        MonkaaDataset(members, source=archives)[index]


def test_missing_member_and_missing_archive(diode, tmp_path):
    folder = diode[0]
    image = sorted(folder.rglob("*.png"))[0]
    with tarfile.open(tmp_path / "val.tar.gz", "w:gz") as tar:
        tar.add(image, arcname=image.relative_to(folder).as_posix())
    with pytest.raises(DataError, match=r"missing depth member val/.*_depth\.npy"):
        list_diode_samples(ArchiveSet([tmp_path / "val.tar.gz"]))
    with pytest.raises(DataError, match=r"archive .*nope\.tar does not exist"):
        ArchiveSet([tmp_path / "nope.tar"])
    not_tar = tmp_path / "x.tar"
    not_tar.write_bytes(np.arange(2000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"x\.tar is not a readable tar archive"):
        TarArchive(not_tar)
