"""Pad images to a multiple of a network's stride and crop outputs back (RAFT-Stereo style)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["InputPadder"]

_MODES = ("constant", "reflect", "replicate", "circular")


class InputPadder:
    """Pads ``(..., H, W)`` tensors on the right and bottom to multiples of ``multiple``.

    Padding only the right and bottom keeps every original pixel at its coordinates, so a
    disparity (a horizontal offset between the two views) means the same before and after;
    both stereo images must be padded alike.

    Args:
        shape: shape of the tensors to pad, ``(..., H, W)`` (e.g. ``left.shape``).
        multiple: H and W are padded up to a multiple of this (16 for AnyNet).
        mode: ``torch.nn.functional.pad`` mode: ``"replicate"``, ``"reflect"``,
            ``"constant"`` (zeros) or ``"circular"``.

    Example:
        >>> padder = InputPadder((1, 3, 375, 1242), multiple=16)
        >>> left, right = padder.pad(torch.zeros(1, 3, 375, 1242), torch.zeros(1, 3, 375, 1242))
        >>> tuple(left.shape), tuple(padder.unpad(left).shape)
        ((1, 3, 384, 1248), (1, 3, 375, 1242))
    """

    def __init__(self, shape: Sequence[int], multiple: int = 16, mode: str = "replicate") -> None:
        # Sizes stay as given: ints, or the symbolic sizes torch.export traces with (int()
        # would fix an exported graph to its example's size).
        shape = tuple(s if isinstance(s, torch.SymInt) else int(s) for s in shape)
        if len(shape) < 2 or shape[-1] < 1 or shape[-2] < 1:
            raise ValueError(f"InputPadder: shape must be (..., H, W) with H, W >= 1, got {shape}")
        if int(multiple) != multiple or multiple < 1:
            raise ValueError(f"InputPadder: multiple must be a positive integer, got {multiple}")
        if mode not in _MODES:
            raise ValueError(f"InputPadder: mode must be one of {_MODES}, got {mode!r}")
        self.shape = shape
        self.multiple = int(multiple)
        self.mode = mode
        self.height, self.width = shape[-2:]
        m = self.multiple
        # ceil(H / m) * m: a multiple of m by construction, which torch.export's shape
        # reasoning follows through the network's strides (a symbolic -H % m it cannot).
        self._padded = ((self.height + m - 1) // m * m, (self.width + m - 1) // m * m)
        self.pad_bottom = self._padded[0] - self.height
        self.pad_right = self._padded[1] - self.width

    @property
    def padded_size(self) -> tuple[int, int]:
        """``(H, W)`` after padding."""
        return self._padded

    def pad(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Pad each ``(..., H, W)`` tensor to :attr:`padded_size`.

        Returns:
            a tuple with one padded tensor per input (``(x,) = padder.pad(x)`` for one).
        """
        out = []
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor):
                raise TypeError(
                    f"InputPadder.pad: argument {i} must be a torch.Tensor, got {type(t).__name__}"
                )
            if t.ndim < 2 or tuple(t.shape[-2:]) != (self.height, self.width):
                raise ValueError(
                    f"InputPadder.pad: argument {i} must have shape (..., {self.height}, "
                    f"{self.width}) like the padder's shape, got {tuple(t.shape)}"
                )
            # (Only known sizes skip the padding: a test of a symbolic size would fix it.)
            if isinstance(self.pad_bottom, int) and self.pad_bottom == 0 == self.pad_right:
                out.append(t)
                continue
            # F.pad's replicate/reflect modes want a batch and channel dimension.
            lead = t.shape[:-2]
            flat = t.reshape(-1, 1, self.height, self.width) if t.ndim != 4 else t
            if self.mode == "constant":
                padded = F.pad(flat, (0, self.pad_right, 0, self.pad_bottom))
            else:
                padded = F.pad(flat, (0, self.pad_right, 0, self.pad_bottom), mode=self.mode)
            out.append(padded.reshape(*lead, *self.padded_size) if t.ndim != 4 else padded)
        return tuple(out)

    def unpad(self, tensor: torch.Tensor) -> torch.Tensor:
        """Crop a ``(..., H_pad, W_pad)`` tensor back to ``(..., H, W)``."""
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"InputPadder.unpad: expected a torch.Tensor, got {type(tensor).__name__}"
            )
        if tensor.ndim < 2 or tuple(tensor.shape[-2:]) != self.padded_size:
            raise ValueError(
                f"InputPadder.unpad: tensor must have shape (..., {self.padded_size[0]}, "
                f"{self.padded_size[1]}) (the padded size), got {tuple(tensor.shape)}"
            )
        return tensor[..., : self.height, : self.width]
