"""Writes ``predict`` outputs: a colour picture with a colour bar, the raw map and a coloured
point cloud per input, and says in one line what it wrote where."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from lightning_depth.deploy.checkpoints import check_checkpoint_task, checkpoint_task
from lightning_depth.geometry import Camera, backproject
from lightning_depth.io.calib import read_calib
from lightning_depth.io.errors import DataError
from lightning_depth.io.kitti import write_kitti_disparity
from lightning_depth.io.pfm import write_pfm
from lightning_depth.io.ply import write_ply
from lightning_depth.tasks.base import DepthTask
from lightning_depth.viz import MAP_KINDS, add_colorbar, colorize_map, map_colormap, value_range

__all__ = ["DepthPredictionWriter"]

RAW_FORMATS = ("npy", "pfm", "kitti", "none")
#: the files each raw format writes, as the summary line names them.
RAW_FILES = {"npy": "npy", "pfm": "pfm", "kitti": "kitti png", "none": None}
#: the default focal length, as a fraction of the image width (see ``Camera`` defaults below).
DEFAULT_FOCAL_PER_WIDTH = 0.8


class DepthPredictionWriter(BasePredictionWriter):
    """Per input ``<name>``, writes into ``output_dir``:

    - ``<name>_color.png``: the task's prediction map (``DepthTask.predict_map``: depth in
      metres or disparity in pixels, see ``DepthTask.map_kind``) coloured near = warm
      (:func:`~lightning_depth.viz.colorize_map`: depth with ``cmap`` reversed, disparity with
      ``cmap``), invalid pixels black, with a colour bar under it that prints the range and
      the unit (``depth (m)`` / ``disparity (px)``); the map's pixels are the picture's top
      ``H x W``;
    - the raw map: ``<name>.npy`` (float32), ``<name>.pfm``, or ``<name>.png`` (KITTI 16-bit
      disparity, disparity maps only); ``raw_format="none"`` skips it;
    - ``<name>.ply``: one point per valid pixel, coloured by the task's input image
      (``DepthTask.input_image``), in metres (a disparity map with the default camera: in
      baselines).

    At the end of a run it prints one line: how many maps of which files it wrote from which
    inputs to which folder, the resolution predicted at and the camera used (saying when the
    default camera was assumed), e.g. ``predict: wrote 3 depth maps (color png, npy, ply) from
    photos to outputs/predict/mono; resolution: train 256x256, resized back to each input's
    size; camera: default (f=0.8*width, principal point at the centre) - give calib (or fx,
    fy, cx, cy) for true point clouds``.

    **Size.** The map always comes at the input's size. ``resolution`` says how the model
    gets there (``DepthTask.set_predict_resolution``): ``"train"`` resizes the input to the
    training size recorded in the checkpoint and the map back, ``"native"`` pads to the
    network's multiple and crops back, ``"tiles"`` runs overlapping tiles of the training size
    over the image at its own scale (large images), ``"x2"`` (stereo) runs the pair enlarged
    2x and brings the disparity back (finer than AnyNet's 1/4-resolution grid, 4x the work);
    default ``"train"`` for tasks that support it and know their training size (mono
    checkpoints), else ``"native"`` (stereo). A task refuses a resolution it does not know.

    **Camera.** Point clouds back-project pixel ``(u, v)`` of depth ``z`` to
    ``((u - cx) z / fx, (v - cy) z / fy, z)``; a disparity ``d`` has depth
    ``fx * baseline / (d + doffs)`` (:meth:`~lightning_depth.geometry.Camera.depth`). Give
    either ``calib`` (a Middlebury ``calib.txt`` or a KITTI 2012/2015 calibration file) or
    the values ``fx, fy, cx, cy, baseline, doffs`` (not both). Values are in the pixels of the
    images the calibration is for: where that size is known (Middlebury ``width``/``height``,
    KITTI 2015 ``S_rect_02``, or ``calib_size``) and the map's size differs, the inputs are
    taken to be those images *resized* and the camera is scaled to the map (Middlebury's
    quarter-size images with the full-size ``calib.txt`` are exact); a change of aspect
    ratio (a crop) is refused. Where it is not known, a principal point outside the map is
    refused (the calibration is for other images). Values not given are assumed, and the
    summary line says so: ``fx = 0.8 * width`` (a ~64 degree field of view), ``fy = fx``,
    the principal point at the image centre, ``baseline = 1`` (depths in baselines),
    ``doffs = 0``.

    **Colours.** By default each picture spans its own valid range (printed on its bar);
    ``fixed_range=[lo, hi]`` gives every picture of a folder or a video the same scale, so
    equal values get equal colours.

    Before predicting, the model's inputs (``DepthTask.input_keys``) are checked against the
    predict DataModule's ``input_keys``: a checkpoint of another task than the data's fails
    with a message naming the checkpoint's task and its predict config.

    Args:
        output_dir: folder for the outputs (created).
        cmap: a cold-to-warm matplotlib colormap (reversed for depth: near = warm).
        raw_format: ``"npy"``, ``"pfm"``, ``"kitti"`` (disparity maps only) or ``"none"``.
        point_cloud: write ``.ply`` files.
        ply_binary: binary (default) or ASCII PLY.
        resolution: ``"train"``, ``"native"``, ``"tiles"`` or ``"x2"`` (see above);
            default: the task's (``DepthTask.default_predict_resolution``).
        calib: calibration file (``lightning_depth.io.calib.read_calib``).
        calib_size: ``[H, W]`` of the images the camera values (or a ``calib`` file that
            records no size) are for; default: the file's, else the map's own size.
        fx: focal length along the columns, pixels.
        fy: focal length along the rows, pixels; default ``fx``.
        cx: principal point column; default ``(W - 1) / 2``.
        cy: principal point row; default ``(H - 1) / 2``.
        baseline: stereo baseline in metres (disparity maps).
        doffs: column offset of the right principal point (Middlebury ``doffs``), pixels.
        focal: alias of ``fx`` (and ``fy``), kept from earlier versions.
        min_disparity: disparities at or below this (pixels) are invalid.
        max_depth: optional; points farther than this are left out of the point cloud and
            painted black.
        fixed_range: ``[lo, hi]`` of the colour scale (map units) for every picture; default:
            each picture's own range.
        stages: anytime networks: run only this many stages (``DepthTask.set_predict_stages``;
            other tasks refuse it). A command-line ``--model.init_args.predict_stages`` does
            not work with ``--ckpt_path``: LightningCLI then rebuilds the model from the
            checkpoint's saved arguments, overriding it.
    """

    def __init__(
        self,
        output_dir: str = "outputs/predict",
        cmap: str = "jet",
        raw_format: str = "npy",
        point_cloud: bool = True,
        ply_binary: bool = True,
        resolution: Optional[str] = None,
        calib: Optional[str] = None,
        calib_size: Optional[tuple[int, int]] = None,
        fx: Optional[float] = None,
        fy: Optional[float] = None,
        cx: Optional[float] = None,
        cy: Optional[float] = None,
        baseline: Optional[float] = None,
        doffs: Optional[float] = None,
        focal: Optional[float] = None,
        min_disparity: float = 0.1,
        max_depth: Optional[float] = None,
        fixed_range: Optional[tuple[float, float]] = None,
        stages: Optional[int] = None,
    ) -> None:
        super().__init__(write_interval="batch")
        if raw_format not in RAW_FORMATS:
            raise ValueError(f"raw_format must be one of {RAW_FORMATS}, got {raw_format!r}")
        map_colormap("disparity", cmap)  # raises on an unknown colormap
        self.output_dir = Path(output_dir)
        self.cmap = cmap
        self.raw_format = raw_format
        self.point_cloud = point_cloud
        self.ply_binary = ply_binary
        self.resolution = resolution
        if focal is not None:
            if fx is not None or fy is not None:
                raise ValueError("give focal or fx/fy, not both (focal sets fx = fy)")
            fx = fy = focal
        self.given = {
            k: None if v is None else float(v)
            for k, v in dict(fx=fx, fy=fy, cx=cx, cy=cy, baseline=baseline, doffs=doffs).items()
        }
        self.calib = None if calib is None else Path(calib)
        self.calib_camera: Optional[Camera] = None
        if self.calib is not None:
            named = [k for k, v in self.given.items() if v is not None]
            if named:
                raise ValueError(
                    f"give calib or the camera values, not both: calib={calib} and "
                    f"{', '.join(named)} were given"
                )
            self.calib_camera = read_calib(self.calib)
            if calib_size is not None:
                self.calib_camera = replace(self.calib_camera, size=tuple(calib_size))
        self.calib_size = None if calib_size is None else (int(calib_size[0]), int(calib_size[1]))
        for key, unit in (("fx", "pixels"), ("fy", "pixels"), ("baseline", "metres")):
            if self.given[key] is not None and not self.given[key] > 0:
                raise ValueError(f"{key} must be > 0 {unit}, got {self.given[key]:g}")
        self.min_disparity = float(min_disparity)
        self.max_depth = max_depth
        if fixed_range is not None:
            lo, hi = (float(v) for v in fixed_range)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"fixed_range must be [lo, hi] with lo < hi, got {fixed_range}")
            fixed_range = (lo, hi)
        self.fixed_range = fixed_range
        self.stages = stages
        self.written: list[Path] = []
        self._reset_run()

    def _reset_run(self) -> None:
        """Forget what the summary line of the previous run counted."""
        self.maps_written = 0
        self.map_kinds_written: set[str] = set()
        self.cameras_used: dict[tuple[int, int], Camera] = {}
        self.predict_note = ""
        self.inputs: Optional[Any] = None

    def setup(self, trainer: L.Trainer, pl_module: DepthTask, stage: str) -> None:
        if stage != "predict":
            return
        self._reset_run()
        self.check_inputs(pl_module, trainer.datamodule, trainer.ckpt_path)
        if self.stages is not None:
            pl_module.set_predict_stages(self.stages)
        self.check_map_kind(pl_module.map_kind)
        self.inputs = getattr(trainer.datamodule, "inputs", None)
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def on_predict_start(self, trainer: L.Trainer, pl_module: DepthTask) -> None:
        # After setup: a --ckpt_path checkpoint (and the training size it records) is loaded
        # between the two.
        resolution = self.resolution or pl_module.default_predict_resolution
        pl_module.set_predict_resolution(resolution)
        self.predict_note = _resolution_note(resolution, pl_module.train_size)

    def on_predict_end(self, trainer: L.Trainer, pl_module: DepthTask) -> None:
        print(self.summary_line(self.inputs), flush=True)

    @staticmethod
    def check_inputs(task: DepthTask, datamodule: Any, ckpt_path: Optional[str] = None) -> None:
        """Raise if the checkpoint holds another task than the model's, or the data's
        ``input_keys`` are not the model's (DataModules without ``input_keys`` are not
        checked).

        Under LightningCLI the model is rebuilt from the checkpoint's config, so a checkpoint
        of another task than the data's shows up as a model whose inputs are not the data's.
        """
        ckpt_name = None
        if ckpt_path:
            try:
                ckpt_name = checkpoint_task(ckpt_path)
            except DataError:
                # No task record (or not a local file): Lightning's own loading judges it.
                ckpt_name = None
        if ckpt_name is not None and ckpt_name != task.name:
            check_checkpoint_task(ckpt_path, task.name)  # raises, naming the predict config
        data_keys = getattr(datamodule, "input_keys", None)
        if data_keys is None or tuple(data_keys) == tuple(task.input_keys):
            return
        name = ckpt_name or task.name
        subject = (
            f"checkpoint {ckpt_path} holds a {name} model ({type(task).__name__})"
            if ckpt_path
            else f"the model ({type(task).__name__}) is a {name} model"
        )
        raise DataError(
            f"{subject} taking inputs {list(task.input_keys)} but the data "
            f"({type(datamodule).__name__}) give {list(data_keys)}: a {name} checkpoint needs "
            f"configs/predict/{name}.yaml"
        )

    def check_map_kind(self, map_kind: str) -> None:
        """Raise if the writer cannot store maps of ``map_kind`` as asked."""
        if map_kind not in MAP_KINDS:
            raise ValueError(f"prediction maps must be one of {MAP_KINDS}, got {map_kind!r}")
        if self.raw_format == "kitti" and map_kind != "disparity":
            raise ValueError(
                f"raw_format='kitti' stores disparities; this model predicts {map_kind}: use "
                "'npy' or 'pfm'"
            )
        stereo_only = [k for k in ("baseline", "doffs") if self.given[k] is not None]
        if map_kind != "disparity" and stereo_only:
            raise ValueError(
                f"{' and '.join(stereo_only)} turn disparities into depth; this model "
                f"predicts {map_kind}: leave them out"
            )

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: DepthTask,
        prediction: dict,
        batch_indices: Optional[Sequence[int]],
        batch: dict,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.write_batch(pl_module, batch, prediction)

    def write_batch(self, task: DepthTask, batch: dict, prediction: dict) -> None:
        """Write every sample of a batch from ``task.predict_step``'s ``prediction``
        (``{"map": (B, 1, H, W), "name": ...}``, :meth:`DepthTask.predict_map`)."""
        if "map" not in prediction:
            raise ValueError(
                "DepthPredictionWriter: predict_step must return {'map': ..., 'name': ...} "
                f"(DepthTask.predict_step), got keys {sorted(prediction)}"
            )
        maps = prediction["map"]
        names = _names(prediction, batch, len(maps))
        self.check_predicted(maps, task.map_kind, names)
        images = [task.input_image(batch, i) for i in range(len(maps))]
        self.write_maps(maps, task.map_kind, images, names)

    @staticmethod
    def check_predicted(maps: torch.Tensor, map_kind: str, names: Sequence[str]) -> None:
        """Refuse predicted maps ``(B, 1, H, W)`` with NaN or infinite values, naming the
        first sample that has them (a map given to :meth:`write_maps` directly, such as a
        ground truth, may hold inf where it is unknown).

        Raises:
            ValueError: a map is not finite everywhere.
        """
        bad = (~torch.isfinite(maps.detach())).flatten(1).sum(1)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise ValueError(
                f"the model's {map_kind} map for {names[i]!r} has {int(bad[i])} NaN or "
                f"infinite values (of {maps[i].numel()}); nothing was written for its batch. "
                "A working model gives finite maps: check the checkpoint or exported file (a "
                "half-precision model can overflow)"
            )

    def write_maps(
        self,
        maps: torch.Tensor,
        map_kind: str,
        images: Sequence[np.ndarray],
        names: Sequence[str],
    ) -> None:
        """Write a batch of maps (and count them for :meth:`summary_line`).

        Args:
            maps: ``(B, 1, H, W)`` depth in metres or disparity in pixels.
            map_kind: ``"depth"`` or ``"disparity"``: the unit of ``maps``.
            images: per sample the ``uint8 (H, W, 3)`` image colouring its points.
            names: per sample its output name.
        """
        self.check_map_kind(map_kind)
        maps = maps.detach().float()
        if maps.ndim != 4 or maps.shape[1] != 1:
            raise ValueError(f"maps must have shape (B, 1, H, W), got {tuple(maps.shape)}")
        camera = self.camera(*maps.shape[-2:])
        if map_kind == "disparity":
            depth, valid = camera.depth(maps, self.min_disparity)
        else:
            depth = maps
            valid = torch.isfinite(maps) & (maps > 0)
        for i, name in enumerate(names):
            self._write(
                name, map_kind, camera, maps[i : i + 1], depth[i : i + 1], valid[i : i + 1],
                images[i],
            )  # fmt: skip
        self.maps_written += len(names)
        self.map_kinds_written.add(map_kind)

    def camera(self, height: int, width: int) -> Camera:
        """The camera of a ``height x width`` map: the ``calib`` file's or the given values,
        scaled to the map where their image size is known and differs (see the class
        docstring), the rest assumed.

        Raises:
            ValueError: the calibration does not fit a ``height x width`` map.
        """
        if self.calib_camera is not None:
            base = self.calib_camera
        else:
            h0, w0 = self.calib_size or (height, width)
            g = self.given
            fx = g["fx"] if g["fx"] is not None else DEFAULT_FOCAL_PER_WIDTH * w0
            base = Camera(
                fx=fx,
                fy=g["fy"] if g["fy"] is not None else fx,
                cx=g["cx"] if g["cx"] is not None else (w0 - 1) / 2.0,
                cy=g["cy"] if g["cy"] is not None else (h0 - 1) / 2.0,
                baseline=g["baseline"] if g["baseline"] is not None else 1.0,
                doffs=g["doffs"] if g["doffs"] is not None else 0.0,
                size=self.calib_size,
            )
        try:
            camera = base.for_size(int(height), int(width))
        except ValueError as error:
            source = f"calib {self.calib}" if self.calib is not None else "the camera values"
            raise ValueError(f"{source}: {error}") from error
        self.cameras_used[(int(height), int(width))] = camera
        return camera

    def _write(
        self,
        name: str,
        map_kind: str,
        camera: Camera,
        value: torch.Tensor,
        depth: torch.Tensor,
        valid: torch.Tensor,
        rgb: np.ndarray,
    ) -> None:
        """One sample: ``value`` is the map to colour and store (1, 1, H, W), ``depth`` its
        depth, ``valid`` the bool mask, ``rgb`` the uint8 (H, W, 3) image."""
        if self.max_depth is not None:
            valid = valid & (depth <= self.max_depth)
        stem = self.output_dir / name
        stem.parent.mkdir(parents=True, exist_ok=True)
        value_np = value[0, 0].cpu().numpy()
        valid_np = valid[0, 0].cpu().numpy()
        lo, hi = self.fixed_range or value_range(value_np, valid_np)
        picture = colorize_map(value_np, map_kind, lo, hi, mask=valid_np, cmap=self.cmap)
        picture = add_colorbar(picture, map_kind, lo, hi, cmap=self.cmap)
        Image.fromarray(picture).save(f"{stem}_color.png")
        self.written.append(Path(f"{stem}_color.png"))
        if self.raw_format == "npy":
            np.save(f"{stem}.npy", value_np.astype(np.float32))
            self.written.append(Path(f"{stem}.npy"))
        elif self.raw_format == "pfm":
            write_pfm(f"{stem}.pfm", value_np)
            self.written.append(Path(f"{stem}.pfm"))
        elif self.raw_format == "kitti":
            write_kitti_disparity(f"{stem}.png", np.clip(value_np, 0.0, None), valid_np)
            self.written.append(Path(f"{stem}.png"))
        if self.point_cloud:
            intrinsics = camera.intrinsics(device=depth.device, dtype=depth.dtype)
            points = backproject(depth, intrinsics)[0].cpu().numpy()
            write_ply(f"{stem}.ply", points[valid_np], rgb[valid_np], binary=self.ply_binary)
            self.written.append(Path(f"{stem}.ply"))

    # -- the summary line ----------------------------------------------------------------
    def summary_line(self, inputs: Any = None) -> str:
        """The line ``predict`` prints at the end: what was written from ``inputs`` (the
        predict data's ``inputs``; optional) to which folder, at which resolution, with which
        camera, e.g. ``predict: wrote 3 depth maps (color png, npy, ply) from photos to
        outputs/predict/mono; resolution: native; camera: default (...) - give calib ...``."""
        kinds = "/".join(sorted(self.map_kinds_written)) or "prediction"
        files = ["color png", RAW_FILES[self.raw_format], "ply" if self.point_cloud else None]
        count = f"{self.maps_written} {kinds} map{'' if self.maps_written == 1 else 's'}"
        line = f"predict: wrote {count} ({', '.join(f for f in files if f)})"
        if inputs:
            shown = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
            line += f" from {', '.join(_shown(e) for e in shown)}"
        line += f" to {self.output_dir}"
        if self.predict_note:
            line += f"; resolution: {self.predict_note}"
        if self.fixed_range is not None:
            line += f"; colours: fixed range {self.fixed_range[0]:g}..{self.fixed_range[1]:g}"
        else:
            line += "; colours: each picture's own range (on its bar)"
        if self.point_cloud:
            line += f"; camera: {self.camera_note()}"
        return line

    def camera_note(self) -> str:
        """Where the camera came from and what was assumed, for :meth:`summary_line`."""
        disparity = "disparity" in self.map_kinds_written
        sizes = sorted(self.cameras_used)
        if self.calib_camera is not None:
            c = self.calib_camera
            note = (
                f"{self.calib} (fx={c.fx:g} fy={c.fy:g} cx={c.cx:g} cy={c.cy:g} px, "
                f"baseline={c.baseline:g} m, doffs={c.doffs:g} px"
            )
            if c.size is not None:
                scaled = [s for s in sizes if s != c.size]
                note += f", for {c.size[0]}x{c.size[1]} images"
                if scaled:
                    shown = ", ".join(f"{h}x{w}" for h, w in scaled[:3])
                    note += f"; scaled to the {shown} maps"
            return note + ")"
        g = self.given
        if all(v is None for v in g.values()):
            if disparity:
                return (
                    "default (f=0.8*width, principal point at the centre, baseline=1, doffs=0: "
                    "depths in baselines) - give calib (or fx, fy, cx, cy, baseline, doffs) "
                    "for metric point clouds"
                )
            return (
                "default (f=0.8*width, principal point at the centre) - give calib (or fx, "
                "fy, cx, cy) for true point clouds"
            )
        relevant = ("fx", "fy", "cx", "cy", "baseline", "doffs") if disparity else (
            "fx", "fy", "cx", "cy"
        )  # fmt: skip
        given = [f"{k}={g[k]:g}" for k in relevant if g[k] is not None]
        assumed = [k for k in relevant if g[k] is None]
        defaults = {
            "fx": "fx=0.8*width",
            "fy": "fy=fx",
            "cx": "cx=centre",
            "cy": "cy=centre",
            "baseline": "baseline=1 (depths in baselines)",
            "doffs": "doffs=0",
        }
        note = f"given {' '.join(given)}"
        if self.calib_size is not None:
            note += f" for {self.calib_size[0]}x{self.calib_size[1]} images"
        if assumed:
            note += f"; assumed {', '.join(defaults[k] for k in assumed)}"
        return note


def _resolution_note(resolution: str, train_size: Optional[tuple[int, int]]) -> str:
    size = f" {train_size[0]}x{train_size[1]}" if train_size else ""
    if resolution == "train":
        return f"train{size}, maps resized back to each input's size"
    if resolution == "tiles":
        return f"tiles of{size} at the inputs' own scale"
    if resolution == "x2":
        return "x2 (each input enlarged 2x, maps brought back to its size)"
    return f"{resolution} (each input at its own size)"


def _shown(entry: Any) -> str:
    if isinstance(entry, (list, tuple)):
        return "[" + ", ".join(str(e) for e in entry) + "]"
    return str(entry)


def _names(prediction: dict, batch: dict, n: int) -> list[str]:
    names: Any = prediction.get("name") or batch.get("name")
    if names is None:
        return [f"{i:06d}" for i in range(n)]
    return [str(v) for v in names]
