"""DataModules and datasets for DIODE and SceneFlow Monkaa, and the scene generator.

Cut by dataset: ``diode`` and ``monkaa`` each hold a layout (list, read, check, write), a
transform and a DataModule; ``layout``, ``archive``, ``streaming``, ``splits``,
``transforms``, ``check`` (the pre-flight data check), ``generated`` (where generated sets
go) and ``base`` are generic over datasets.
"""

from lightning_depth.data.diode import (
    DIODEDataModule,
    DIODEDataset,
    load_diode_sample,
    synthesize_diode,
)
from lightning_depth.data.monkaa import MonkaaDataModule, MonkaaDataset, synthesize_monkaa
from lightning_depth.data.synth import render_scene

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
