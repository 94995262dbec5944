"""What the mono and stereo LightningModules share: optimiser wiring and a standalone
evaluation loop (used by the demo report before and after training)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable


class DepthTask(L.LightningModule):
    """Base LightningModule: optimizer/scheduler injection and :meth:`evaluate`.

    Args:
        optimizer: callable ``params -> Optimizer`` (LightningCLI ``class_path``/``init_args``);
            ``None`` uses :attr:`default_optimizer`.
        scheduler: optional callable ``optimizer -> LRScheduler``; stepped per epoch and, for
            ``ReduceLROnPlateau``, on :attr:`monitor`.
    """

    #: metric the scheduler and checkpoints watch; subclasses override.
    monitor: str = "val/loss"
    monitor_mode: str = "min"

    def __init__(
        self,
        optimizer: Optional[OptimizerCallable] = None,
        scheduler: Optional[LRSchedulerCallable] = None,
    ) -> None:
        super().__init__()
        self._optimizer_factory = optimizer
        self._scheduler_factory = scheduler

    def save_task_hyperparameters(self) -> None:
        """``save_hyperparameters`` of the subclass' ``__init__`` arguments, without module
        objects.

        Under LightningCLI the stored values are the config (``class_path``/``init_args``), so
        ``load_from_checkpoint(path)`` rebuilds the network from it. Built in Python, the
        arguments are module objects; those are dropped (a checkpoint holds their weights,
        and pickled modules would not load with ``torch.load(weights_only=True)``), so pass
        the same ``net=...`` to ``load_from_checkpoint`` then.
        """
        import inspect
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            self.save_hyperparameters(frame=inspect.currentframe().f_back)
        modules = [k for k, v in self.hparams.items() if isinstance(v, torch.nn.Module)]
        self.remove_ignored_hparams(modules)
        for key in modules:
            self._hparams_initial.pop(key, None)

    def default_optimizer(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
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

    def configure_callbacks(self) -> list:
        """Callbacks every run of a depth task wants.

        With a logger: learning-rate logging and validation picture panels
        (:class:`~lightning_depth.callbacks.PredictionPanels`). Unless checkpointing is off,
        two checkpoints: the best on :attr:`monitor`, and the latest epoch with ``last.ckpt``
        linked to it, so ``--ckpt_path last`` resumes from the newest state even when it is
        not the best (Lightning's own ``save_last`` only refreshes on epochs that improved
        the monitor). Always
        :class:`~lightning_depth.callbacks.resume.CheckpointOnSigterm`."""
        from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

        from lightning_depth.callbacks.panels import PredictionPanels
        from lightning_depth.callbacks.resume import CheckpointOnSigterm

        callbacks: list = [CheckpointOnSigterm()]
        if self.trainer is not None and self.trainer.loggers:
            callbacks += [LearningRateMonitor(logging_interval="epoch"), PredictionPanels()]
        if self.trainer is None or self.trainer.checkpoint_callback is None:
            return callbacks
        name = self.monitor.replace("/", "_")
        return callbacks + [
            ModelCheckpoint(
                monitor=self.monitor,
                mode=self.monitor_mode,
                filename="best-epoch{epoch:03d}-" + name + "{" + self.monitor + ":.4f}",
                auto_insert_metric_name=False,
            ),
            ModelCheckpoint(
                save_top_k=1,
                filename="latest-epoch{epoch:03d}",
                save_last="link",
                auto_insert_metric_name=False,
            ),
        ]

    def make_metrics(self) -> torch.nn.ModuleDict:
        """Fresh metric objects for one evaluation pass; subclasses build theirs."""
        raise NotImplementedError

    def update_metrics(self, metrics: torch.nn.ModuleDict, batch: dict, outputs: Any) -> None:
        raise NotImplementedError

    def compute_metrics(self, metrics: torch.nn.ModuleDict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def predict_outputs(self, batch: dict) -> Any:
        raise NotImplementedError

    def _step(self, batch: dict, stage: str) -> tuple[torch.Tensor, Any]:
        """Loss (logged per term under ``{stage}/...``) and the network's outputs."""
        raise NotImplementedError

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

    def _log_epoch_metrics(self, metrics: torch.nn.ModuleDict, stage: str) -> None:
        values = self.compute_metrics(metrics)
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()})
        for m in metrics.values():
            m.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics(self.test_metrics, "test")

    @torch.no_grad()
    def evaluate(self, dataloader: Iterable[dict]) -> dict[str, float]:
        """Run the model over ``dataloader`` outside the Trainer loop and return the epoch
        metrics (the same metric classes as ``validate``). The model's train/eval mode is
        restored afterwards."""
        was_training = self.training
        self.eval()
        metrics = self.make_metrics().to(self.device)
        try:
            for batch in dataloader:
                batch = self.transfer_batch_to_device(batch, self.device, 0)
                self.update_metrics(metrics, batch, self.predict_outputs(batch))
            return {k: float(v) for k, v in self.compute_metrics(metrics).items()}
        finally:
            self.train(was_training)
