"""Run a task's network through ``torch.compile`` (fused kernels, CUDA graphs) from a config.

LightningCLI builds the task itself, so ``torch.compile(model)`` cannot be written around it;
this callback compiles the network when the Trainer sets up. It uses ``nn.Module.compile``,
which compiles the module in place: parameter names, checkpoints, ``InitWeights``,
``FreezeWeights`` and ``load_from_checkpoint`` see the same module as without it (wrapping in
``torch.compile(net)`` would prefix every weight name with ``_orig_mod.``).

What stays eager: AnyNet's SPN propagation is opaque to the compiler (a graph break; it runs
its own C or Triton kernels), and on CPU the compiled network uses the PyTorch forms instead of
:mod:`~lightning_depth.models.native`'s inference kernels. The first steps of each mode
(training, evaluation) compile, which takes from seconds to minutes.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

__all__ = ["CompileNetwork"]

#: the Trainer stages a :class:`CompileNetwork` may name
STAGES = ("fit", "validate", "test", "predict")


class CompileNetwork(Callback):
    """Compile ``pl_module.<module>`` with ``torch.compile`` when the Trainer sets up.

    Args:
        mode: ``torch.compile``'s ``mode``: ``None`` (default), ``"reduce-overhead"`` (CUDA
            graphs where shapes are static), ``"max-autotune"``, ...
        backend: ``torch.compile``'s ``backend`` (``"inductor"``; ``"aot_eager"`` traces
            without generating code, to check that a network compiles).
        fullgraph: refuse graph breaks (AnyNet with an SPN has one: keep ``False``).
        dynamic: ``torch.compile``'s ``dynamic``. ``False`` (the default here): one graph per
            input shape (training crops, validation frames), compiled as it first comes (past
            ``torch._dynamo.config.recompile_limit`` shapes, the rest run eagerly).
            ``None`` (torch's default) turns shapes symbolic once a second one comes, and
            inductor then fails on AnyNet (torch 2.13: "cannot determine truth value of
            Relational" while compiling its 1/16-scale layers), seen with validation frames
            and training crops of different sizes.
        module: attribute of the task holding the network.
        stages: the Trainer stages to compile for (``fit`` also covers its validation).

    Example (LightningCLI)::

        lightning_depth fit --config ... \\
            --trainer.callbacks+=lightning_depth.callbacks.CompileNetwork \\
            --trainer.callbacks.mode=max-autotune
    """

    def __init__(
        self,
        mode: Optional[str] = None,
        backend: str = "inductor",
        fullgraph: bool = False,
        dynamic: Optional[bool] = False,
        module: str = "net",
        stages: Union[str, Sequence[str]] = ("fit",),
    ) -> None:
        stages = [stages] if isinstance(stages, str) else list(stages)
        unknown = [s for s in stages if s not in STAGES]
        if unknown or not stages:
            raise ValueError(f"CompileNetwork: stages must be among {STAGES}, got {stages}")
        if not hasattr(nn.Module, "compile"):  # torch < 2.2
            raise RuntimeError("CompileNetwork needs torch >= 2.2 (nn.Module.compile)")
        self.options = {
            "mode": mode,
            "backend": backend,
            "fullgraph": fullgraph,
            "dynamic": dynamic,
        }
        self.module = module
        self.stages = stages

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage not in self.stages:
            return
        net = getattr(pl_module, self.module, None)
        if not isinstance(net, nn.Module):
            raise ValueError(
                f"CompileNetwork: {type(pl_module).__name__}.{self.module} is "
                f"{type(net).__name__}, not a network (nn.Module); set module= to the "
                "attribute that holds it"
            )
        net.compile(**self.options)
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        stage = getattr(stage, "value", stage)  # Lightning passes a str enum (TrainerFn)
        rank_zero_info(f"CompileNetwork: {self.module} compiled for {stage} ({options})")
