"""load_original_anynet against a re-statement of the original AnyNet written here.

``_OriginalAnyNet`` below has the original module tree (attribute names and nesting of
mileyan/AnyNet ``models/anynet.py`` / ``models/submodules.py``) and computes its forward the
original way (repeated feature maps for the residual volume, a per-pixel SPN loop, CPU), so
its ``nn.DataParallel`` checkpoint has the released checkpoints' keys.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_depth.convert.anynet import (
    convert_original_state_dict,
    infer_anynet_kwargs,
    load_original_anynet,
)


def _preconv2d(cin, cout, stride=1):
    return nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    )


def _make_block(cin, cout, nblock):
    layers = [nn.MaxPool2d(2, 2)]
    for i in range(nblock):
        layers.append(_preconv2d(cin if i == 0 else cout, cout))
    return nn.Sequential(*layers)


class _UnetUp(nn.Module):
    def __init__(self, in_size, out_size):
        super().__init__()
        self.up = nn.UpsamplingBilinear2d(scale_factor=2)
        self.conv = nn.Sequential(
            _preconv2d(int(in_size * 1.5), out_size), _preconv2d(out_size, out_size)
        )

    def forward(self, skip, coarse):
        return self.conv(torch.cat([skip, self.up(coarse)], 1))


class _FeatureExtraction(nn.Module):
    def __init__(self, c, nblock):
        super().__init__()
        down = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1), _preconv2d(c, c, 2))
        self.block0 = nn.Sequential(down, _make_block(c, 2 * c, nblock))
        c = 2 * c
        self.blocks = nn.ModuleList(
            [_make_block(c, 2 * c, nblock), _make_block(2 * c, 4 * c, nblock)]
        )
        self.upblocks = nn.ModuleList([_UnetUp(4 * c, 2 * c), _UnetUp(2 * c, c)])

    def forward(self, x):
        downs = [self.block0(x)]
        for block in self.blocks:
            downs.append(block(downs[-1]))
        downs = downs[::-1]
        for i in (1, 2):
            downs[i] = self.upblocks[i - 1](downs[i], downs[i - 1])
        return downs


def _post_3dconvs(layers, channels):
    sizes = [1] + [channels] * (layers + 1) + [1]
    return nn.Sequential(
        *[
            nn.Sequential(nn.BatchNorm3d(i), nn.ReLU(), nn.Conv3d(i, o, 3, padding=1, bias=False))
            for i, o in zip(sizes[:-1], sizes[1:])
        ]
    )


def _spn_loop(x, g1, g2, g3):
    """The CUDA kernel's left-to-right recurrence, one column at a time."""
    cols = [x[..., 0]]
    for w in range(1, x.shape[-1]):
        prev = cols[-1]
        a1 = F.pad(g1[..., 1:, w], (1, 0))  # no upper neighbour on the top row
        a2 = g2[..., w]
        a3 = F.pad(g3[..., :-1, w], (0, 1))  # no lower neighbour on the bottom row
        above = F.pad(prev[..., :-1], (1, 0))
        below = F.pad(prev[..., 1:], (0, 1))
        cols.append((1 - a1 - a2 - a3) * x[..., w] + a1 * above + a2 * prev + a3 * below)
    return torch.stack(cols, -1)


class _OriginalAnyNet(nn.Module):
    def __init__(self, init_channels=1, nblocks=2, channels_3d=4, layers_3d=4, growth_rate=(4, 1, 1),
                 maxdisplist=(12, 3, 3), spn_init_channels=8, with_spn=True, align_corners=False):  # fmt: skip
        super().__init__()
        self.maxdisplist = maxdisplist
        self.spn_init_channels = spn_init_channels
        self.align_corners = align_corners
        if with_spn:
            c = spn_init_channels
            self.refine_spn = nn.ModuleList(
                [
                    nn.Sequential(
                        nn.Conv2d(3, c * 2, 3, 1, 1, bias=False),
                        nn.ReLU(inplace=True),
                        nn.Conv2d(c * 2, c * 2, 3, 1, 1, bias=False),
                        nn.ReLU(inplace=True),
                        nn.Conv2d(c * 2, c * 2, 3, 1, 1, bias=False),
                        nn.ReLU(inplace=True),
                        nn.Conv2d(c * 2, c * 3, 3, 1, 1, bias=False),
                    ),
                    nn.Conv2d(1, c, 3, 1, 1, bias=False),
                    nn.Conv2d(c, 1, 3, 1, 1, bias=False),
                ]
            )
        else:
            self.refine_spn = None
        self.feature_extraction = _FeatureExtraction(init_channels, nblocks)
        self.volume_postprocess = nn.ModuleList(
            [_post_3dconvs(layers_3d, channels_3d * g) for g in growth_rate]
        )

    def _up(self, x, size):
        return F.interpolate(x, size, mode="bilinear", align_corners=self.align_corners)

    @staticmethod
    def warp(x, disp):
        b, _, h, w = x.shape
        xx = (
            torch.arange(0, w, dtype=x.dtype)
            .view(1, -1)
            .repeat(h, 1)
            .view(1, 1, h, w)
            .repeat(b, 1, 1, 1)
        )
        yy = (
            torch.arange(0, h, dtype=x.dtype)
            .view(-1, 1)
            .repeat(1, w)
            .view(1, 1, h, w)
            .repeat(b, 1, 1, 1)
        )
        vgrid = torch.cat((xx, yy), 1)
        vgrid[:, :1] = vgrid[:, :1] - disp
        vgrid[:, 0] = 2.0 * vgrid[:, 0] / max(w - 1, 1) - 1.0
        vgrid[:, 1] = 2.0 * vgrid[:, 1] / max(h - 1, 1) - 1.0
        return F.grid_sample(x, vgrid.permute(0, 2, 3, 1), align_corners=True)

    @staticmethod
    def _build_volume_2d(feat_l, feat_r, maxdisp):
        cost = torch.zeros(
            feat_l.shape[0], maxdisp, feat_l.shape[2], feat_l.shape[3], dtype=feat_l.dtype
        )
        for i in range(maxdisp):
            cost[:, i, :, :i] = feat_l[:, :, :, :i].abs().sum(1)
            if i > 0:
                cost[:, i, :, i:] = torch.norm(feat_l[:, :, :, i:] - feat_r[:, :, :, :-i], 1, 1)
            else:
                cost[:, i, :, i:] = torch.norm(feat_l - feat_r, 1, 1)
        return cost

    def _build_volume_2d3(self, feat_l, feat_r, maxdisp, disp):
        b, c, h, w = feat_l.shape
        batch_disp = disp[:, None].repeat(1, maxdisp * 2 - 1, 1, 1, 1).view(-1, 1, h, w)
        batch_shift = torch.arange(-maxdisp + 1, maxdisp, dtype=disp.dtype).repeat(b)[
            :, None, None, None
        ]
        batch_disp = batch_disp - batch_shift
        batch_feat_l = feat_l[:, None].repeat(1, maxdisp * 2 - 1, 1, 1, 1).view(-1, c, h, w)
        batch_feat_r = feat_r[:, None].repeat(1, maxdisp * 2 - 1, 1, 1, 1).view(-1, c, h, w)
        cost = torch.norm(batch_feat_l - self.warp(batch_feat_r, batch_disp), 1, 1)
        return cost.view(b, -1, h, w)

    @staticmethod
    def _regress(prob, start, end):
        disp = torch.arange(start, end, dtype=prob.dtype).view(1, -1, 1, 1)
        return torch.sum(
            prob * disp.repeat(prob.shape[0], 1, prob.shape[2], prob.shape[3]), 1, keepdim=True
        )

    def forward(self, left, right):
        size = left.shape
        feats_l = self.feature_extraction(left)
        feats_r = self.feature_extraction(right)
        pred = []
        for scale in range(3):
            fl = feats_l[scale]
            if scale > 0:
                wflow = self._up(pred[scale - 1], (fl.size(2), fl.size(3))) * fl.size(2) / size[2]
                cost = self._build_volume_2d3(fl, feats_r[scale], self.maxdisplist[scale], wflow)
            else:
                cost = self._build_volume_2d(fl, feats_r[scale], self.maxdisplist[scale])
            cost = self.volume_postprocess[scale](cost.unsqueeze(1)).squeeze(1)
            if scale == 0:
                low = self._regress(F.softmax(-cost, dim=1), 0, self.maxdisplist[0])
            else:
                m = self.maxdisplist[scale]
                low = self._regress(F.softmax(-cost, dim=1), -m + 1, m)
            low = low * size[2] / low.size(2)
            up = self._up(low, (size[2], size[3]))
            pred.append(up if scale == 0 else up + pred[scale - 1])
        if self.refine_spn:
            quarter = (size[2] // 4, size[3] // 4)
            spn_out = self.refine_spn[0](self._up(left, quarter))
            c = self.spn_init_channels
            g1, g2, g3 = spn_out[:, :c], spn_out[:, c : 2 * c], spn_out[:, 2 * c :]
            sum_abs = g1.abs() + g2.abs() + g3.abs()
            g1, g2, g3 = (torch.div(g, sum_abs + 1e-8) for g in (g1, g2, g3))
            flow = self._up(pred[-1], quarter)
            refined = self.refine_spn[2](_spn_loop(self.refine_spn[1](flow), g1, g2, g3))
            pred.append(self._up(refined, (size[2], size[3])))
        return pred


def _randomise_batch_norm(model):
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.weight.data = 0.5 + torch.rand(m.weight.shape, generator=gen, dtype=m.weight.dtype)
            m.bias.data = 0.2 * torch.randn(m.bias.shape, generator=gen, dtype=m.bias.dtype)
            m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


def _save_original(tmp_path, original, name="checkpoint.tar", drop_counters=False):
    state = nn.DataParallel(original).state_dict()  # keys start with "module."
    if drop_counters:  # PyTorch 0.4.0 checkpoints have no num_batches_tracked
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / name
    torch.save(
        {"epoch": 10, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path
    )
    return path


def _pair(batch=1, height=32, width=64, dtype=torch.float64):
    gen = torch.Generator().manual_seed(7)
    return (torch.randn(batch, 3, height, width, generator=gen, dtype=dtype) for _ in range(2))


@pytest.mark.parametrize("align_corners", [False, True])
def test_outputs_equal_original_eval(tmp_path, align_corners):
    torch.manual_seed(0)
    original = _OriginalAnyNet(spn_init_channels=2, align_corners=align_corners)
    _randomise_batch_norm(original)
    path = _save_original(tmp_path, original, drop_counters=True)  # float32, as released
    original.double()

    model = load_original_anynet(path, align_corners=align_corners).double()
    assert model.spn_channels == 2 and model.align_corners is align_corners
    assert not model.training
    original.eval()
    left, right = _pair()
    with torch.no_grad():
        expected = original(left, right)
        got = model(left, right)
    assert len(got) == len(expected) == 4
    for k, (a, b) in enumerate(zip(got, expected)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=f"stage {k + 1}")


def test_default_align_corners_is_false(tmp_path):
    original = _OriginalAnyNet(with_spn=False)
    model = load_original_anynet(_save_original(tmp_path, original))
    assert model.align_corners is False and model.spn_channels == 0


def test_training_mode_outputs_and_batch_norm_statistics_equal_original(tmp_path):
    torch.manual_seed(0)
    original = _OriginalAnyNet(spn_init_channels=1)
    _randomise_batch_norm(original)
    model = load_original_anynet(_save_original(tmp_path, original)).double().train()
    original.double().train()
    left, right = _pair(batch=2)
    expected = original(left, right)
    got = model(left, right)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    ours = model.state_dict()
    mapped = convert_original_state_dict(nn.DataParallel(original).state_dict())
    assert sum("running" in key for key in ours) == 2 * 29  # 11 BatchNorm2d + 18 BatchNorm3d
    for key in ours:
        if "running" in key:
            torch.testing.assert_close(ours[key], mapped[key], rtol=1e-9, atol=1e-9, msg=key)


def test_architecture_is_inferred(tmp_path):
    original = _OriginalAnyNet(init_channels=2, nblocks=1, channels_3d=2, layers_3d=2, growth_rate=(3, 2, 1),
                               spn_init_channels=3)  # fmt: skip
    kwargs = infer_anynet_kwargs(nn.DataParallel(original).state_dict())
    assert kwargs == {
        "init_channels": 2,
        "nblocks": 1,
        "channels_3d": 2,
        "growth_rate": (3, 2, 1),
        "layers_3d": 2,
        "spn_channels": 3,
    }
    model = load_original_anynet(_save_original(tmp_path, original), maxdisplist=(8, 2, 2))
    assert model.maxdisplist == (8, 2, 2)
    for ours, theirs in zip(model.cost_filters, original.volume_postprocess):
        torch.testing.assert_close(ours.layers[1].conv.weight, theirs[1][2].weight)
    # A plain state dict (no checkpoint wrapper, no "module.") loads too.
    model2 = load_original_anynet(original.state_dict())
    torch.testing.assert_close(model2.spn.gate_net[6].weight, original.refine_spn[0][6].weight)


def test_errors_name_the_file_and_problem(tmp_path):
    original = _OriginalAnyNet(spn_init_channels=2)
    state = nn.DataParallel(original).state_dict()

    with pytest.raises(FileNotFoundError, match="missing.tar: no such checkpoint file"):
        load_original_anynet(tmp_path / "missing.tar")

    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.tar: not a readable PyTorch checkpoint"):
        load_original_anynet(junk)

    no_state = tmp_path / "nostate.tar"
    torch.save({"epoch": 1}, no_state)
    with pytest.raises(ValueError, match=r"nostate.tar: expected the original training checkpoint"):
        load_original_anynet(no_state)

    extra = dict(state, **{"module.extra_head.weight": torch.zeros(1)})
    torch.save({"state_dict": extra}, tmp_path / "extra.tar")
    with pytest.raises(ValueError, match=r"extra.tar: unexpected keys .*extra_head\.weight"):
        load_original_anynet(tmp_path / "extra.tar")

    missing = {k: v for k, v in state.items() if "upblocks.1.conv.1.2" not in k}
    torch.save({"state_dict": missing}, tmp_path / "missing_key.tar")
    with pytest.raises(
        ValueError,
        match=r"missing_key.tar: checkpoint does not fit.*decoder\.1\.convs\.1\.conv\.weight",
    ):
        load_original_anynet(tmp_path / "missing_key.tar")

    with pytest.raises(
        ValueError, match="spn_channels=8 was given but the weights have spn_channels=2"
    ):
        load_original_anynet(state, spn_channels=8)
    with pytest.raises(ValueError, match=r"weights have 3D networks with \[16, 4, 4\] channels"):
        load_original_anynet(state, channels_3d=8)
