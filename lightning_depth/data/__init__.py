"""DataModules and datasets for DIODE, SceneFlow Monkaa, Middlebury 2014 and KITTI
2012/2015, and the scene generators.

Cut by dataset: ``diode``, ``monkaa``, ``middlebury`` and ``kitti`` each hold a layout (list, read, check, write), a
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
from lightning_depth.data.kitti import KittiDataModule
from lightning_depth.data.middlebury import MiddleburyDataModule, write_motorcycle
from lightning_depth.data.monkaa import MonkaaDataModule, MonkaaDataset, synthesize_monkaa
from lightning_depth.data.synth import render_scene

__all__ = [
    "DIODEDataModule",
    "DIODEDataset",
    "KittiDataModule",
    "MiddleburyDataModule",
    "MonkaaDataModule",
    "MonkaaDataset",
    "load_diode_sample",
    "render_scene",
    "synthesize_diode",
    "synthesize_monkaa",
    "write_motorcycle",
]
