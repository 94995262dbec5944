"""Data loading throughput: extracted folder vs archives read in place vs litdata shards.

Generates DIODE-layout (768x1024 HxW sources) and Monkaa-layout (540x960) data, packs them as
the published archives (DIODE ``val.tar.gz``; Monkaa ``frames_cleanpass.tar`` and
``disparity.tar.bz2``) and as shards (``lightning_depth prepare``), then reads every sample
in a shuffled order in one process (samples/s per DataLoader worker, best of 3 passes) at
training sizes: 256x256 mono items, 256x512 stereo crops. Archives are also read in archive
order, which is what ``prepare`` does; shards are also read as whole epochs through a
``StreamingDataLoader``, whose per-epoch start-up dominates on sets this small. The pre-flight
data check (:mod:`lightning_depth.data.check`) of each folder is timed twice: cold (nothing
cached; the files are in the OS page cache, having just been written) and cached (its
outcomes reused: only the files' sizes and times are read). Finally a short mono training
run (DepthAutoencoder, batch 8, 256x256, one loader worker) on shards measures the fraction
of step time spent waiting for data.

Stereo training items with photometric augmentation (``augment: true``) are timed both ways:
augmented in the worker (``stereo_augmented_samples_s``), or only cropped there
(``augment_on_device``: ``stereo_crop_for_device_samples_s``), with the batch augmented by
the DataModule's transfer hook on the training device, whose rate is timed on CUDA where it
exists, else on the CPU (``augment_hook_cuda_samples_s`` / ``augment_hook_cpu_samples_s``).

Rendered scenes compress better than photographs, so the PNG decoding cost here is a lower
bound of the real data's.

Usage::

    python benchmarks/bench_data.py                 # training sizes (about 3 minutes)
    python benchmarks/bench_data.py --quick         # smoke run, tiny sizes (not comparable)

The last line is ``RESULT shards_vs_folder_mono=<x> shards_vs_folder_stereo=<x>
data_wait_fraction=<x> check_mono_files_s_cold=<x> check_mono_files_s_cached=<x>
check_stereo_files_s_cold=<x> check_stereo_files_s_cached=<x> stereo_augmented_samples_s=<x>
stereo_crop_for_device_samples_s=<x> augment_hook_<cpu|cuda>_samples_s=<x>`` (check rates in
files per second, all workers together).
"""

from __future__ import annotations

import argparse
import random
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from lightning_depth.data.archive import ArchiveSet
from lightning_depth.data.augment import AUGMENT_KEY, StereoAugment
from lightning_depth.data.check import scan
from lightning_depth.data.diode import (
    DIODEDataset,
    DIODELayout,
    DIODETransform,
    list_diode_samples,
    synthesize_diode,
)
from lightning_depth.data.layout import Folder
from lightning_depth.data.monkaa import (
    MonkaaDataset,
    MonkaaLayout,
    MonkaaTransform,
    augment_views,
    list_monkaa_samples,
    synthesize_monkaa,
)
from lightning_depth.data.prepare import main as prepare
from lightning_depth.data.streaming import ShardDataset, StreamingDataLoader
from lightning_depth.data.transforms import format_size


def rate(dataset, order, repeats: int = 3) -> float:
    """Samples/s reading ``dataset[i]`` for ``i`` in ``order`` in this process; the best of
    ``repeats`` passes, as other processes on a shared machine only ever slow a pass down."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in order:
            dataset[i]
        best = max(best, len(order) / (time.perf_counter() - start))
    return best


def loader_epoch_rate(dataset, repeats: int = 3) -> float:
    """Samples/s of a whole shuffled epoch through a single-process StreamingDataLoader,
    start-up included (it dominates on these small sets); the best of ``repeats`` epochs."""
    loader = StreamingDataLoader(dataset, batch_size=1, num_workers=0)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        n = sum(1 for _ in loader)
        best = max(best, n / (time.perf_counter() - start))
    return best


def check_rates(layout, folder: Path, cache: Path) -> tuple[float, float]:
    """Files/s of the pre-flight check of ``folder``: cold (no cached outcome), then cached."""
    source = Folder(folder)
    samples = layout.list(source)
    files = len(samples) * len(layout.files)
    rates = []
    for expect_read in (len(samples), 0):
        start = time.perf_counter()
        result = scan(layout, source, samples, check_dir=cache)
        rates.append(files / (time.perf_counter() - start))
        assert result.read == expect_read and not result.bad, result.summary()
    return rates[0], rates[1]


def pack(folder: Path, top: str, archive: Path, mode: str) -> Path:
    with tarfile.open(archive, mode) as tar:
        tar.add(folder / top, arcname=top)
    return archive


def bench_mono(root: Path, n: int, source_size, size) -> dict[str, float]:
    synthesize_diode(root / "folder", n=n, size=source_size, seed=0)
    t = time.perf_counter()
    archive = pack(root / "folder", "val", root / "val.tar.gz", "w:gz")
    pack_s = time.perf_counter() - t
    t = time.perf_counter()
    argv = ["diode", "--src", str(root / "folder"), "--out", str(root / "shards")]
    prepare([*argv, "--size", format_size(size), "--val-fraction", "0", "--test-fraction", "0"])
    prepare_s = time.perf_counter() - t

    files = list_diode_samples(root / "folder")
    order = [(i, i) for i in random.Random(0).sample(range(n), n)]
    out = {"folder": rate(DIODEDataset(files, size=size, hflip=True), order)}
    out["check_cold"], out["check_cached"] = check_rates(
        DIODELayout(), root / "folder", root / "checks"
    )
    t = time.perf_counter()
    archives = ArchiveSet([archive])
    index_s = time.perf_counter() - t
    members = list_diode_samples(archives)
    from_archive = DIODEDataset(members, size=size, hflip=True, source=archives)
    out["archive_gz_shuffled"] = rate(from_archive, order)
    out["archive_gz_in_order"] = rate(from_archive, [(i, i) for i in range(n)])
    shards = ShardDataset(str(root / "shards" / "train"), DIODETransform(size, hflip=True))
    out["shards"] = rate(shards, [i for i, _ in order])
    out["shards_loader_epoch"] = loader_epoch_rate(shards)
    print(
        f"mono {n} samples {format_size(source_size)} -> {format_size(size)} (HxW): "
        f"pack tar.gz {pack_s:.1f} s, index {index_s:.2f} s, prepare {prepare_s:.1f} s"
    )
    return out


def bench_stereo(root: Path, frames: int, source_size, crop) -> dict[str, float]:
    synthesize_monkaa(root / "folder", scenes=1, frames=frames, size=source_size, seed=0)
    archives = ArchiveSet(
        [
            pack(root / "folder", "frames_cleanpass", root / "frames_cleanpass.tar", "w"),
            pack(root / "folder", "disparity", root / "disparity.tar.bz2", "w:bz2"),
        ]
    )
    t = time.perf_counter()
    argv = ["monkaa", "--src", str(root / "folder"), "--out", str(root / "shards")]
    prepare([*argv, "--val-fraction", str(1 / frames), "--test-fraction", "0"])
    prepare_s = time.perf_counter() - t
    samples = list_monkaa_samples(root / "folder")
    n = len(samples)
    order = [(i, i) for i in random.Random(0).sample(range(n), n)]
    kwargs = dict(training=True, size=crop)
    out = {"folder": rate(MonkaaDataset(samples, **kwargs), order)}
    out["check_cold"], out["check_cached"] = check_rates(
        MonkaaLayout(), root / "folder", root / "checks"
    )
    from_archive = MonkaaDataset(list_monkaa_samples(archives), source=archives, **kwargs)
    out["archive_tar_bz2_shuffled"] = rate(from_archive, order)
    out["archive_tar_bz2_in_order"] = rate(from_archive, [(i, i) for i in range(n)])
    shards = ShardDataset(str(root / "shards" / "train"), MonkaaTransform(**kwargs))
    # the shards hold the train split only (prepare split off a validation frame)
    out["shards"] = rate(shards, random.Random(0).sample(range(len(shards)), len(shards)))
    out["shards_loader_epoch"] = loader_epoch_rate(shards)
    # training items with photometric augmentation: done in the worker, or only cropped
    # there (augment_on_device; the batch is augmented by the DataModule's transfer hook)
    for key, on_device in (("shards_augmented", False), ("shards_crop_for_device", True)):
        transform = MonkaaTransform(**kwargs, augment=StereoAugment(), augment_on_device=on_device)
        dataset = ShardDataset(str(root / "shards" / "train"), transform)
        out[key] = rate(dataset, random.Random(0).sample(range(len(dataset)), len(dataset)))
    print(
        f"stereo {n} frames {format_size(source_size)}, crops {format_size(crop)} (HxW): "
        f"prepare {prepare_s:.1f} s"
    )
    return out


def device_augment_rate(shards: Path, crop, device: torch.device, batch_size: int = 8) -> float:
    """Samples/s of the augmentation that ``augment_on_device`` moves out of the workers
    (:func:`~lightning_depth.data.monkaa.augment_views`: uint8 -> unit floats, the draws,
    normalisation)
    on ``device``, batches of ``batch_size`` already there; the best of 3 passes."""
    transform = MonkaaTransform(True, crop, augment=StereoAugment(), augment_on_device=True)
    dataset = ShardDataset(str(shards), transform)
    loader = StreamingDataLoader(dataset, batch_size=batch_size, num_workers=0)
    batches = []
    for batch in loader:
        params = batch.pop(AUGMENT_KEY)
        batches.append(({k: batch[k].to(device) for k in ("left", "right")}, params))
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    best = 0.0
    for _ in range(3):
        sync()
        start = time.perf_counter()
        for views, params in batches:
            augment_views(views["left"], views["right"], params)
        sync()
        best = max(best, len(dataset) / (time.perf_counter() - start))
    return best


def data_wait_fraction(shards: Path, size, steps: int, batch_size: int) -> float:
    """Share of wall time a mono training loop spends in ``next(loader)``."""
    from lightning_depth.losses.mono import MonoDepthLoss
    from lightning_depth.models.autoencoder import DepthAutoencoder

    net, loss_fn = DepthAutoencoder(depth=3), MonoDepthLoss()
    optimizer = torch.optim.Adam(net.parameters())
    dataset = ShardDataset(str(shards), DIODETransform(size, hflip=True), shuffle=True)
    loader = StreamingDataLoader(dataset, batch_size=batch_size, num_workers=1, drop_last=True)
    waited, done = 0.0, 0
    start = time.perf_counter()
    while done < steps:
        it = iter(loader)
        while done < steps:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            waited += time.perf_counter() - t
            loss = loss_fn(net(batch["image"]), batch["target"], batch["mask"])["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
    return waited / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    parser.add_argument("--mono-samples", type=int, default=12)
    parser.add_argument("--stereo-frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.quick:
        mono = dict(n=6, source_size=(48, 64), size=(32, 32))  # sizes (H, W)
        stereo = dict(frames=4, source_size=(64, 128), crop=(32, 64))
        steps, batch_size = 3, 2
    else:
        mono = dict(n=args.mono_samples, source_size=(768, 1024), size=(256, 256))
        stereo = dict(frames=args.stereo_frames, source_size=(540, 960), crop=(256, 512))
        steps, batch_size = args.steps, 8
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = Path(tmp)
        # one thread, as in a DataLoader worker (PyTorch sets it there): per-worker rates
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        m = bench_mono(root / "diode", **mono)
        s = bench_stereo(root / "monkaa", **stereo)
        torch.set_num_threads(threads)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        s["augment_hook_" + device.type] = device_augment_rate(
            root / "monkaa" / "shards" / "train", stereo["crop"], device
        )
        for name, rates in (("mono", m), ("stereo", s)):
            for source, value in rates.items():
                unit = "files/s (check)" if source.startswith("check") else "samples/s per worker"
                if source.startswith("augment_hook"):
                    unit = f"samples/s in the transfer hook ({torch.get_num_threads()} threads)"
                print(f"{name:6s} {source:26s} {value:8.1f} {unit}")
        shards = root / "diode" / "shards" / "train"
        wait = data_wait_fraction(shards, mono["size"], steps, batch_size)
        print(
            f"mono training from shards, 1 worker, batch {batch_size}: waits {wait:.1%} of the time"
        )
    print(
        f"RESULT shards_vs_folder_mono={m['shards'] / m['folder']:.2f} "
        f"shards_vs_folder_stereo={s['shards'] / s['folder']:.2f} data_wait_fraction={wait:.3f} "
        f"check_mono_files_s_cold={m['check_cold']:.0f} "
        f"check_mono_files_s_cached={m['check_cached']:.0f} "
        f"check_stereo_files_s_cold={s['check_cold']:.0f} "
        f"check_stereo_files_s_cached={s['check_cached']:.0f} "
        f"stereo_augmented_samples_s={s['shards_augmented']:.1f} "
        f"stereo_crop_for_device_samples_s={s['shards_crop_for_device']:.1f} "
        f"augment_hook_{device.type}_samples_s={s['augment_hook_' + device.type]:.1f}"
    )


if __name__ == "__main__":
    main()
