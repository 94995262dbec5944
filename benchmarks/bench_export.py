"""CPU latency of the deployment formats: eager PyTorch, TorchScript, ONNX Runtime fp32 and
int8 for both networks, and the full camera graph next to the bare network.

Mono: ``DepthAutoencoder(depth=4)`` (the paper's 4-1-4) at 256x256, its training size.
Stereo: ``AnyNet(spn_channels=8)``, all four stages, at 384x1248 (KITTI padded to a multiple
of 16, as ``bench_stereo.py``; the ONNX graph has dynamic height and width, the TorchScript one
is traced for this size). Batch 1, random weights and inputs (latency does not depend on them); int8 is
onnxruntime static QDQ quantisation calibrated on 4 random inputs
(:func:`lightning_depth.deploy.compress.quantize_int8`). The engines are timed in interleaved
rounds so that load from other processes spreads over all of them; the median is reported.

The camera graph (``lightning_depth export``'s default, :class:`~lightning_depth.deploy.graph.
CameraGraph`): uint8 ``(1, H, W, 3)`` images in, metric map out, with the scaling,
normalisation, padding/resizing and decoding inside, timed with onnxruntime fp32 on the same
session options as the bare network (``graph_ort_fp32``); ``<task>_graph_overhead`` is its
latency over the bare network's minus 1 (target <= 0.05), from the fastest of the
interleaved rounds (other processes' load only adds time; on a shared CPU two sessions of
the same file differ by more than the graph's extra work), and
``<task>_graph_overhead_median`` the same from the medians. The mono model gets a training size
of 256x256, so its graph runs as exported checkpoints do ("train": resize to the training size
and back) and, the input being 256x256, the two resizes are at the same size: the comparison
is at input size == training size (at other input sizes the network runs at 256x256 while
the bare network would run at the input's size: not comparable). 384x1248 is a multiple of
16, so the stereo graph pads nothing (its pad and crop ops still run). ``runtime_call`` is
:func:`lightning_depth.deploy.load`'s model called on an ``(H, W, 3)`` image (pair) and
``runtime_session`` the same onnxruntime session's ``run`` on the prepared batch;
``runtime_wrapper`` is the runtime's own cost per call (checks, batching, feeds, output),
timed with a stand-in session that returns a computed output, and is reported as
``<task>_runtime_call_overhead_ms`` (``runtime_call_overhead_ms``: the larger of the two);
``runtime_call`` minus ``runtime_session`` says the same within the network's timing noise.
``<task>_graph_overhead_default`` compares the two graphs on onnxruntime's default session
options (what :func:`lightning_depth.deploy.load` uses): the runtime's session of the camera
graph against the bare network's (``ort_fp32_default``), fastest rounds.
Last line::

    RESULT mono_eager_ms=<x> mono_torchscript_ms=<x> mono_ort_fp32_ms=<x> mono_ort_int8_ms=<x>
           mono_graph_ort_fp32_ms=<x> mono_runtime_call_ms=<x> mono_runtime_session_ms=<x>
           mono_runtime_wrapper_ms=<x>
           stereo_... (the same keys) mono_graph_overhead=<x> mono_graph_overhead_median=<x>
           stereo_graph_overhead=<x> stereo_graph_overhead_median=<x>
           mono_runtime_call_overhead_ms=<x> stereo_runtime_call_overhead_ms=<x>
           runtime_call_overhead_ms=<x>

Usage::

    python benchmarks/bench_export.py [--quick] [--rounds N] [--threads N]

``--quick`` uses 64x64 (mono) and 32x64 (stereo) for a smoke run. As the other benchmarks,
this sets ``OMP_WAIT_POLICY=PASSIVE`` before importing torch unless it is set (spinning
OpenMP threads distort timings on a shared CPU).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the OpenMP runtime's start

import torch  # noqa: E402

from lightning_depth.deploy.compress import quantize_int8  # noqa: E402
from lightning_depth.deploy.export import export_model  # noqa: E402
from lightning_depth.deploy.graph import camera_inputs  # noqa: E402
from lightning_depth.deploy.runtime import load  # noqa: E402
from lightning_depth.models.anynet import AnyNet  # noqa: E402
from lightning_depth.models.autoencoder import DepthAutoencoder  # noqa: E402
from lightning_depth.tasks.base import DepthTask  # noqa: E402
from lightning_depth.tasks.mono import MonoDepthModule  # noqa: E402
from lightning_depth.tasks.stereo import StereoDepthModule  # noqa: E402


def _engines(task: DepthTask, height: int, width: int, folder: Path, threads: int):
    """name -> zero-argument callable running one batch-1 inference."""
    import onnxruntime as ort

    wrapper = task.export_module()
    names = task.input_keys
    inputs = task.example_inputs(height, width)
    feeds = {n: t.numpy() for n, t in zip(names, inputs)}
    t0 = time.perf_counter()
    ts = torch.jit.load(
        str(export_model(task, folder / "m.pt", "torchscript", "fp32", height, width))
    )
    fp32 = export_model(task, folder / "m.onnx", "onnx", "fp32", height, width)
    calib = [
        {n: t.numpy() for n, t in zip(names, task.example_inputs(height, width, seed=s))}
        for s in range(1, 5)
    ]
    int8 = quantize_int8(fp32, folder / "m_int8.onnx", calib)
    print(f"  exported in {time.perf_counter() - t0:.0f} s", flush=True)
    options = ort.SessionOptions()
    # Sessions timed in turn must not spin their idle threads: on 2 cores one session's
    # spinning pool slows the next one's run (seen as 2x between identical sessions).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    sessions = {
        k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
        for k, p in (("ort_fp32", fp32), ("ort_int8", int8))
    }

    def eager():
        with torch.no_grad():
            wrapper(*inputs)

    def torchscript():
        with torch.no_grad():
            ts(*inputs)

    # The bare network on onnxruntime's default session options, as the runtime opens files:
    # compared with the runtime's session of the camera graph (``runtime_session``).
    default_options = ort.SessionOptions()
    default_options.log_severity_level = 3
    default_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    default_session = ort.InferenceSession(
        str(fp32), default_options, providers=["CPUExecutionProvider"]
    )

    # The camera graph, on the same session options as the bare network.
    t0 = time.perf_counter()
    graph_path = export_model(task, folder / "graph.onnx", "onnx", "fp32", height, width,
                              graph="camera")  # fmt: skip
    print(f"  camera graph exported in {time.perf_counter() - t0:.0f} s", flush=True)
    graph_session = ort.InferenceSession(
        str(graph_path), options, providers=["CPUExecutionProvider"]
    )
    images = [t.numpy() for t in camera_inputs(task, height, width, batch=1)]
    graph_feeds = {n: a for n, a in zip(names, images)}
    # The runtime: its own session, called with unbatched (H, W, 3) images, against the same
    # session's run on the batch it prepares.
    deployed = load(graph_path, providers=["CPUExecutionProvider"])
    # (its session on the default options less spinning, as every session timed here)
    deployed._session = ort.InferenceSession(
        str(graph_path), default_options, providers=["CPUExecutionProvider"]
    )
    unbatched = [a[0] for a in images]
    # The runtime's own cost per call (checks, batching, feeds, output) without the network:
    # a copy whose session replays a computed output. The difference of runtime_call and
    # runtime_session medians says the same but within the network's timing noise.
    replay = copy.copy(deployed)
    replay._session = _Replay(deployed.session.run(None, graph_feeds))

    return {
        "eager": eager,
        "torchscript": torchscript,
        "ort_fp32": lambda: sessions["ort_fp32"].run(None, feeds),
        "ort_int8": lambda: sessions["ort_int8"].run(None, feeds),
        "ort_fp32_default": lambda: default_session.run(None, feeds),
        "graph_ort_fp32": lambda: graph_session.run(None, graph_feeds),
        "runtime_call": lambda: deployed(*unbatched),
        "runtime_session": lambda: deployed.session.run(None, graph_feeds),
        "runtime_wrapper": lambda: replay(*unbatched),
    }


class _Replay:
    """Stands in for an onnxruntime session: returns a fixed output."""

    def __init__(self, outputs: list) -> None:
        self.outputs = outputs

    def run(self, names, feeds) -> list:
        return self.outputs


def _measure(engines: dict, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median and fastest latency (ms) of each engine over interleaved rounds."""
    for fn in engines.values():  # warm-up (TorchScript profiles its first runs)
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(rounds):
        for name, fn in engines.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return (
        {k: statistics.median(v) for k, v in times.items()},
        {k: min(v) for k, v in times.items()},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    mono_size, stereo_size = ((64, 64), (32, 64)) if args.quick else ((256, 256), (384, 1248))
    models = {
        "mono": (MonoDepthModule(net=DepthAutoencoder(depth=4)).eval(), mono_size),
        "stereo": (StereoDepthModule(net=AnyNet(spn_channels=8)).eval(), stereo_size),
    }
    # As a checkpoint trained at this size: the camera graph resizes to it (and back).
    models["mono"][0].train_size = mono_size
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (task, (h, w)) in models.items():
            print(f"{name} {h}x{w}, {args.threads} threads:", flush=True)
            folder = Path(tmp) / name
            folder.mkdir()
            ms, fastest = _measure(_engines(task, h, w, folder, args.threads), args.rounds)
            for engine, value in ms.items():
                print(f"  {engine:16s} {value:9.2f} ms (fastest {fastest[engine]:.2f})")
                results[f"{name}_{engine}_ms"] = value
            # Load from other processes only adds time: the fastest rounds compare the two
            # graphs' own costs; the medians' ratio is reported too.
            results[f"{name}_graph_overhead"] = (
                fastest["graph_ort_fp32"] / fastest["ort_fp32"] - 1.0
            )
            results[f"{name}_graph_overhead_median"] = ms["graph_ort_fp32"] / ms["ort_fp32"] - 1.0
            results[f"{name}_graph_overhead_default"] = (
                fastest["runtime_session"] / fastest["ort_fp32_default"] - 1.0
            )
            results[f"{name}_runtime_call_overhead_ms"] = ms["runtime_wrapper"]
            print(
                f"  camera graph overhead {100 * results[f'{name}_graph_overhead']:+.1f} %, "
                f"runtime call overhead {results[f'{name}_runtime_call_overhead_ms']:.3f} ms"
            )
    results["runtime_call_overhead_ms"] = max(
        results[f"{n}_runtime_call_overhead_ms"] for n in models
    )
    # (Overheads as fractions and the runtime's in ms, with more digits than the latencies.)
    print(
        "RESULT "
        + " ".join(
            f"{k}={v:.4f}" if "overhead" in k else f"{k}={v:.2f}" for k, v in results.items()
        )
    )


if __name__ == "__main__":
    main()
