"""``lightning_depth prepare``: shards from folders or archives hold the folder source's samples,
split as the DataModules split; corrupt shards and bad sources give clear errors."""

from __future__ import annotations

import pytest
import torch

from lightning_depth.data.diode import DIODEDataModule, DIODETransform, synthesize_diode
from lightning_depth.data.monkaa import MonkaaDataModule, MonkaaTransform, synthesize_monkaa
from lightning_depth.data.prepare import main
from lightning_depth.data.streaming import ShardDataset
from lightning_depth.io.errors import DataError
from tests.data.test_archive import make_diode_archive, make_monkaa_archives

SIZE = (16, 32)


@pytest.fixture(scope="module")
def diode(tmp_path_factory):
    root = tmp_path_factory.mktemp("diode")
    synthesize_diode(root / "folder", n=10, size=(32, 48), seed=5)
    archive = make_diode_archive(root / "folder", root)
    for src, out in ((root / "folder", "from_folder"), (archive, "from_archive")):
        argv = ["diode", "--src", str(src), "--out", str(root / out), "--size", "16x32"]
        assert main(argv) == 0
    return root


@pytest.fixture(scope="module")
def monkaa(tmp_path_factory):
    root = tmp_path_factory.mktemp("monkaa")
    synthesize_monkaa(root / "folder", scenes=2, frames=3, size=(32, 64), seed=2)
    archives = make_monkaa_archives(root / "folder", root)
    argv = ["monkaa", "--src", *map(str, archives), "--out", str(root / "shards")]
    assert main([*argv, "--val-fraction", "0.3"]) == 0
    return root


def _items(dataset) -> dict[str, dict]:
    return {item["name"]: item for item in (dataset[i] for i in range(len(dataset)))}


@pytest.mark.parametrize("out", ["from_folder", "from_archive"])
def test_diode_shards_hold_the_folder_samples_in_the_same_splits(diode, out):
    dm = DIODEDataModule(str(diode / "folder"), size=SIZE, hflip=False)
    dm.setup()
    for split, folder_set in (("train", dm.train_set), ("val", dm.val_set), ("test", dm.test_set)):
        shards = _items(ShardDataset(str(diode / out / split), DIODETransform(SIZE)))
        folder = _items(folder_set)
        assert sorted(shards) == sorted(folder) and folder
        for name, item in folder.items():
            for key in ("image", "target", "mask"):
                assert shards[name][key].dtype == item[key].dtype
                assert torch.equal(shards[name][key], item[key]), (split, name, key)


def test_monkaa_shards_hold_the_folder_samples(monkaa):
    dm = MonkaaDataModule(str(monkaa / "folder"), val_fraction=0.3, size=(16, 32))
    dm.setup()
    for split, folder_set in (("train", dm.train_set), ("val", dm.val_set)):
        folder_set.transform.training = False  # compare the deterministic evaluation transform
        shards = _items(ShardDataset(str(monkaa / "shards" / split), MonkaaTransform()))
        folder = _items(folder_set)
        assert sorted(shards) == sorted(folder)
        for name, item in folder.items():
            for key in ("left", "right", "disparity"):
                assert torch.equal(shards[name][key], item[key]), (split, name, key)
    assert not (monkaa / "shards" / "test").exists()  # test_fraction 0 writes no test split


def test_shard_training_crops_are_seeded_per_sample_and_epoch(monkaa):
    def crops(epoch: int, seed: int = 1):
        dataset = ShardDataset(
            str(monkaa / "shards" / "train"),
            MonkaaTransform(training=True, size=(16, 32)),
            seed=seed,
        )
        dataset.set_epoch(epoch)
        return torch.stack([dataset[i]["disparity"] for i in range(len(dataset))])

    assert crops(1).shape[-2:] == (16, 32)
    assert torch.equal(crops(1), crops(1))
    assert not torch.equal(crops(1), crops(2))


def test_corrupt_shard_names_the_chunk(diode, tmp_path):
    import shutil

    shards = tmp_path / "train"
    shutil.copytree(diode / "from_folder" / "train", shards)
    chunk = sorted(shards.glob("chunk-*.bin"))[0]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2 :] = b"\xff" * (len(data) - len(data) // 2)
    chunk.write_bytes(bytes(data[: len(data) - 7]))
    dataset = ShardDataset(str(shards), DIODETransform(SIZE))
    with pytest.raises(DataError, match=rf"shard .*train/{chunk.name}"):
        for i in range(len(dataset)):
            dataset[i]


def test_shard_with_foreign_fields_is_rejected(diode):
    # DIODE shards read as Monkaa ones
    with pytest.raises(DataError, match=r"lacks the fields .*lightning_depth prepare"):
        ShardDataset(str(diode / "from_folder" / "train"), MonkaaTransform())[0]


def test_bad_source_fails_with_message(tmp_path, capsys):
    assert main(["diode", "--src", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "DIODE root" in capsys.readouterr().err
    assert main(["monkaa", "--src", str(tmp_path / "x.tar"), "--out", str(tmp_path / "o")]) == 1
    assert "x.tar does not exist" in capsys.readouterr().err


def test_cli_dispatches_prepare(diode, tmp_path):
    from lightning_depth.cli import main as cli

    argv = ["prepare", "diode", "--src", str(diode / "folder"), "--out", str(tmp_path)]
    assert cli([*argv, "--size", "8x8", "--val-fraction", "0.5", "--test-fraction", "0"]) == 0
    assert len(ShardDataset(str(tmp_path / "val"), DIODETransform((8, 8)))) == 5
    train = ShardDataset(str(tmp_path / "train"), DIODETransform((8, 8)))
    assert train[0]["image"].shape == (3, 8, 8)
    assert not (tmp_path / "test").exists()


def test_prepare_refuses_a_non_empty_output_and_overwrite_replaces_the_splits(diode, capsys):
    out = diode / "again"
    argv = ["diode", "--src", str(diode / "folder"), "--out", str(out), "--size", "8x8"]
    assert main([*argv, "--test-fraction", "0.2"]) == 0
    (out / "notes.txt").write_text("mine")
    before = sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*"))
    assert main([*argv, "--test-fraction", "0"]) == 1
    err = capsys.readouterr().err
    assert f"output {out} is not empty (it holds notes.txt, test, train, val)" in err
    assert "--overwrite" in err
    assert sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*")) == before
    assert main([*argv, "--test-fraction", "0", "--overwrite"]) == 0
    # no test/ of the earlier run is left beside the new splits; other files are kept
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "train", "val"]


def test_prepare_stops_at_bad_samples_before_writing(tmp_path, capsys):
    import numpy as np

    from lightning_depth.data.diode import list_diode_samples

    synthesize_diode(tmp_path / "folder", n=6, size=(16, 24), seed=1)
    for _, depth, _ in list_diode_samples(tmp_path / "folder")[:2]:
        np.save(depth, np.full((16, 24, 1), np.nan, np.float32))
    argv = ["diode", "--src", str(tmp_path / "folder"), "--out", str(tmp_path / "shards")]
    assert main([*argv, "--size", "8x8"]) == 1
    assert "2 of 6 samples are bad (2 NaN/inf values)" in capsys.readouterr().err
    assert not (tmp_path / "shards").exists()
    excluded = [*argv, "--size", "8x8", "--on-bad-samples", "exclude", "--test-fraction", "0"]
    assert main(excluded) == 0
    assert "train=" in capsys.readouterr().out
    sets = [
        ShardDataset(str(tmp_path / "shards" / s), DIODETransform((8, 8))) for s in ("train", "val")
    ]
    assert sum(len(s) for s in sets) == 4  # the 6 samples but the 2 bad ones
