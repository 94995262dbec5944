"""Demo report: metrics before and after training, a figure, and their ``RESULT`` values."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only


class LearningReport(Callback):
    """Evaluates the validation set before and after ``fit`` and prints what changed.

    The model must provide ``evaluate(dataloader) -> dict`` and ``visualize(batch, outputs,
    index) -> dict[str, uint8 (H, W, 3)]`` (every ``DepthTask`` does). At the end of ``fit``:

    - prints the values before and after, and holds them as :meth:`result_values`
      (``<name>_before=... <name>_after=...``), which the run summary that ``lightning_depth
      fit`` prints puts first in its one ``RESULT key=value ...`` line (see
      :mod:`~lightning_depth.callbacks.summary`; it adds ``seconds`` and the checkpoints);
    - writes a PNG figure of ``num_samples`` validation samples (one row each, one column per
      picture the model's ``visualize`` returns) to ``figure_path``.

    Args:
        metrics: result name -> metric key of ``evaluate``, e.g. ``{"val_ssim": "ssim"}``;
            ``None``: the task's headline metrics as ``val_<key>``.
        figure_path: where the PNG goes (folders are created); ``None``:
            ``<trainer.default_root_dir>/figure.png``.
        figure: write the figure.
        num_samples: rows of the figure.
    """

    def __init__(
        self,
        metrics: Optional[dict[str, str]] = None,
        figure_path: Optional[str] = None,
        figure: bool = True,
        num_samples: int = 4,
    ) -> None:
        self.metrics = dict(metrics) if metrics is not None else None
        self.figure_path = figure_path
        self.figure = figure
        self.num_samples = num_samples
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        loader = trainer.datamodule.val_dataloader()
        return pl_module.evaluate(loader)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.metrics is None:
            self.metrics = {f"val_{h.key}": h.key for h in pl_module.headlines}
        self.before = self._evaluate(trainer, pl_module)
        self._print("before", self.before)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.after = self._evaluate(trainer, pl_module)
        self._print("after", self.after)
        if self.figure and trainer.is_global_zero:
            self.write_figure(trainer, pl_module)

    def result_values(self) -> dict[str, float]:
        """``{"<name>_before": ..., "<name>_after": ...}`` per reported metric, in the order
        of ``metrics`` (empty until ``fit`` has ended)."""
        if not self.after or not self.metrics:
            return {}
        values = {}
        for name, key in self.metrics.items():
            values[f"{name}_before"] = float(self.before[key])
            values[f"{name}_after"] = float(self.after[key])
        return values

    def _print(self, when: str, values: dict[str, float]) -> None:
        shown = ", ".join(f"{key}={values[key]:.4f}" for key in self.metrics.values())
        self._emit(f"validation {when} training: {shown}")

    @rank_zero_only
    def _emit(self, line: str) -> None:
        print(line, flush=True)

    def write_figure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
        """Draw ``num_samples`` validation samples with the model's ``visualize``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows: list[dict[str, np.ndarray]] = []
        was_training = pl_module.training
        pl_module.eval()
        try:
            for batch in trainer.datamodule.val_dataloader():
                batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
                outputs = pl_module.forward_outputs(batch)
                n = len(batch["name"]) if "name" in batch else next(iter(batch.values())).shape[0]
                for i in range(n):
                    rows.append(pl_module.visualize(batch, outputs, index=i))
                    if len(rows) >= self.num_samples:
                        break
                if len(rows) >= self.num_samples:
                    break
        finally:
            pl_module.train(was_training)
        columns = list(rows[0])
        fig, axes = plt.subplots(
            len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)), squeeze=False
        )
        for r, row in enumerate(rows):
            for c, key in enumerate(columns):
                ax = axes[r][c]
                ax.imshow(row[key])
                ax.set_axis_off()
                if r == 0:
                    ax.set_title(key.replace("_", " "), fontsize=9)
        fig.tight_layout()
        path = Path(self.figure_path or Path(trainer.default_root_dir) / "figure.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        self._emit(f"figure written to {path}")
        return path
