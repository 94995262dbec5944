"""The pre-flight data check: every bad sample in one error at ``setup`` (before any training
step), cached outcomes, ``on_bad_samples="exclude"`` with its report, the ``check-data``
command, and errors from DataLoader workers that name the file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lightning_depth.data import check as check_module
from lightning_depth.data.base import SampleDataset
from lightning_depth.data.check import MAX_LISTED, probe_rgb, problem_kind, scan
from lightning_depth.data.diode import (
    DIODEDataModule,
    DIODELayout,
    DIODETransform,
    list_diode_samples,
    synthesize_diode,
)
from lightning_depth.data.layout import Folder
from lightning_depth.data.monkaa import MonkaaDataModule, list_monkaa_samples, synthesize_monkaa
from lightning_depth.io.errors import DataError
from tests.data.test_archive import make_diode_archive

REPO = Path(__file__).resolve().parents[2]
N = 12


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and modification time."""
    out = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        out[str(path.relative_to(root))] = (stat.st_size if path.is_file() else 0, stat.st_mtime_ns)
    return out


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def bad_diode(tmp_path) -> tuple[Path, dict[str, Path]]:
    """A DIODE folder with a NaN depth, a truncated PNG and a missing mask (three samples)."""
    root = tmp_path / "diode"
    synthesize_diode(root, n=N, size=(32, 48), seed=0)
    samples = list_diode_samples(root)
    depth = np.load(samples[2][1])
    depth[5, 6, 0] = np.nan
    np.save(samples[2][1], depth)
    _truncate(samples[5][0])
    samples[8][2].unlink()
    return root, {"nan": samples[2][1], "png": samples[5][0], "mask": samples[8][2]}


@pytest.fixture
def bad_monkaa(tmp_path) -> tuple[Path, dict[str, Path]]:
    """A Monkaa folder with a PFM whose header is broken and a truncated right image."""
    root = tmp_path / "monkaa"
    synthesize_monkaa(root, scenes=2, frames=3, size=(32, 64), seed=0)
    samples = list_monkaa_samples(root)
    pfm = samples[1][2]
    pfm.write_bytes(b"Pf\n64 thirty-two\n-1.0\n" + pfm.read_bytes().split(b"\n", 3)[3])
    _truncate(samples[4][1])
    return root, {"pfm": pfm, "png": samples[4][1]}


# -- the check -------------------------------------------------------------------------------


def test_probe_rgb_reads_the_size_and_rejects_a_truncated_png(bad_diode):
    root, bad = bad_diode
    good = DIODELayout().list(Folder(root), missing="keep")[0][0]
    assert probe_rgb(good) == (32, 48)  # (H, W)
    with pytest.raises(DataError, match=re.escape(f"image {bad['png']} is corrupt or truncated")):
        probe_rgb(bad["png"])
    with pytest.raises(DataError, match="does not exist"):
        probe_rgb(root / "nothing.png")


class _CountSteps(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Conv2d(3, 1, 1)
        self.steps = 0

    def training_step(self, batch, batch_idx):
        self.steps += 1
        return self.layer(batch["image"]).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_every_bad_diode_sample_in_one_error_before_the_first_step(bad_diode):
    root, bad = bad_diode
    before = _tree(root)
    model = _CountSteps()
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    dm = DIODEDataModule(str(root), size=(32, 32), batch_size=2, num_workers=0)
    with pytest.raises(DataError) as error:
        trainer.fit(model, datamodule=dm)
    assert model.steps == 0
    message = str(error.value)
    assert message.startswith(f"DIODE root {root}: 3 of {N} samples are bad (")
    for counted in ("1 NaN/inf values", "1 corrupt image", "1 missing file"):
        assert counted in message
    assert f"depth file {bad['nan']} holds 1 NaN and 0 inf values" in message
    assert f"image {bad['png']} is corrupt or truncated" in message
    assert f"missing depth mask file {bad['mask']}" in message
    assert "on_bad_samples=exclude" in message
    assert _tree(root) == before  # nothing written into the data folder (the cache is in HOME)


def test_every_bad_monkaa_sample_in_one_error(bad_monkaa):
    root, bad = bad_monkaa
    dm = MonkaaDataModule(str(root), size=(16, 32), val_fraction=0.3)
    with pytest.raises(DataError) as error:
        dm.setup("fit")
    message = str(error.value)
    assert "2 of 6 samples are bad (1 bad PFM, 1 corrupt image)" in message
    assert f"{bad['pfm']}: bad PFM dimensions line" in message
    assert f"image {bad['png']} is corrupt or truncated" in message


def test_many_bad_samples_are_counted_and_the_first_20_named(tmp_path):
    root = tmp_path / "diode"
    synthesize_diode(root, n=30, size=(16, 24), seed=1)
    samples = list_diode_samples(root)
    for _, depth, _ in samples[:25]:
        np.save(depth, -np.ones((16, 24, 1), np.float32))
    _truncate(samples[29][0])
    result = scan(DIODELayout(), Folder(root), samples, workers=1)
    assert result.counts() == {"negative values": 25, "corrupt image": 1}
    message = result.message()
    assert (
        f"26 of 30 samples are bad (25 negative values, 1 corrupt image); the first {MAX_LISTED}:"
        in message
    )
    assert message.count("holds 384 negative values") == MAX_LISTED
    assert message.endswith("... and 6 more")
    assert str(samples[29][0]) not in message  # the 26th bad sample is counted, not named


def test_problem_kinds_of_the_readers_messages():
    assert (
        problem_kind("depth file x holds 3 NaN and 0 inf values; expected finite values")
        == "NaN/inf values"
    )
    assert (
        problem_kind("x.pfm: PFM data holds non-finite values (1 NaN, 0 inf)") == "NaN/inf values"
    )
    assert problem_kind("x.pfm: truncated PFM data: 10 bytes, expected 20") == "bad PFM"
    assert (
        problem_kind("depth mask file m is 47x64 but depth file d is 48x64 (HxW); they must match")
        == "sizes differ"
    )
    assert problem_kind("something new") == "other"


def test_second_scan_reads_nothing_and_a_changed_file_is_read_again(bad_diode, monkeypatch):
    root, bad = bad_diode
    reads = []
    original = DIODELayout.check
    monkeypatch.setattr(
        DIODELayout, "check", lambda self, paths: reads.append(paths) or original(self, paths)
    )

    def check():
        dm = DIODEDataModule(str(root), size=(32, 32))
        with pytest.raises(DataError) as error:
            dm.setup("fit")
        return dm.check_result, str(error.value)

    first, message = check()
    assert (first.read, first.cached) == (N - 1, 1)  # the sample without a mask is not read
    assert len(reads) == N - 1
    second, again = check()
    assert (second.read, second.cached, len(reads)) == (0, N, N - 1)
    assert again == message  # the bad samples, from the cache
    assert first.cache_file == second.cache_file
    assert first.cache_file.is_file() and root not in first.cache_file.parents
    # a repaired file (new size and time) is read again; the rest still comes from the cache
    depth = np.load(bad["nan"])
    np.save(bad["nan"], np.nan_to_num(depth))
    third, message = check()
    assert (third.read, third.cached, len(reads)) == (1, N - 1, N)
    assert "NaN" not in message and "2 of" in message


def test_worker_processes_find_the_same_problems(bad_diode, monkeypatch):
    root, _ = bad_diode
    samples = DIODELayout().list(Folder(root), missing="keep")
    here = scan(DIODELayout(), Folder(root), samples, workers=1)
    monkeypatch.setattr(check_module, "PARALLEL_FROM", 1)
    pool = scan(DIODELayout(), Folder(root), samples, workers=2)
    assert pool.bad == here.bad and len(pool.bad) == 3 and pool.read == N - 1


def test_archives_are_checked_and_their_members_named(tmp_path):
    folder = tmp_path / "folder"
    synthesize_diode(folder, n=6, size=(16, 24), seed=2)
    bad = list_diode_samples(folder)[4][1]
    np.save(bad, np.full((16, 24, 1), np.inf, np.float32))
    archive = make_diode_archive(folder, tmp_path)
    dm = DIODEDataModule(source="archive", archives=[str(archive)], size=(16, 16))
    with pytest.raises(
        DataError,
        match=re.escape(f"{archive}:{bad.relative_to(folder).as_posix()} holds 0 NaN and 384 inf"),
    ):
        dm.setup("fit")


# -- exclude ---------------------------------------------------------------------------------


def test_exclude_drops_exactly_the_bad_samples_and_writes_a_report(bad_diode, caplog):
    root, bad = bad_diode
    caplog.set_level("INFO", logger="lightning_depth")
    dm = DIODEDataModule(
        str(root), size=(32, 32), on_bad_samples="exclude", cache_dir=str(root.parent / "cache")
    )
    dm.setup("fit")
    _, full = dm.list_splits(missing="keep")
    bad_samples = {s for s in sum(full, []) if {bad["nan"], bad["png"], bad["mask"]} & set(s)}
    assert len(bad_samples) == 3
    kept = (dm.train_samples, dm.val_samples, dm.test_samples)
    for split, everything in zip(kept, full):  # every good sample stays in its split
        assert split == [s for s in everything if s not in bad_samples]
    report = json.loads(dm.excluded_report.read_text())
    assert dm.excluded_report.parent == root.parent / "cache" / "checks"
    assert report["excluded"] == 3 and len(report["samples"]) == 3
    assert report["per_problem"] == {"NaN/inf values": 1, "corrupt image": 1, "missing file": 1}
    assert {f for row in report["samples"] for f in row["files"]} >= {str(p) for p in bad.values()}
    assert f"excluded 3 bad samples of DIODE root {root}" in caplog.text
    assert str(dm.excluded_report) in caplog.text
    batch = next(iter(dm.train_dataloader()))  # trains on what is left
    assert batch["image"].shape[1:] == (3, 32, 32)


# -- errors while training -------------------------------------------------------------------


def test_a_bad_file_met_in_a_dataloader_worker_is_a_data_error_naming_it(bad_diode):
    root, bad = bad_diode
    sample = next(s for s in DIODELayout().list(Folder(root), "keep") if s[1] == bad["nan"])
    dataset = SampleDataset(DIODELayout(), [sample], DIODETransform((16, 16)))
    loader = DataLoader(dataset, batch_size=1, num_workers=1)
    with pytest.raises(DataError) as error:
        next(iter(loader))
    message = str(error.value)
    assert (
        message == f"depth file {bad['nan']} holds 1 NaN and 0 inf values; expected finite values"
    )
    with pytest.raises(DataError, match="^depth file .* holds 1 NaN"):  # in this process: as raised
        dataset[0]


# -- the check-data command ------------------------------------------------------------------


@pytest.mark.slow
def test_check_data_command(bad_diode, tmp_path, capsys):
    from lightning_depth.cli import main

    root, bad = bad_diode
    args = [
        "check-data",
        "--config",
        str(REPO / "configs/demo/mono.yaml"),
        f"--data.init_args.root={root}",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "3 of 12 samples are bad" in err and str(bad["png"]) in err
    assert main([*args, "--data.init_args.on_bad_samples=exclude"]) == 0
    out = capsys.readouterr().out
    assert "12 samples, 3 bad" in out and "report:" in out
    good = tmp_path / "good"
    synthesize_diode(good, n=6, size=(16, 24), seed=0)
    assert (
        main(
            [
                "check-data",
                "--config",
                str(REPO / "configs/demo/mono.yaml"),
                f"--data.init_args.root={good}",
            ]
        )
        == 0
    )
    assert "6 samples, 0 bad" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_config_with_a_users_root_reads_it_and_writes_nothing(tmp_path, capsys):
    from lightning_depth.cli import main

    root = tmp_path / "mine"
    synthesize_diode(root, n=4, size=(12, 16), split="train")  # the demo reads split val
    before = _tree(root)
    demo = str(REPO / "configs/demo/mono.yaml")
    assert main(["check-data", "--config", demo, f"--data.init_args.root={root}"]) == 1
    err = capsys.readouterr().err
    assert f"DIODE root {root} holds no samples: searched {root}/val/indoors/scene_*" in err
    assert _tree(root) == before
