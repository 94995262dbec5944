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

from lightning_depth.geometry import backproject, default_intrinsics, disparity_to_depth
from lightning_depth.io.kitti import write_kitti_disparity
from lightning_depth.io.pfm import write_pfm
from lightning_depth.io.ply import write_ply
from lightning_depth.viz import colorize, to_uint8_image

__all__ = ["DepthPredictionWriter"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
RAW_FORMATS = ("npy", "pfm", "kitti", "none")


class DepthPredictionWriter(BasePredictionWriter):
    """Per input ``<name>``, writes into ``output_dir``:

    - ``<name>_color.png``: the map coloured with ``cmap`` (mono: depth, stereo: disparity;
      invalid pixels black);
    - the raw map (mono: metric depth ``exp(log-depth)``, stereo: disparity in pixels of the
      last predicted stage): ``<name>.npy`` (float32), ``<name>.pfm``, or ``<name>.png``
      (KITTI 16-bit disparity, stereo only); ``raw_format="none"`` skips it;
    - ``<name>.ply``: one point per valid pixel, coloured by the (left) image, in the unit of
      the depth (mono: metres; stereo: the unit of ``baseline``).

    The camera is a pinhole with ``focal`` pixels (default ``0.8 * width``) and principal point
    ``(cx, cy)`` (default the image centre), in the pixels of the predicted map. For stereo,
    ``depth = focal * baseline / disparity``, and disparities ``<= min_disparity`` are invalid.

    Before predicting, the checkpoint given by ``--ckpt_path`` is checked to be one of the
    model's task (a stereo checkpoint under a mono config fails with a clear message).

    Args:
        output_dir: folder for the outputs (created).
        cmap: matplotlib colormap of the colour pictures.
        raw_format: ``"npy"``, ``"pfm"``, ``"kitti"`` (stereo only) or ``"none"``.
        point_cloud: write ``.ply`` files.
        ply_binary: binary (default) or ASCII PLY.
        focal: focal length in pixels; default ``0.8 * width``.
        cx: principal point column; default ``(W - 1) / 2``.
        cy: principal point row; default ``(H - 1) / 2``.
        baseline: stereo baseline (depth comes out in its unit).
        min_disparity: stereo disparities at or below this (pixels) are invalid.
        max_depth: optional; points farther than this are left out of the point cloud and
            painted black.
        stages: stereo: run only this many stages (anytime inference; sets the model's
            ``predict_stages``). A command-line ``--model.init_args.predict_stages`` does not
            work with ``--ckpt_path``: LightningCLI then rebuilds the model from the
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

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        from lightning_depth.deploy.export import check_checkpoint_task

        # Under LightningCLI the model is rebuilt from the checkpoint's config, so a
        # checkpoint of the other task shows up as a model that does not fit the data.
        data_task = _data_task(trainer.datamodule)
        if trainer.ckpt_path and data_task is not None:
            check_checkpoint_task(trainer.ckpt_path, data_task)
        elif data_task is not None and data_task != _task_of(pl_module):
            raise ValueError(
                f"the model ({type(pl_module).__name__}, rebuilt from the checkpoint) is a "
                f"{_task_of(pl_module)} model but the data are {data_task} inputs: a "
                f"{_task_of(pl_module)} checkpoint needs configs/predict/"
                f"{_task_of(pl_module)}.yaml"
            )
        if self.stages is not None:
            if _task_of(pl_module) != "stereo":
                raise ValueError("stages applies to stereo models only")
            pl_module.predict_stages = self.stages
        if self.raw_format == "kitti" and _task_of(pl_module) == "mono":
            raise ValueError(
                "raw_format='kitti' stores disparities; a mono model predicts depth: use "
                "'npy' or 'pfm'"
            )
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: dict,
        batch_indices: Optional[Sequence[int]],
        batch: dict,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if "depth_log" in prediction:
            self.write_mono(batch, prediction)
        elif "disparities" in prediction:
            self.write_stereo(batch, prediction)
        else:
            raise ValueError(
                "DepthPredictionWriter: predict_step must return 'depth_log' (mono) or "
                f"'disparities' (stereo), got keys {sorted(prediction)}"
            )

    # -- per task ------------------------------------------------------------------------
    def write_mono(self, batch: dict, prediction: dict) -> None:
        depth = prediction["depth_log"].detach().float().exp()
        valid = torch.isfinite(depth) & (depth > 0)
        images = batch["image"]
        for i, name in enumerate(_names(prediction, batch, len(depth))):
            rgb = to_uint8_image(images[i].float())
            self._write(name, depth[i : i + 1], depth[i : i + 1], valid[i : i + 1], rgb)

    def write_stereo(self, batch: dict, prediction: dict) -> None:
        disparity = prediction["disparities"][-1].detach().float()
        valid = torch.isfinite(disparity) & (disparity > self.min_disparity)
        focal = self.focal if self.focal is not None else 0.8 * disparity.shape[-1]
        depth, _ = disparity_to_depth(disparity, focal, self.baseline, self.min_disparity)
        for i, name in enumerate(_names(prediction, batch, len(disparity))):
            rgb = to_uint8_image(batch["left"][i].float(), _IMAGENET_MEAN, _IMAGENET_STD)
            self._write(name, disparity[i : i + 1], depth[i : i + 1], valid[i : i + 1], rgb)

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


def _task_of(pl_module: L.LightningModule) -> str:
    from lightning_depth.tasks.stereo import StereoDepthModule

    return "stereo" if isinstance(pl_module, StereoDepthModule) else "mono"


def _data_task(datamodule: Any) -> Optional[str]:
    from lightning_depth.data.predict import MonoPredictDataModule, StereoPredictDataModule

    if isinstance(datamodule, StereoPredictDataModule):
        return "stereo"
    if isinstance(datamodule, MonoPredictDataModule):
        return "mono"
    return None


def _names(prediction: dict, batch: dict, n: int) -> list[str]:
    names: Any = prediction.get("name") or batch.get("name")
    if names is None:
        return [f"{i:06d}" for i in range(n)]
    return [str(v) for v in names]
