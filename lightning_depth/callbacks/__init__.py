"""Callbacks: the demo report and validation picture panels."""

from lightning_depth.callbacks.panels import PredictionPanels
from lightning_depth.callbacks.report import LearningReport

__all__ = ["LearningReport", "PredictionPanels"]
