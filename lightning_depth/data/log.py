"""The data package's log: one line for each thing a user should know (data generated and
where, settings that do not apply, samples left out and the report), from the first process
only. Shown without any logging set-up, as Lightning's own lines are."""

from __future__ import annotations

import logging

from lightning.pytorch.utilities import rank_zero_only

__all__ = ["announce", "logger"]

logger = logging.getLogger("lightning_depth.data")
logger.setLevel(logging.INFO)
if not logger.handlers and not logging.getLogger().handlers:
    logger.addHandler(logging.StreamHandler())


@rank_zero_only
def announce(message: str) -> None:
    """Log ``message`` (INFO) on the first process."""
    logger.info(message)
