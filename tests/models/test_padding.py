from __future__ import annotations

import pytest
import torch

from lightning_depth.models.padding import InputPadder


@pytest.mark.parametrize("mode", ["replicate", "reflect", "constant", "circular"])
def test_round_trip(mode, device, dtype):
    left = torch.randn(2, 3, 37, 50, device=device, dtype=dtype)
    right = torch.randn(2, 3, 37, 50, device=device, dtype=dtype)
    padder = InputPadder(left.shape, multiple=16, mode=mode)
    left_p, right_p = padder.pad(left, right)
    assert left_p.shape == right_p.shape == (2, 3, 48, 64)
    assert padder.padded_size == (48, 64)
    # Originals stay at their coordinates: the padding is right and bottom only.
    assert torch.equal(left_p[..., :37, :50], left)
    assert torch.equal(padder.unpad(left_p), left)
    assert torch.equal(padder.unpad(right_p), right)


def test_replicate_values_and_disparity_shape():
    x = torch.arange(6.0).view(1, 1, 2, 3)
    (padded,) = InputPadder(x.shape, multiple=4).pad(x)
    expected = torch.tensor(
        [[0, 1, 2, 2], [3, 4, 5, 5], [3, 4, 5, 5], [3, 4, 5, 5]], dtype=torch.float32
    )
    assert torch.equal(padded[0, 0], expected)
    # A (B, H, W) or (H, W) tensor pads the same way.
    (flat,) = InputPadder(x.shape, multiple=4).pad(x[0, 0])
    assert torch.equal(flat, expected)
    (zeros,) = InputPadder(x.shape, multiple=4, mode="constant").pad(x)
    assert zeros[0, 0, 2:].abs().sum() == 0 and zeros[0, 0, :, 3].abs().sum() == 0


def test_no_padding_needed_returns_input():
    x = torch.randn(1, 3, 32, 64)
    padder = InputPadder(x.shape)
    (same,) = padder.pad(x)
    assert same is x and padder.unpad(same) is not None and padder.unpad(same).shape == x.shape


def test_errors():
    with pytest.raises(ValueError, match="multiple must be a positive integer"):
        InputPadder((1, 3, 10, 10), multiple=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        InputPadder((1, 3, 10, 10), mode="edge")
    with pytest.raises(ValueError, match=r"shape must be \(\.\.\., H, W\)"):
        InputPadder((5,))
    padder = InputPadder((1, 3, 10, 10), multiple=8)
    with pytest.raises(ValueError, match=r"argument 1 must have shape \(\.\.\., 10, 10\)"):
        padder.pad(torch.zeros(1, 3, 10, 10), torch.zeros(1, 3, 10, 12))
    with pytest.raises(ValueError, match=r"must have shape \(\.\.\., 16, 16\) \(the padded size\)"):
        padder.unpad(torch.zeros(1, 1, 10, 10))


def test_symbolic_sizes_stay_symbolic_under_torch_export():
    """Exported with dynamic sizes, a pad-and-crop graph takes any size: the padder keeps
    torch.export's symbolic sizes (int() would fix them to the example's)."""

    class PadTwiceCrop(torch.nn.Module):
        def forward(self, x):
            padder = InputPadder(x.shape, multiple=16)
            (padded,) = padder.pad(x)
            assert padded.shape[-1] % 16 == 0  # provable for every width, not a guard
            return padder.unpad(padded * 2)

    dim = torch.export.Dim
    program = torch.export.export(
        PadTwiceCrop(),
        (torch.randn(2, 3, 37, 70),),
        dynamic_shapes=({0: dim.DYNAMIC, 2: dim.DYNAMIC(min=2), 3: dim.DYNAMIC(min=2)},),
    )
    # Other batches and sizes run. (The program's own run-time checks hold what the example
    # showed, "padding needed"; an ONNX file has none of them, see tests/deploy/test_graph.py.)
    for shape in ((1, 3, 33, 50), (3, 3, 17, 5)):
        x = torch.randn(shape)
        assert torch.equal(program.module()(x), 2 * x)
