"""Data errors from DataLoader worker processes, as the user should see them."""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch.utils.data import get_worker_info

from lightning_depth.io.errors import DataError

__all__ = ["SampleError", "worker_errors"]


class SampleError(DataError):
    """A sample's :class:`~lightning_depth.io.errors.DataError` raised in a DataLoader worker.

    The DataLoader re-raises a worker's exception in the main process as
    ``type(e)("Caught <type> in DataLoader worker ... Original Traceback ...")``; this type
    keeps only the original message then, so what reaches the user is the file and the
    problem, not the worker's traceback.
    """

    def __init__(self, message: str) -> None:
        tag = f"{type(self).__module__}.{type(self).__qualname__}: "
        if message.startswith("Caught ") and tag in message:
            message = message.rsplit(tag, 1)[1].rstrip("\n")
        super().__init__(message)


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """Inside a DataLoader worker, turn a ``DataError`` into a :class:`SampleError` (same
    message); elsewhere, let it through as raised."""
    try:
        yield
    except DataError as e:
        if get_worker_info() is None or isinstance(e, SampleError):
            raise
        raise SampleError(str(e)) from None
