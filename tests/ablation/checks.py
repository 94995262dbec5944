"""Shared checks of the ablation tests: written pictures and the report's table rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MONO = CONFIGS / "ablation" / "mono.yaml"
STEREO = CONFIGS / "ablation" / "stereo.yaml"
# The paper's parameter counts (mono: Keras' total with BN statistics; stereo: weights).
MONO_COUNTS = [1_966_465, 489_089, 489_089]
STEREO_COUNTS = [34_629, 34_827, 35_277, 36_933, 43_269]


def assert_picture(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert pixels.std() > 1.0, f"{path} is blank"


def report_rows(report: str) -> list[list[str]]:
    """The rows of the results table in a ``report.md`` (not the fit-time table)."""
    lines = report.split("\n\n")
    block = next(b for b in lines if b.startswith("| Variant |") and "Parameters" in b)
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]
