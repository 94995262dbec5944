"""DataModules and datasets for DIODE and SceneFlow Monkaa, and the scene generator."""

from lightning_depth.data.diode import DIODEDataModule, DIODEDataset, load_diode_sample
from lightning_depth.data.monkaa import MonkaaDataModule, MonkaaDataset, synthesize_monkaa
from lightning_depth.data.synth import render_scene, synthesize_diode

__all__ = [
    "DIODEDataModule",
    "DIODEDataset",
    "MonkaaDataModule",
    "MonkaaDataset",
    "load_diode_sample",
    "render_scene",
    "synthesize_diode",
    "synthesize_monkaa",
]
