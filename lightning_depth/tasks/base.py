"""The task contract: everything generic code (callbacks, export, compression, ablations,
benchmarks) needs from a depth task, as methods and attributes of :class:`DepthTask`.

Generic code asks the task; it never checks which task it holds. A new model family is one
new subclass in ``tasks/``; a test defines a toy one outside the package and runs fit,
predict, export and ablate on it.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from typing import Any, Callable, ClassVar, Iterable, Optional, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lightning_depth.data.augment import AUGMENT_KEY

__all__ = ["DepthTask", "Headline", "PictureRoles", "TimedPart"]


@dataclasses.dataclass(frozen=True)
class Headline:
    """A headline metric of a task: a key of its epoch and per-sample metrics, and how
    reports show it.

    Args:
        key: metric key (``"ssim"``, ``"3px"``); ``val/<key>`` and ``test/<key>`` are logged.
        label: table column title (e.g. ``"3-px error (%)"``).
        scale: reports show ``scale * value`` (100 for a fraction shown in percent).
        digits: decimals shown.
        higher_is_better: the metric's direction.
    """

    key: str
    label: str
    scale: float = 1.0
    digits: int = 4
    higher_is_better: bool = False


@dataclasses.dataclass(frozen=True)
class PictureRoles:
    """Which of :meth:`DepthTask.visualize`'s pictures are inputs, the target and the final
    prediction (for grids that put several models side by side)."""

    inputs: tuple[str, ...]
    target: str
    prediction: str


#: A named part of a forward pass to time, and a call that runs the pass up to it.
TimedPart = tuple[str, Callable[[], Any]]


class DepthTask(L.LightningModule):
    """Base LightningModule of a depth task and the contract generic code relies on.

    A subclass wires a network, a loss, metrics and an optimiser, and defines:

    - class attributes :attr:`name`, :attr:`input_keys`, :attr:`target_key`,
      :attr:`output_name`, :attr:`output_unit`, :attr:`monitor`, :attr:`monitor_mode`,
      :attr:`headlines`, :attr:`default_export_size`, :attr:`dynamic_batch_export`;
    - :meth:`forward_outputs` (the network's outputs for a batch), :meth:`final_output`,
      :meth:`compute_loss`, the metric methods, :meth:`per_sample_metrics`,
      :meth:`visualize`, :meth:`export_module`, :meth:`prediction_map`,
      :meth:`input_image`.

    Batches are dicts of tensors (keys :attr:`input_keys`, :attr:`target_key`, ...) with an
    optional ``name`` list. The base class provides the train/val/test/predict steps, epoch
    metric logging, optimiser wiring and :meth:`evaluate`.

    Args:
        optimizer: callable ``params -> Optimizer`` (LightningCLI ``class_path``/``init_args``);
            ``None`` uses :meth:`default_optimizer`.
        scheduler: optional callable ``optimizer -> LRScheduler``; stepped per epoch and, for
            ``ReduceLROnPlateau``, on :attr:`monitor`.
    """

    #: short task name (reports, file names, export metadata).
    name: ClassVar[str] = "depth"
    #: batch keys the network takes, in call order (also the exported graph's input names).
    input_keys: ClassVar[tuple[str, ...]] = ("image",)
    #: whether the network takes ImageNet-normalised images (else images in [0, 1]); see
    #: :mod:`lightning_depth.encoding`.
    normalized_inputs: ClassVar[bool] = False
    #: batch key of the ground truth.
    target_key: ClassVar[str] = "target"
    #: name of the exported graph's output.
    output_name: ClassVar[str] = "prediction"
    #: what the final output holds, with its unit (e.g. ``"log-depth (log metres)"``).
    output_unit: ClassVar[str] = ""
    #: metric the scheduler and the default best checkpoint watch, and its direction.
    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[str] = "min"
    #: the metrics reports show, the first being the primary one.
    headlines: ClassVar[tuple[Headline, ...]] = ()
    #: export example size ``(H, W)`` when none is given.
    default_export_size: ClassVar[tuple[int, int]] = (256, 256)
    #: whether the exported ONNX graph takes any batch size.
    dynamic_batch_export: ClassVar[bool] = True
    #: a one-line description of the metrics for reports.
    metrics_note: ClassVar[str] = ""

    def __init__(
        self,
        optimizer: Optional[OptimizerCallable] = None,
        scheduler: Optional[LRSchedulerCallable] = None,
    ) -> None:
        super().__init__()
        self._optimizer_factory = optimizer
        self._scheduler_factory = scheduler
        #: ``(H, W)`` the network was trained at (the training DataModule's ``size``), recorded
        #: in checkpoints so predict and export can run at it; ``None`` when unknown.
        self.train_size: Optional[tuple[int, int]] = None

    # -- hyper-parameters and checkpoints ------------------------------------------------
    def save_task_hyperparameters(self) -> None:
        """``save_hyperparameters`` of the subclass' ``__init__`` arguments, without module
        objects.

        Under LightningCLI the stored values are the config (``class_path``/``init_args``), so
        ``load_from_checkpoint(path)`` rebuilds the network from it. Built in Python, the
        arguments are module objects; those are dropped (a checkpoint holds their weights,
        and pickled modules would not load with ``torch.load(weights_only=True)``), so pass
        the same ``net=...`` to ``load_from_checkpoint`` then.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            self.save_hyperparameters(frame=inspect.currentframe().f_back)
        modules = [k for k, v in self.hparams.items() if isinstance(v, nn.Module)]
        self.remove_ignored_hparams(modules)
        for key in modules:
            self._hparams_initial.pop(key, None)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Which class to rebuild: export and compression load any task from its checkpoint.
        cls = type(self)
        checkpoint["task"] = {
            "class_path": f"{cls.__module__}.{cls.__qualname__}",
            "name": self.name,
            "train_size": list(self.train_size) if self.train_size else None,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        size = (checkpoint.get("task") or {}).get("train_size")
        if size is None:  # older checkpoints: the DataModule's saved ``size``
            size = (checkpoint.get("datamodule_hyper_parameters") or {}).get("size")
        self.train_size = (int(size[0]), int(size[1])) if size else None

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        size = getattr(datamodule, "size", None)
        if size:
            self.train_size = (int(size[0]), int(size[1]))

    # -- optimisation --------------------------------------------------------------------
    def default_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        raise NotImplementedError

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        factory: Callable = self._optimizer_factory or self.default_optimizer
        optimizer = factory(params)
        if self._scheduler_factory is None:
            return optimizer
        scheduler = self._scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"},
        }

    # -- the network ---------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        """Input heights and widths the network takes are multiples of this."""
        return int(getattr(self.net, "size_multiple", 1))

    @property
    def num_stages(self) -> int:
        """Outputs of a full forward pass (anytime networks have several; others one)."""
        return int(getattr(self.net, "num_stages", 1))

    def parameter_count(self) -> int:
        """The network's parameter count as the paper reports it (default: weights only)."""
        return sum(p.numel() for p in self.net.parameters())

    def network_inputs(self, batch: dict) -> tuple[torch.Tensor, ...]:
        """The tensors of :attr:`input_keys`, in call order."""
        return tuple(batch[k] for k in self.input_keys)

    def forward_outputs(self, batch: dict, stages: Optional[int] = None) -> Any:
        """The network's outputs for a batch (a tensor, or one per stage), at the batch's
        size; ``stages`` stops anytime networks early."""
        raise NotImplementedError

    def final_output(self, outputs: Any) -> torch.Tensor:
        """The final ``(B, 1, H, W)`` prediction among :meth:`forward_outputs`' outputs."""
        return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs

    def example_inputs(
        self,
        height: int,
        width: int,
        batch: int = 1,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> tuple[torch.Tensor, ...]:
        """Random network inputs ``(batch, 3, height, width)``, one per :attr:`input_keys`,
        in the network's input encoding: uniform in [0, 1], or standard normal when
        :attr:`normalized_inputs`."""
        g = torch.Generator().manual_seed(seed)
        draw = torch.randn if self.normalized_inputs else torch.rand
        return tuple(draw(batch, 3, height, width, generator=g).to(dtype) for _ in self.input_keys)

    def export_module(self, stages: Optional[int] = None) -> nn.Module:
        """A module taking the :attr:`input_keys` tensors (sizes multiples of
        :attr:`size_multiple`) and returning the final ``(B, 1, H, W)`` output, for ONNX and
        TorchScript. ``stages``: anytime networks stop early."""
        raise NotImplementedError

    def set_predict_stages(self, stages: Optional[int]) -> None:
        """Run only ``stages`` stages in ``predict`` (anytime networks)."""
        if stages is not None:
            raise ValueError(f"{self.name} models have no stages to stop at (got stages={stages})")

    # -- loss and steps ------------------------------------------------------------------
    def compute_loss(self, batch: dict, outputs: Any) -> dict[str, torch.Tensor]:
        """``{"loss": total, <term>: value, ...}``; each term is logged as
        ``{stage}/loss_<term>``."""
        raise NotImplementedError

    @property
    def loss_terms(self) -> tuple[str, ...]:
        """Names of the loss terms :meth:`compute_loss` returns besides ``loss``."""
        return ()

    def _step(self, batch: dict, stage: str) -> tuple[torch.Tensor, Any]:
        if AUGMENT_KEY in batch:
            raise RuntimeError(
                f"the {stage} batch still holds its augmentation draws ({AUGMENT_KEY!r}): a "
                "DataModule built with augment_on_device=True applies them in its "
                "transfer_batch_to_device hook; pass the DataModule to the Trainer rather "
                "than its dataloaders"
            )
        outputs = self.forward_outputs(batch)
        # Losses (divisions, exponentials) run in float32 under autocast.
        with torch.autocast(self.device.type, enabled=False):
            terms = self.compute_loss(batch, outputs)
        bs = batch[self.input_keys[0]].shape[0]
        on_step = stage == "train"
        for key, value in terms.items():
            self.log(
                f"{stage}/{key}" if key == "loss" else f"{stage}/loss_{key}",
                value,
                prog_bar=key == "loss",
                batch_size=bs,
                on_step=on_step,
                on_epoch=True,
                sync_dist=not on_step,
            )
        return terms["loss"], outputs

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch, "train")
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> Any:
        _, outputs = self._step(batch, "val")
        self.update_metrics(self.val_metrics, batch, outputs)
        return outputs

    def test_step(self, batch: dict, batch_idx: int) -> Any:
        _, outputs = self._step(batch, "test")
        self.update_metrics(self.test_metrics, batch, outputs)
        return outputs

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """``{"map": (B, 1, H, W), "name": [...]}``: :meth:`predict_map` of the batch."""
        return {"map": self.predict_map(*self.network_inputs(batch)), "name": batch.get("name")}

    def predict_map(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The metric prediction map of network-ready inputs, at their own size.

        What ``predict`` writes and the exported camera graph
        (:mod:`lightning_depth.deploy.graph`) returns, so the two cannot differ: the map of
        :meth:`prediction_map` (``map_kind``: depth in metres or disparity in pixels, >= 0)
        under the current :attr:`predict_stages` and :attr:`predict_resolution`. Traceable:
        no Python branch depends on the input's size.

        Args:
            inputs: one ``(B, 3, H, W)`` tensor per :attr:`input_keys`, encoded as in training
                (see :attr:`normalized_inputs`), any ``H, W``.

        Returns:
            ``(B, 1, H, W)`` float map.
        """
        batch = dict(zip(self.input_keys, inputs))
        return self.prediction_map(self.forward_outputs(batch, stages=self.predict_stages))

    #: stages ``predict`` runs (``None``: all); see :meth:`set_predict_stages`.
    predict_stages: Optional[int] = None
    #: how :meth:`predict_map` sizes its inputs, one of :attr:`predict_resolutions`.
    predict_resolution: str = "native"
    #: the resolutions a task can predict at: ``"native"`` (padded to :attr:`size_multiple`
    #: and cropped back), ``"train"`` (resized to :attr:`train_size` and the map resized
    #: back), ``"tiles"`` (overlapping tiles of :attr:`train_size`). The map comes back at
    #: the inputs' size in every one.
    predict_resolutions: ClassVar[tuple[str, ...]] = ("native",)
    #: the resolutions that work at the training size (and need it recorded)
    train_size_resolutions: ClassVar[tuple[str, ...]] = ("train", "tiles")

    @property
    def default_predict_resolution(self) -> str:
        """The resolution ``predict`` uses unless told: ``"train"`` where the task supports
        it and knows :attr:`train_size`, else ``"native"``."""
        if "train" in self.predict_resolutions and self.train_size is not None:
            return "train"
        return "native"

    def set_predict_resolution(self, resolution: str) -> None:
        """Choose :attr:`predict_resolution` (one of :attr:`predict_resolutions`)."""
        if resolution not in self.predict_resolutions:
            raise ValueError(
                f"{type(self).__name__} predicts at one of {self.predict_resolutions}, got "
                f"{resolution!r}"
            )
        if resolution in self.train_size_resolutions and self.train_size is None:
            raise ValueError(
                f"predicting at resolution {resolution!r} needs the training size, which this "
                "model does not record (a checkpoint of an older version, or a model not "
                "trained by `lightning_depth fit`): use resolution 'native'"
            )
        self.predict_resolution = resolution

    # -- metrics -------------------------------------------------------------------------
    def make_metrics(self) -> nn.ModuleDict:
        """Fresh epoch metrics over :meth:`forward_outputs`' outputs (every stage)."""
        return self.make_final_metrics()

    def update_metrics(self, metrics: nn.ModuleDict, batch: dict, outputs: Any) -> None:
        self.update_final_metrics(metrics, batch, self.final_output(outputs))

    def compute_metrics(self, metrics: nn.ModuleDict) -> dict[str, torch.Tensor]:
        """Epoch values of :meth:`make_metrics`' metrics; includes every headline key."""
        return _compute(metrics)

    def make_final_metrics(self) -> nn.ModuleDict:
        """Fresh metrics of the final output only (keys include every headline key)."""
        raise NotImplementedError

    def update_final_metrics(
        self, metrics: nn.ModuleDict, batch: dict, final: torch.Tensor
    ) -> None:
        """Update :meth:`make_final_metrics`' metrics with a final ``(B, 1, H, W)`` output."""
        raise NotImplementedError

    def per_sample_metrics(self, batch: dict, outputs: Any) -> dict[str, torch.Tensor]:
        """Per-sample metrics, each ``(B,)`` (NaN where a sample has nothing to measure);
        includes every headline key (of the final output)."""
        raise NotImplementedError

    def _log_epoch_metrics(self, metrics: nn.ModuleDict, stage: str) -> None:
        values = self.compute_metrics(metrics)
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()})
        for m in metrics.values():
            m.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics(self.test_metrics, "test")

    @torch.no_grad()
    def evaluate(
        self,
        dataloader: Iterable[dict],
        predict: Optional[Callable[[dict], torch.Tensor]] = None,
    ) -> dict[str, float]:
        """Run the model over ``dataloader`` outside the Trainer loop and return the epoch
        metrics (the same metric classes as ``validate``). The model's train/eval mode is
        restored afterwards.

        Args:
            dataloader: batches as the task's DataModule gives them.
            predict: another predictor of the final ``(B, 1, H, W)`` output from a batch
                (e.g. an exported file); then the final-output metrics are returned.
        """
        was_training = self.training
        self.eval()
        metrics = (self.make_metrics() if predict is None else self.make_final_metrics()).to(
            self.device
        )
        try:
            for batch in dataloader:
                batch = self.transfer_batch_to_device(batch, self.device, 0)
                if predict is None:
                    self.update_metrics(metrics, batch, self.forward_outputs(batch))
                else:
                    final = predict(batch).to(self.device)
                    self.update_final_metrics(metrics, batch, final)
            values = self.compute_metrics(metrics) if predict is None else _compute(metrics)
            return {k: float(v) for k, v in values.items()}
        finally:
            self.train(was_training)

    # -- timing --------------------------------------------------------------------------
    def timed_parts(self, batch: dict) -> list[TimedPart]:
        """Parts of the forward pass to time on ``batch``, each with a call that runs the pass
        up to it (anytime networks: ``stage1``, ``stage2``, ...; others one ``forward``)."""
        if self.num_stages == 1:
            return [("forward", lambda: self.forward_outputs(batch))]
        return [
            (f"stage{k}", lambda k=k: self.forward_outputs(batch, stages=k))
            for k in range(1, self.num_stages + 1)
        ]

    # -- pictures and outputs ------------------------------------------------------------
    @property
    def loss_curve_keys(self) -> tuple[str, ...]:
        """Logged loss keys worth a curve in reports (``loss`` and per-stage terms)."""
        return ("loss",)

    @property
    def picture_roles(self) -> PictureRoles:
        """Which :meth:`visualize` pictures are the inputs, the target and the prediction."""
        raise NotImplementedError

    def visualize(self, batch: dict, outputs: Any, index: int = 0) -> dict[str, np.ndarray]:
        """Pictures of one sample: a dict of ``uint8 (H, W, 3)`` arrays."""
        raise NotImplementedError

    #: what :meth:`prediction_map` returns: ``"depth"`` (metres) or ``"disparity"`` (pixels).
    map_kind: ClassVar[str] = "depth"

    def prediction_map(self, outputs: Any) -> torch.Tensor:
        """The map ``predict`` writes, ``(B, 1, H, W)`` float32, in :attr:`map_kind` units."""
        raise NotImplementedError

    def input_image(self, batch: dict, index: int) -> np.ndarray:
        """The (first) input image of sample ``index`` as ``uint8 (H, W, 3)``, for colouring
        point clouds and panels."""
        raise NotImplementedError


def _compute(metrics: nn.ModuleDict) -> dict[str, torch.Tensor]:
    """Epoch values of a ModuleDict of torchmetrics; a metric that returns a dict (several
    values) contributes its keys."""
    out: dict[str, torch.Tensor] = {}
    for name, metric in metrics.items():
        value = metric.compute()
        if isinstance(value, dict):
            out.update(value)
        else:
            out[name] = value
    return out


def stage_keys(prefix: str, stages: int) -> Sequence[str]:
    """``[f"{prefix}_stage1", ..., f"{prefix}_stage{stages}"]``."""
    return [f"{prefix}_stage{k}" for k in range(1, stages + 1)]
