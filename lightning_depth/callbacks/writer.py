"""Writes ``predict`` outputs: a colour picture, the raw map and a coloured point cloud per
input."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from lightning_depth.deploy.checkpoints import check_checkpoint_task, checkpoint_task
from lightning_depth.geometry import backproject, default_intrinsics, disparity_to_depth
from lightning_depth.io.errors import DataError
from lightning_depth.io.kitti import write_kitti_disparity
from lightning_depth.io.pfm import write_pfm
from lightning_depth.io.ply import write_ply
from lightning_depth.tasks.base import DepthTask
from lightning_depth.viz import colorize

__all__ = ["DepthPredictionWriter"]

RAW_FORMATS = ("npy", "pfm", "kitti", "none")
#: units of ``DepthTask.prediction_map`` the writer knows (``DepthTask.map_kind``).
MAP_KINDS = ("depth", "disparity")


class DepthPredictionWriter(BasePredictionWriter):
    """Per input ``<name>``, writes into ``output_dir``:

    - ``<name>_color.png``: the task's prediction map (``DepthTask.prediction_map``: depth in
      metres or disparity in pixels, see ``DepthTask.map_kind``) coloured with ``cmap``
      (invalid pixels black);
    - the raw map: ``<name>.npy`` (float32), ``<name>.pfm``, or ``<name>.png`` (KITTI 16-bit
      disparity, disparity maps only); ``raw_format="none"`` skips it;
    - ``<name>.ply``: one point per valid pixel, coloured by the task's input image
      (``DepthTask.input_image``), in the unit of the depth (metres for a depth map; the unit
      of ``baseline`` for a disparity map).

    The camera is a pinhole with ``focal`` pixels (default ``0.8 * width``) and principal point
    ``(cx, cy)`` (default the image centre), in the pixels of the predicted map. A disparity
    map becomes ``depth = focal * baseline / disparity``, and disparities
    ``<= min_disparity`` are invalid.

    Before predicting, the model's inputs (``DepthTask.input_keys``) are checked against the
    predict DataModule's ``input_keys``: a checkpoint of another task than the data's fails
    with a message naming the checkpoint's task and its predict config.

    Args:
        output_dir: folder for the outputs (created).
        cmap: matplotlib colormap of the colour pictures.
        raw_format: ``"npy"``, ``"pfm"``, ``"kitti"`` (disparity maps only) or ``"none"``.
        point_cloud: write ``.ply`` files.
        ply_binary: binary (default) or ASCII PLY.
        focal: focal length in pixels; default ``0.8 * width``.
        cx: principal point column; default ``(W - 1) / 2``.
        cy: principal point row; default ``(H - 1) / 2``.
        baseline: stereo baseline of disparity maps (depth comes out in its unit).
        min_disparity: disparities at or below this (pixels) are invalid.
        max_depth: optional; points farther than this are left out of the point cloud and
            painted black.
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
        focal: Optional[float] = None,
        cx: Optional[float] = None,
        cy: Optional[float] = None,
        baseline: float = 1.0,
        min_disparity: float = 0.1,
        max_depth: Optional[float] = None,
        stages: Optional[int] = None,
    ) -> None:
        super().__init__(write_interval="batch")
        if raw_format not in RAW_FORMATS:
            raise ValueError(f"raw_format must be one of {RAW_FORMATS}, got {raw_format!r}")
        from matplotlib import colormaps

        if cmap not in colormaps:
            raise ValueError(f"cmap must be a matplotlib colormap name, got {cmap!r}")
        self.output_dir = Path(output_dir)
        self.cmap = cmap
        self.raw_format = raw_format
        self.point_cloud = point_cloud
        self.ply_binary = ply_binary
        self.focal, self.cx, self.cy = focal, cx, cy
        self.baseline = float(baseline)
        self.min_disparity = float(min_disparity)
        self.max_depth = max_depth
        self.stages = stages
        self.written: list[Path] = []

    def setup(self, trainer: L.Trainer, pl_module: DepthTask, stage: str) -> None:
        if stage != "predict":
            return
        self.check_inputs(pl_module, trainer.datamodule, trainer.ckpt_path)
        if self.stages is not None:
            pl_module.set_predict_stages(self.stages)
        self.check_map_kind(pl_module.map_kind)
        self.output_dir.mkdir(parents=True, exist_ok=True)

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
        images = [task.input_image(batch, i) for i in range(len(maps))]
        self.write_maps(maps, task.map_kind, images, _names(prediction, batch, len(maps)))

    def write_maps(
        self,
        maps: torch.Tensor,
        map_kind: str,
        images: Sequence[np.ndarray],
        names: Sequence[str],
    ) -> None:
        """Write a batch of maps.

        Args:
            maps: ``(B, 1, H, W)`` depth in metres or disparity in pixels.
            map_kind: ``"depth"`` or ``"disparity"``: the unit of ``maps``.
            images: per sample the ``uint8 (H, W, 3)`` image colouring its points.
            names: per sample its output name.
        """
        self.check_map_kind(map_kind)
        maps = maps.detach().float()
        if map_kind == "disparity":
            valid = torch.isfinite(maps) & (maps > self.min_disparity)
            focal = self.focal if self.focal is not None else 0.8 * maps.shape[-1]
            depth, _ = disparity_to_depth(maps, focal, self.baseline, self.min_disparity)
        else:
            depth = maps
            valid = torch.isfinite(maps) & (maps > 0)
        for i, name in enumerate(names):
            self._write(name, maps[i : i + 1], depth[i : i + 1], valid[i : i + 1], images[i])

    def _write(
        self,
        name: str,
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
        Image.fromarray(colorize(value_np, valid_np, cmap=self.cmap)).save(f"{stem}_color.png")
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
            h, w = value_np.shape
            intrinsics = default_intrinsics(
                h, w, self.focal, self.cx, self.cy, device=depth.device, dtype=depth.dtype
            )
            points = backproject(depth, intrinsics)[0].cpu().numpy()
            write_ply(f"{stem}.ply", points[valid_np], rgb[valid_np], binary=self.ply_binary)
            self.written.append(Path(f"{stem}.ply"))


def _names(prediction: dict, batch: dict, n: int) -> list[str]:
    names: Any = prediction.get("name") or batch.get("name")
    if names is None:
        return [f"{i:06d}" for i in range(n)]
    return [str(v) for v in names]
