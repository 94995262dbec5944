"""Callbacks: checkpoints, warm starts, frozen parts, compiled networks, the demo report,
validation panels, SIGTERM and predict writers."""

from lightning_depth.callbacks.checkpoints import BestCheckpoint, LatestCheckpoint
from lightning_depth.callbacks.compile import CompileNetwork
from lightning_depth.callbacks.freeze import FreezeWeights
from lightning_depth.callbacks.init_weights import InitWeights
from lightning_depth.callbacks.panels import PredictionPanels
from lightning_depth.callbacks.report import LearningReport
from lightning_depth.callbacks.resume import CheckpointOnSigterm

__all__ = [
    "BestCheckpoint",
    "CheckpointOnSigterm",
    "CompileNetwork",
    "FreezeWeights",
    "InitWeights",
    "LatestCheckpoint",
    "LearningReport",
    "PredictionPanels",
]
