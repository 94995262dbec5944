"""Depth on a real stereo pair: OpenCV's StereoSGBM and our models on Middlebury 2014
*Motorcycle* (scikit-image's copy: 500x741, ground-truth disparity 7-60 px, inf where
unknown, calibration f=994.978 px, cx=311.193, cy=254.877, doffs=31.086 px, B=193.001 mm).

Stereo (disparity of the left view, pixels):

- **3-px error**: share of pixels with ground truth whose error exceeds 3 px and 5 % of the
  true disparity (KITTI's D1, the stereo task's ``3px``); **EPE**: mean absolute error.
  Holes (pixels SGBM leaves without a match) count as errors, read as disparity 0 (so their
  end-point error is the true disparity); pixels without ground truth do not count.
- **SGBM** (``cv2.StereoSGBM_create``) on the colour pair (BGR, as OpenCV reads files),
  ``minDisparity=0``, ``P1 = 8 * 3 * blockSize**2``, ``P2 = 32 * 3 * blockSize**2``,
  ``disp12MaxDiff=1``, ``preFilterCap=63``, ``mode=MODE_SGBM``; output / 16, negative =
  hole. The full run searches 12 settings (``numDisparities`` 64 or 96 x ``blockSize`` 3, 5
  or 7 x {``uniquenessRatio`` 5 without speckle filter, ``uniquenessRatio`` 10 with
  ``speckleWindowSize`` 100, ``speckleRange`` 2}) and reports the best by 3-px error (that is
  oracle tuning on the test pair: the strongest SGBM can be here, not a fair blind figure);
  ``--quick`` runs only the best of them, :data:`SGBM_BEST` (64, 3, 5, no speckle filter).
  ``sgbm_filled_*``: the output with each hole filled from the nearest valid pixel on its
  left (right at the left border), a common post-processing, again the best of the 12
  (:data:`SGBM_BEST_FILLED`: 64, 3, 10, speckle filter 100/2; ``--quick`` runs only it).
- **AnyNet** (a stereo checkpoint, ``--stereo-ckpt`` or the shipped one): every stage of one
  forward pass at full resolution (the task pads to 16 and crops back).
- **AnyNet at twice the size** (``anynet_x2_*``): the same model on the pair enlarged 2x
  (``cv2.resize``, bilinear), each stage's disparity brought back to 500x741 (bilinear) and
  halved. AnyNet estimates at 1/4 resolution and upsamples, so thin structures and edges are
  smeared at the pair's own size; at 2x its grid is twice as fine in the pair's pixels (and 4x
  the work). The full run also prints the sweep over scales 1-3 (:data:`SCALES`); 2 is the
  round factor, not the sweep's best (2.5), but the sweep is on this very pair, like SGBM's
  settings.

Mono (``--mono-ckpt`` or the shipped one) on the left view, against the depth of the ground
truth ``Z = f * B / (d + doffs)``: the prediction (``predict_map``: at its training size and
back) is scaled by ``median(gt) / median(pred)`` over the pixels with ground truth, then
AbsRel and delta < 1.25. Baseline: the best constant depth under the same median scaling,
i.e. ``median(gt)`` everywhere.

Models: with no ``--*-ckpt``, those shipped in ``lightning_depth/pretrained`` (if any: the
stereo one named ``anynet_spn8``, else the first stereo one; the first mono one). Keys of a
model not given print ``nan`` (said in a line above). Last line::

    RESULT sgbm_3px=<%> sgbm_epe=<px> sgbm_filled_3px=<%> sgbm_filled_epe=<px>
           anynet_3px_s1=<%> anynet_3px_s2=<%> anynet_3px_s3=<%> anynet_3px_spn=<%>
           anynet_epe_s1=<px> ... anynet_epe_spn=<px> anynet_x2_3px_s3=<%>
           anynet_x2_3px_spn=<%> anynet_x2_epe_s3=<px> anynet_x2_epe_spn=<px>
           mono_absrel=<x> mono_delta1=<x>
           mono_baseline_absrel=<x> mono_baseline_delta1=<x> seconds=<s>

(one line; 3-px errors in percent). Usage::

    python benchmarks/bench_real.py [--quick] [--stereo-ckpt PATH] [--mono-ckpt PATH]
        [--no-pretrained] [--figure PATH]
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
import torch
from PIL import Image

from lightning_depth.data.middlebury import MOTORCYCLE_CAMERA
from lightning_depth.deploy.checkpoints import load_task
from lightning_depth.encoding import normalize, to_unit
from lightning_depth.metrics.depth import depth_metrics_per_sample
from lightning_depth.metrics.stereo import end_point_error_per_sample, three_pixel_error_per_sample
from lightning_depth.tasks.base import DepthTask
from lightning_depth.viz import colorize_map

#: the best of the 12 searched settings on Motorcycle (numDisparities, blockSize,
#: uniquenessRatio, speckleWindowSize, speckleRange)
SGBM_BEST = (64, 3, 5, 0, 0)
#: ... and the best once holes are filled from the left (speckle filter on)
SGBM_BEST_FILLED = (64, 3, 10, 100, 2)
#: the searched settings: numDisparities x blockSize x (uniqueness and speckle filter)
SGBM_GRID = [
    (nd, bs, *rest)
    for nd, bs, rest in itertools.product((64, 96), (3, 5, 7), ((5, 0, 0), (10, 100, 2)))
]
#: the stereo checkpoint used when several are shipped
PREFERRED_STEREO = "anynet_spn8"
#: RESULT keys of the stereo network: stage k -> suffix
STAGE_SUFFIX = {1: "s1", 2: "s2", 3: "s3", 4: "spn"}
#: the input scales the full run sweeps for the stereo model (``anynet_x2_*``: 2)
SCALES = (1.0, 1.5, 2.0, 2.5, 3.0)
RESULT_KEYS = (
    "sgbm_3px",
    "sgbm_epe",
    "sgbm_filled_3px",
    "sgbm_filled_epe",
    *(f"anynet_3px_{s}" for s in STAGE_SUFFIX.values()),
    *(f"anynet_epe_{s}" for s in STAGE_SUFFIX.values()),
    "anynet_x2_3px_s3",
    "anynet_x2_3px_spn",
    "anynet_x2_epe_s3",
    "anynet_x2_epe_spn",
    "mono_absrel",
    "mono_delta1",
    "mono_baseline_absrel",
    "mono_baseline_delta1",
)


# -- the pair ------------------------------------------------------------------------------


def motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``left``, ``right`` uint8 (H, W, 3) and the ground-truth disparity float32 (H, W), inf
    where unknown (scikit-image's NaN or inf)."""
    from skimage.data import stereo_motorcycle

    left, right, disparity = stereo_motorcycle()
    disparity = np.asarray(disparity, dtype=np.float32)
    return left, right, np.where(np.isfinite(disparity), disparity, np.float32(np.inf))


def stereo_scores(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """3-px error (percent) and EPE (px) of a disparity map, holes (non-finite) as errors."""
    p = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32))[None, None]
    g = torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32))[None, None]
    three = float(three_pixel_error_per_sample(p, g)[0]) * 100.0
    return three, float(end_point_error_per_sample(p, g)[0])


# -- SGBM ----------------------------------------------------------------------------------


def sgbm(left: np.ndarray, right: np.ndarray, setting=SGBM_BEST) -> np.ndarray:
    """StereoSGBM disparity of an RGB pair (see the module docstring), NaN for holes."""
    num_disparities, block, uniqueness, speckle_window, speckle_range = setting
    matcher = cv2.StereoSGBM_create(
        minDisparity=0,
        numDisparities=num_disparities,
        blockSize=block,
        P1=8 * 3 * block**2,
        P2=32 * 3 * block**2,
        disp12MaxDiff=1,
        uniquenessRatio=uniqueness,
        speckleWindowSize=speckle_window,
        speckleRange=speckle_range,
        preFilterCap=63,
        mode=cv2.STEREO_SGBM_MODE_SGBM,
    )
    bgr = [cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in (left, right)]
    disparity = matcher.compute(*bgr).astype(np.float32) / 16.0
    disparity[disparity < 0] = np.nan
    return disparity


def _describe(setting) -> str:
    names = ("numDisparities", "blockSize", "uniquenessRatio", "speckleWindowSize", "speckleRange")
    return " ".join(f"{n}={v}" for n, v in zip(names, setting))


def fill_from_left(disparity: np.ndarray) -> np.ndarray:
    """Each hole (NaN) takes the nearest valid value on its left in its row (on its right at
    the left border; 0 in a row without any)."""
    out = disparity.copy()
    for row in out:
        valid = np.flatnonzero(np.isfinite(row))
        if valid.size == 0:
            row[:] = 0.0
            continue
        # index of the last valid pixel at or before each column; before the first: the first
        last = np.maximum.accumulate(np.where(np.isfinite(row), np.arange(row.size), -1))
        row[:] = row[np.where(last < 0, valid[0], last)]
    return out


# -- models --------------------------------------------------------------------------------


def _inputs(task: DepthTask, *images: np.ndarray) -> tuple[torch.Tensor, ...]:
    """The task's network inputs for uint8 (H, W, 3) images (its input encoding)."""
    tensors = []
    for image in images[: len(task.input_keys)]:
        x = to_unit(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None])
        tensors.append(normalize(x) if task.normalized_inputs else x)
    return tuple(tensors)


@torch.no_grad()
def stereo_stages(task: DepthTask, left: np.ndarray, right: np.ndarray) -> list[np.ndarray]:
    """The disparity of every stage of one forward pass, each (H, W)."""
    batch = dict(zip(task.input_keys, _inputs(task, left, right)))
    outputs = task.forward_outputs(batch)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [o[0, 0].float().numpy() for o in outputs]


def at_scale(
    disparities: Callable[[np.ndarray, np.ndarray], list[np.ndarray]],
    left: np.ndarray,
    right: np.ndarray,
    scale: float,
) -> list[np.ndarray]:
    """``disparities(left, right)`` on the pair resized by ``scale`` (bilinear), every map
    resized back to the pair's size (bilinear) and divided by ``scale``; holes (NaN) stay
    holes where more than half of the resized hole mask covers a pixel."""
    h, w = left.shape[:2]
    big = (round(w * scale), round(h * scale))  # cv2 sizes are (W, H)
    views = [cv2.resize(v, big, interpolation=cv2.INTER_LINEAR) for v in (left, right)]
    out = []
    for d in disparities(*views):
        holes = cv2.resize(np.isnan(d).astype(np.float32), (w, h)) > 0.5
        back = cv2.resize(np.nan_to_num(d), (w, h), interpolation=cv2.INTER_LINEAR) / scale
        out.append(np.where(holes, np.nan, back).astype(np.float32))
    return out


def stereo_stages_scaled(
    task: DepthTask, left: np.ndarray, right: np.ndarray, scale: float
) -> list[np.ndarray]:
    """:func:`stereo_stages` of the pair at ``scale`` (:func:`at_scale`)."""
    return at_scale(lambda a, b: stereo_stages(task, a, b), left, right, scale)


def gt_depth(gt_disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth (m) of the ground-truth disparity, ``f * B / (d + doffs)``, and where it is
    known."""
    valid = np.isfinite(gt_disparity) & (gt_disparity > 0)
    disparity = torch.from_numpy(np.where(valid, gt_disparity, 0).astype(np.float32))
    depth, ok = MOTORCYCLE_CAMERA.depth(disparity[None, None])
    return depth[0, 0].numpy(), valid & ok[0, 0].numpy()


def median_scaled(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """AbsRel and delta < 1.25 of ``pred`` scaled by ``median(gt) / median(pred)`` over
    ``valid``. (A constant prediction scores the baseline: ``median(gt)`` everywhere.)"""
    scaled = pred * (np.median(gt[valid]) / np.median(pred[valid]))
    values = depth_metrics_per_sample(
        torch.from_numpy(scaled.astype(np.float32))[None, None],
        torch.from_numpy(np.where(valid, gt, 0).astype(np.float32))[None, None],
        torch.from_numpy(valid)[None, None],
        log_input=False,
    )
    return {"absrel": float(values["abs_rel"][0]), "delta1": float(values["delta1"][0])}


@torch.no_grad()
def mono_depth(task: DepthTask, left: np.ndarray) -> np.ndarray:
    """The task's metric depth of the left view (``predict_map``), (H, W)."""
    return task.predict_map(*_inputs(task, left))[0, 0].float().numpy()


def shipped_models() -> dict[str, Path]:
    """The checkpoints shipped in ``lightning_depth/pretrained`` (empty if none or no such
    package yet)."""
    try:
        from lightning_depth import pretrained
    except ImportError:
        return {}
    return {name: pretrained.path(name) for name in pretrained.names()}


def choose_models(
    stereo: Optional[str], mono: Optional[str], use_shipped: bool
) -> tuple[Optional[tuple[str, DepthTask]], Optional[tuple[str, DepthTask]]]:
    """``(label, task)`` of the stereo and mono model (``None``: not given)."""
    chosen = {"disparity": None, "depth": None}
    for kind, path in (("disparity", stereo), ("depth", mono)):
        if path is not None:
            task = load_task(path).eval()
            if task.map_kind != kind:
                raise SystemExit(
                    f"error: {path} predicts {task.map_kind}, expected a {kind} model there"
                )
            chosen[kind] = (str(path), task)
    if use_shipped:
        shipped = shipped_models()
        order = sorted(shipped, key=lambda n: n != PREFERRED_STEREO)
        for name in order:
            task = load_task(shipped[name]).eval()
            if chosen.get(task.map_kind, False) is None:
                chosen[task.map_kind] = (f"shipped {name}", task)
    return chosen["disparity"], chosen["depth"]


# -- the run -------------------------------------------------------------------------------


def _figure(path: Path, images: dict[str, np.ndarray]) -> None:
    """The pictures side by side (two per row), a title above each."""
    from PIL import ImageDraw

    tiles = []
    for title, image in images.items():
        tile = np.full((image.shape[0] + 18, image.shape[1], 3), 255, np.uint8)
        tile[18:] = image
        pil = Image.fromarray(tile)
        ImageDraw.Draw(pil).text((4, 3), title, fill=(0, 0, 0))
        tiles.append(np.asarray(pil))
    if len(tiles) % 2:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i : i + 2], axis=1) for i in range(0, len(tiles), 2)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def run(args: argparse.Namespace) -> dict[str, float]:
    start = time.perf_counter()
    left, right, gt = motorcycle()
    valid = np.isfinite(gt)
    print(
        f"Middlebury 2014 Motorcycle (scikit-image): {gt.shape[0]}x{gt.shape[1]} (HxW), "
        f"{valid.sum()} pixels with ground truth, disparity {gt[valid].min():.1f}-"
        f"{gt[valid].max():.1f} px"
    )
    result = {key: math.nan for key in RESULT_KEYS}
    rows: list[tuple[str, str, str]] = []

    settings = [SGBM_BEST, SGBM_BEST_FILLED] if args.quick else SGBM_GRID
    runs = []  # (setting, disparity, raw scores, filled scores, seconds)
    for setting in settings:
        t = time.perf_counter()
        disparity = sgbm(left, right, setting)
        seconds = time.perf_counter() - t
        filled = stereo_scores(fill_from_left(disparity), gt)
        runs.append((setting, disparity, stereo_scores(disparity, gt), filled, seconds))
    which = "of 12 settings" if len(settings) > 1 and not args.quick else "setting (--quick)"
    best = min(runs, key=lambda r: r[2][0])
    best_filled = min(runs, key=lambda r: r[3][0])
    setting, disparity, (three, epe), _, seconds = best
    holes = float(np.isnan(disparity)[valid].mean()) * 100
    print(f"SGBM, the best {which}: {_describe(setting)} ({holes:.1f}% holes, "
          f"{seconds * 1000:.0f} ms)")  # fmt: skip
    print(f"SGBM filled from the left, the best {which}: {_describe(best_filled[0])}")
    result["sgbm_3px"], result["sgbm_epe"] = three, epe
    result["sgbm_filled_3px"], result["sgbm_filled_epe"] = best_filled[3]
    if not args.quick:
        # SGBM enlarged as the stereo model is below (its best settings, twice the range),
        # so that comparison is fair.
        for name, chosen in (("raw", best[0]), ("filled", best_filled[0])):
            doubled = (2 * chosen[0], *chosen[1:])
            back = at_scale(lambda a, b, d=doubled: [sgbm(a, b, d)], left, right, 2)[0]
            back = back if name == "raw" else fill_from_left(back)
            print(f"SGBM {name} on the pair at 2x ({_describe(doubled)}): "
                  f"{stereo_scores(back, gt)[0]:.1f}%")  # fmt: skip
    rows.append(("OpenCV StereoSGBM (holes are errors)", f"{three:.1f}%", f"{epe:.2f} px"))
    rows.append(
        (
            "same, holes filled from the left",
            f"{result['sgbm_filled_3px']:.1f}%",
            f"{result['sgbm_filled_epe']:.2f} px",
        )
    )

    stereo, mono = choose_models(args.stereo_ckpt, args.mono_ckpt, not args.no_pretrained)
    pictures = {
        "left view": left,
        "ground truth": colorize_map(np.where(valid, gt, np.nan), "disparity", 0, gt[valid].max()),
        f"SGBM ({three:.1f}% 3-px)": colorize_map(disparity, "disparity", 0, gt[valid].max()),
    }
    if stereo is None:
        print("no stereo model (pass --stereo-ckpt or ship one in lightning_depth/pretrained): "
              "the anynet_* keys are nan")  # fmt: skip
    else:
        label, task = stereo
        t = time.perf_counter()
        stages = stereo_stages(task, left, right)
        seconds = time.perf_counter() - t
        cells3, cells_epe = [], []
        for k, pred in enumerate(stages, start=1):
            three_k, epe_k = stereo_scores(pred, gt)
            suffix = STAGE_SUFFIX.get(k, f"s{k}")
            result[f"anynet_3px_{suffix}"], result[f"anynet_epe_{suffix}"] = three_k, epe_k
            cells3.append(f"{three_k:.1f}")
            cells_epe.append(f"{epe_k:.2f}")
        names = " / ".join(STAGE_SUFFIX.get(k, f"s{k}") for k in range(1, len(stages) + 1))
        rows.append(
            (f"{label}, stages {names}", " / ".join(cells3) + "%", " / ".join(cells_epe) + " px")
        )
        print(f"stereo model {label}: {len(stages)} stages, {seconds:.2f} s for all on CPU")
        # Stage 3 and the SPN of the pair at 2x (a network with fewer stages leaves nan).
        by_scale = {1.0: stages, 2.0: stereo_stages_scaled(task, left, right, 2)}
        scaled = dict(zip(STAGE_SUFFIX.values(), by_scale[2.0]))
        x2 = {k: stereo_scores(scaled[k], gt) for k in ("s3", "spn") if k in scaled}
        for key, (three_k, epe_k) in x2.items():
            result[f"anynet_x2_3px_{key}"], result[f"anynet_x2_epe_{key}"] = three_k, epe_k
        if x2:
            rows.append(
                (
                    f"{label} on the pair at 2x, stages {' / '.join(x2)}",
                    " / ".join(f"{v[0]:.1f}" for v in x2.values()) + "%",
                    " / ".join(f"{v[1]:.2f}" for v in x2.values()) + " px",
                )
            )
        if not args.quick:
            print("input scale sweep (3-px error of stage 3 / last stage, %):")
            for scale in SCALES:
                if scale not in by_scale:
                    by_scale[scale] = stereo_stages_scaled(task, left, right, scale)
                preds = by_scale[scale]
                s3 = stereo_scores(preds[min(2, len(preds) - 1)], gt)[0]
                print(f"  x{scale:g}: {s3:.1f} / {stereo_scores(preds[-1], gt)[0]:.1f}")
        three_last = result[f"anynet_3px_{STAGE_SUFFIX.get(len(stages), 's1')}"]
        pictures[f"ours ({three_last:.1f}% 3-px)"] = colorize_map(
            stages[-1], "disparity", 0, gt[valid].max()
        )
    depth, known = gt_depth(gt)
    baseline = median_scaled(np.ones_like(depth), depth, known)
    result["mono_baseline_absrel"] = baseline["absrel"]
    result["mono_baseline_delta1"] = baseline["delta1"]
    if mono is None:
        print("no mono model (pass --mono-ckpt or ship one in lightning_depth/pretrained): the "
              "mono_absrel and mono_delta1 keys are nan")  # fmt: skip
    else:
        scores = median_scaled(mono_depth(mono[1], left), depth, known)
        result["mono_absrel"], result["mono_delta1"] = scores["absrel"], scores["delta1"]
    print()
    print(f"| stereo (Motorcycle, {gt.shape[0]}x{gt.shape[1]}) | 3-px error | EPE |")
    print("|---|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("| mono (left view, median-scaled) | AbsRel | delta<1.25 |")
    print("|---|---:|---:|")
    if mono is not None:
        print(f"| {mono[0]} | {result['mono_absrel']:.3f} | {result['mono_delta1']:.3f} |")
    print(
        f"| constant depth (median of the ground truth) | {result['mono_baseline_absrel']:.3f} "
        f"| {result['mono_baseline_delta1']:.3f} |"
    )
    if args.figure:
        _figure(Path(args.figure), pictures)
        print(f"figure: {args.figure}")
    result["seconds"] = time.perf_counter() - start
    return result


def result_line(result: dict[str, float]) -> str:
    def fmt(value: float) -> str:
        return "nan" if math.isnan(value) else f"{value:.6f}"

    return "RESULT " + " ".join(f"{k}={fmt(v)}" for k, v in result.items())


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="SGBM: only the best setting")
    parser.add_argument("--stereo-ckpt", help="a stereo checkpoint (default: the shipped one)")
    parser.add_argument("--mono-ckpt", help="a mono checkpoint (default: the shipped one)")
    parser.add_argument(
        "--no-pretrained", action="store_true", help="do not use the shipped checkpoints"
    )
    parser.add_argument("--figure", help="write left / ground truth / SGBM / ours to this PNG")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(result_line(run(args)))


if __name__ == "__main__":
    main()
