"""Photometric augmentation of stereo pairs at training time (never at evaluation).

A network trained on rendered pairs, whose two views agree pixel for pixel, meets real pairs
whose cameras differ: in exposure, white balance and gamma, focus and noise, and by a small
vertical misalignment left by an imperfect rectification. :class:`StereoAugment` draws such
differences per pair: colour jitter and gamma (the right view, with probability
``asymmetric_p``, gets its own draw), Gaussian blur and noise (drawn per view), a sub-pixel
vertical shift of the right view (the disparity is unchanged: the shift is the error to be
robust to), and an "eraser" that paints a few rectangles of the right view with its mean
colour (occlusion-like regions with no match, as in RAFT-Stereo's training). Every draw comes
from the sample's ``torch.Generator``, so a seeded item is the same in every run and in a
resumed one.

Images are ``(3, H, W)`` float in [0, 1] (before the ImageNet normalisation).

Example:
    >>> import torch
    >>> left, right = torch.rand(3, 8, 16), torch.rand(3, 8, 16)
    >>> aug = StereoAugment()
    >>> out = aug(left, right, torch.Generator().manual_seed(0))
    >>> [tuple(x.shape) for x in out]
    [(3, 8, 16), (3, 8, 16)]
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import kornia
import torch

__all__ = [
    "AUGMENT_KEY",
    "AugmentParams",
    "StereoAugment",
    "adjust_colour",
    "augment_batch",
    "colour_matrix",
    "erase",
    "make_augment",
    "pack_params",
    "unpack_params",
    "vertical_shift",
]

#: the batch key of the augmentation parameters that travel with device-side items
AUGMENT_KEY = "augment"


def _check_image(image: torch.Tensor, name: str) -> None:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a tensor (3, H, W), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"{name} must have shape (3, H, W), got {tuple(image.shape)}")


def vertical_shift(image: torch.Tensor, shift: float) -> torch.Tensor:
    """Move the rows of ``image`` (C, H, W) down by ``shift`` px (up if negative): row ``y``
    of the output is row ``y - shift`` of the input, linearly interpolated between the two
    nearest rows for a fractional shift; rows from beyond the border repeat the edge row.
    An integer shift moves rows exactly.
    """
    height = image.shape[-2]
    k = math.floor(shift)
    a = shift - k
    rows = torch.arange(height, device=image.device)
    upper = image[..., (rows - k).clamp(0, height - 1), :]
    if a == 0:
        return upper
    lower = image[..., (rows - k - 1).clamp(0, height - 1), :]
    return (1 - a) * upper + a * lower


#: luma weights of the grey level (ITU-R BT.601, as torchvision's saturation and contrast)
_LUMA = (0.299, 0.587, 0.114)


def colour_matrix(brightness: torch.Tensor, saturation: torch.Tensor, hue: torch.Tensor):
    """Per-image 3x3 colour matrices ``(B, 3, 3)``: a hue rotation by ``hue`` radians about
    the grey axis (``hue = 2 pi / 3`` maps red to green, green to blue), then saturation as
    torchvision does it (``grey + saturation * (x - grey)``, grey the BT.601 luma), times
    ``brightness``. Arguments are ``(B,)``.

    Hand-written rather than kornia's HSV ``adjust_hue``: a rotation about the grey axis
    shifts hue alike and is one matrix product, where the HSV round trip took ~60 ms per
    256x512 pair, a sizeable share of a CPU training step.
    """
    dtype = torch.float32
    k = torch.full((3,), 3**-0.5, dtype=dtype)
    cross = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=dtype)
    eye = torch.eye(3, dtype=dtype)
    cos, sin = hue.to(dtype).cos().view(-1, 1, 1), hue.to(dtype).sin().view(-1, 1, 1)
    rotation = cos * eye + sin * cross + (1 - cos) * torch.outer(k, k)
    luma = torch.tensor(_LUMA, dtype=dtype)
    s = saturation.to(dtype).view(-1, 1, 1)
    sat = s * eye + (1 - s) * torch.ones(3, 1, dtype=dtype) * luma
    return brightness.to(dtype).view(-1, 1, 1) * sat @ rotation


def adjust_colour(
    images: torch.Tensor,
    brightness: torch.Tensor,
    contrast: torch.Tensor,
    saturation: torch.Tensor,
    hue: torch.Tensor,
    gamma: torch.Tensor,
) -> torch.Tensor:
    """Colour jitter of a batch ``(B, 3, H, W)`` in [0, 1], one factor per image (each (B,)):
    :func:`colour_matrix` (brightness, saturation, hue in radians), then contrast about each
    image's mean grey (``m + contrast * (x - m)``, as torchvision), then ``x ** gamma``
    (kornia). Values are clamped to [0, 1] after each of the three steps. The factors may
    live on the CPU whatever the images' device."""
    matrix = colour_matrix(brightness, saturation, hue).to(images)
    x = torch.einsum("bij,bjhw->bihw", matrix, images)
    x = x.clamp(0, 1)
    luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    grey = (x * luma).sum(dim=1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    x = (grey + contrast.to(x).view(-1, 1, 1, 1) * (x - grey)).clamp(0, 1)
    return kornia.enhance.adjust_gamma(x, gamma.to(x)).clamp(0, 1)


def erase(image: torch.Tensor, boxes: Sequence[Sequence[int]]) -> torch.Tensor:
    """``image`` (3, H, W) with each box ``(top, left, h, w)`` painted in the image's mean
    colour (taken before painting)."""
    out = image.clone()
    mean = image.mean(dim=(1, 2), keepdim=True)
    for top, left, h, w in boxes:
        out[:, top : top + h, left : left + w] = mean
    return out


#: the fields of :class:`AugmentParams` that :func:`adjust_colour` takes, in its order
_COLOUR_FACTORS = ("brightness", "contrast", "saturation", "hue", "gamma")
#: the per-view ``(2,)`` fields of :class:`AugmentParams`
_PER_VIEW = (*_COLOUR_FACTORS, "blur_sigma", "noise_std")


@dataclass
class AugmentParams:
    """One draw of :class:`StereoAugment`; per-view values are ``(2,)`` tensors, left first.

    ``colour``: whether colour jitter applies; ``blur_sigma``: 0 for no blur; ``noise_std``:
    0 for no noise; ``vshift``: px, right view only; ``boxes``: the right view's erased
    rectangles ``(top, left, h, w)``.
    """

    colour: bool
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor
    gamma: torch.Tensor
    blur_sigma: torch.Tensor
    noise_std: torch.Tensor
    vshift: float
    boxes: list


def _range(value: Sequence[float], name: str, low: float = 0.0) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair, got {value!r}") from None
    if not low <= a <= b:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max, got {value!r}")
    return a, b


def pack_params(params: AugmentParams, noise_seed: int) -> dict[str, torch.Tensor]:
    """``params`` as fixed-shape tensors that a DataLoader collates (``boxes`` padded to
    ``(2, 4)`` with ``box_count`` rows used), with the seed of the item's noise."""
    boxes = torch.zeros(2, 4, dtype=torch.int64)
    for row, box in enumerate(params.boxes):
        boxes[row] = torch.tensor(box, dtype=torch.int64)
    return {
        "colour": torch.tensor(params.colour),
        **{name: getattr(params, name).clone() for name in _PER_VIEW},
        "vshift": torch.tensor(params.vshift, dtype=torch.float64),
        "boxes": boxes,
        "box_count": torch.tensor(len(params.boxes)),
        "noise_seed": torch.tensor(noise_seed, dtype=torch.int64),
    }


def unpack_params(batch: dict[str, torch.Tensor]) -> list[tuple[AugmentParams, int]]:
    """The collated :func:`pack_params` dicts of a batch (CPU tensors with a leading batch
    dimension) -> one ``(params, noise_seed)`` per item."""
    missing = sorted(
        {"colour", *_PER_VIEW, "vshift", "boxes", "box_count", "noise_seed"} - set(batch)
    )
    if missing:
        raise ValueError(f"augmentation parameters lack {missing}")
    batch = {name: value.cpu() for name, value in batch.items()}
    items = []
    for b in range(len(batch["colour"])):
        count = int(batch["box_count"][b])
        params = AugmentParams(
            colour=bool(batch["colour"][b]),
            **{name: batch[name][b] for name in _PER_VIEW},
            vshift=float(batch["vshift"][b]),
            boxes=[tuple(int(v) for v in box) for box in batch["boxes"][b, :count].tolist()],
        )
        items.append((params, int(batch["noise_seed"][b])))
    return items


def augment_batch(
    left: torch.Tensor, right: torch.Tensor, params: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`StereoAugment.apply` for a batch on the images' device (a GPU, so the loader
    only crops): the colour step runs once for every item that draws it, the rest per view.

    Args:
        left, right: ``(B, 3, H, W)`` float in [0, 1], on any device.
        params: the collated dicts of :meth:`StereoAugment.sample_packed` (CPU tensors, read
            without a device synchronisation).

    Returns:
        float32 ``(B, 3, H, W)`` views in [0, 1]; item ``b`` is ``apply(left[b], right[b],
        params_b, generator)`` with its noise from a generator on the images' device seeded
        with the item's ``noise_seed``.
    """
    items = unpack_params(params)
    if left.ndim != 4 or left.shape[1] != 3 or left.shape != right.shape:
        raise ValueError(
            "left and right must be (B, 3, H, W) of one shape, got "
            f"{tuple(left.shape)} and {tuple(right.shape)}"
        )
    if len(items) != left.shape[0]:
        raise ValueError(f"{len(items)} augmentation draws for a batch of {left.shape[0]} pairs")
    images = torch.stack([left, right], dim=1).float()  # (B, 2, 3, H, W)
    chosen = [b for b, (p, _) in enumerate(items) if p.colour]
    if chosen:

        def factor(name: str) -> torch.Tensor:
            return torch.cat([getattr(items[b][0], name) for b in chosen])

        coloured = adjust_colour(
            images[chosen].flatten(0, 1), *(factor(n) for n in _COLOUR_FACTORS)
        )
        images[chosen] = coloured.unflatten(0, (len(chosen), 2))
    pairs = []
    for b, (p, seed) in enumerate(items):
        generator = torch.Generator(device=images.device).manual_seed(seed)
        pairs.append(_finish_pair(images[b, 0], images[b, 1], p, generator))
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _finish_pair(
    left: torch.Tensor,
    right: torch.Tensor,
    params: AugmentParams,
    generator: Optional[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The steps of :meth:`StereoAugment.apply` after the colour: blur and noise per view
    (left first; the noise drawn from ``generator`` on the views' device), then the right
    view's vertical shift and erased boxes."""
    views = [left, right]
    for i in range(2):
        sigma = float(params.blur_sigma[i])
        if sigma > 0:
            k = 2 * math.ceil(3 * sigma) + 1
            s = torch.tensor([[sigma, sigma]], device=views[i].device)
            views[i] = kornia.filters.gaussian_blur2d(views[i][None], (k, k), s)[0]
        std = float(params.noise_std[i])
        if std > 0:
            noise = torch.randn(
                views[i].shape, generator=generator, dtype=views[i].dtype, device=views[i].device
            )
            views[i] = (views[i] + std * noise).clamp(0, 1)
    if params.vshift:
        views[1] = vertical_shift(views[1], params.vshift)
    if params.boxes:
        views[1] = erase(views[1], params.boxes)
    return views[0].contiguous(), views[1].contiguous()


class StereoAugment:
    """Random photometric differences between (and within) the two views of a stereo pair.

    Args:
        colour_p: probability of the colour jitter and gamma.
        brightness: factor drawn from ``[1 - brightness, 1 + brightness]``.
        contrast: factor drawn from ``[1 - contrast, 1 + contrast]``.
        saturation: factor drawn from ``[1 - saturation, 1 + saturation]``.
        hue: shift drawn from ``[-hue, hue]`` turns (0.5 = 180 degrees).
        gamma: exponent range ``(min, max)``, drawn log-uniformly.
        asymmetric_p: probability that the right view draws its own colour and gamma (else
            it takes the left view's).
        blur_p: per view, probability of a Gaussian blur ...
        blur_sigma: ... of a standard deviation drawn from this ``(min, max)`` px range.
        noise_p: per view, probability of additive Gaussian noise ...
        noise_std: ... of a standard deviation drawn from this ``(min, max)`` range (image
            values in [0, 1]).
        vshift_p: probability of a vertical shift of the right view ...
        max_vshift: ... drawn uniformly from ``[-max_vshift, max_vshift]`` px.
        eraser_p: probability of erasing rectangles of the right view (1 or 2, each side
            ``eraser_size`` times the image's side) ...
        eraser_size: ... ``(min, max)`` fraction of the image height / width.
    """

    def __init__(
        self,
        colour_p: float = 1.0,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.05,
        gamma: Sequence[float] = (0.7, 1.4),
        asymmetric_p: float = 0.5,
        blur_p: float = 0.2,
        blur_sigma: Sequence[float] = (0.3, 1.5),
        noise_p: float = 0.3,
        noise_std: Sequence[float] = (0.003, 0.03),
        vshift_p: float = 0.5,
        max_vshift: float = 1.0,
        eraser_p: float = 0.5,
        eraser_size: Sequence[float] = (0.1, 0.3),
    ) -> None:
        for name, p in (
            ("colour_p", colour_p),
            ("asymmetric_p", asymmetric_p),
            ("blur_p", blur_p),
            ("noise_p", noise_p),
            ("vshift_p", vshift_p),
            ("eraser_p", eraser_p),
        ):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        for name, v in (("brightness", brightness), ("contrast", contrast)):
            if not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        if not 0 <= saturation <= 1:
            raise ValueError(f"saturation must be in [0, 1], got {saturation}")
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5] turns, got {hue}")
        if max_vshift < 0:
            raise ValueError(f"max_vshift must be >= 0, got {max_vshift}")
        self.colour_p, self.asymmetric_p = float(colour_p), float(asymmetric_p)
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)
        self.gamma = _range(gamma, "gamma", low=1e-3)
        self.blur_p, self.blur_sigma = float(blur_p), _range(blur_sigma, "blur_sigma", 1e-3)
        self.noise_p, self.noise_std = float(noise_p), _range(noise_std, "noise_std")
        self.vshift_p, self.max_vshift = float(vshift_p), float(max_vshift)
        self.eraser_p = float(eraser_p)
        self.eraser_size = _range(eraser_size, "eraser_size")
        if self.eraser_size[1] > 1:
            raise ValueError(f"eraser_size must be fractions in [0, 1], got {eraser_size}")

    def __repr__(self) -> str:
        names = (
            "colour_p brightness contrast saturation hue gamma asymmetric_p blur_p blur_sigma "
            "noise_p noise_std vshift_p max_vshift eraser_p eraser_size"
        ).split()
        return f"StereoAugment({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    def sample(
        self, height: int, width: int, generator: Optional[torch.Generator] = None
    ) -> AugmentParams:
        """Draw the parameters for an ``height x width`` pair from ``generator`` (``None``:
        torch's global RNG). The number of draws is fixed, whatever the outcome."""

        def uniform(lo: float, hi: float, n: int = 2) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, generator=generator)

        def chance(p: float, n: int = 2) -> torch.Tensor:
            return torch.rand(n, generator=generator) < p

        colour = bool(chance(self.colour_p, 1))
        brightness = uniform(1 - self.brightness, 1 + self.brightness)
        contrast = uniform(1 - self.contrast, 1 + self.contrast)
        saturation = uniform(1 - self.saturation, 1 + self.saturation)
        hue = uniform(-self.hue, self.hue) * 2 * math.pi
        log_gamma = uniform(math.log(self.gamma[0]), math.log(self.gamma[1]))
        gamma = log_gamma.exp()
        if not bool(chance(self.asymmetric_p, 1)):  # the right view takes the left's draw
            for t in (brightness, contrast, saturation, hue, gamma):
                t[1] = t[0]
        blur = chance(self.blur_p) * uniform(*self.blur_sigma)
        noise = chance(self.noise_p) * uniform(*self.noise_std)
        vshift = float(chance(self.vshift_p, 1) * uniform(-self.max_vshift, self.max_vshift, 1))
        erase_now = bool(chance(self.eraser_p, 1))
        count = 1 + int(torch.randint(0, 2, (), generator=generator))
        boxes = []
        for _ in range(2):  # always two draws, so the stream does not depend on the outcome
            size = uniform(*self.eraser_size)
            h, w = max(1, int(size[0] * height)), max(1, int(size[1] * width))
            corner = torch.rand(2, generator=generator)
            top, left = int(corner[0] * (height - h + 1)), int(corner[1] * (width - w + 1))
            boxes.append((top, left, h, w))
        return AugmentParams(
            colour=colour,
            brightness=brightness,
            contrast=contrast,
            saturation=saturation,
            hue=hue,
            gamma=gamma,
            blur_sigma=blur,
            noise_std=noise,
            vshift=vshift,
            boxes=boxes[:count] if erase_now else [],
        )

    def sample_packed(
        self, height: int, width: int, generator: Optional[torch.Generator] = None
    ) -> dict[str, torch.Tensor]:
        """:meth:`sample`, then the seed of the noise, packed (:func:`pack_params`) for
        :func:`augment_batch` to apply on the device. The draws up to the noise are those of
        :meth:`__call__`; the noise values differ (a device generator seeded per item)."""
        params = self.sample(height, width, generator)
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        return pack_params(params, seed)

    def apply(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        params: AugmentParams,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair ``(3, H, W)`` in [0, 1] augmented with ``params`` (the noise itself is
        drawn from ``generator``); returns float32 views in [0, 1]."""
        _check_image(left, "left")
        _check_image(right, "right")
        if left.shape != right.shape:
            raise ValueError(
                f"left and right must have one shape, got {tuple(left.shape)} and "
                f"{tuple(right.shape)}"
            )
        images = torch.stack([left, right]).float()
        if params.colour:
            images = adjust_colour(images, *(getattr(params, n) for n in _COLOUR_FACTORS))
        return _finish_pair(images[0], images[1], params, generator)

    def __call__(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a pair ``(3, H, W)`` in [0, 1] with parameters drawn from ``generator``."""
        params = self.sample(left.shape[-2], left.shape[-1], generator)
        return self.apply(left, right, params, generator)


def make_augment(
    augment: Union[bool, dict[str, Any], StereoAugment, None],
) -> Optional[StereoAugment]:
    """``augment`` as a DataModule takes it: false/None (off), true (the defaults), a dict of
    :class:`StereoAugment` arguments, or one.

    Raises:
        ValueError: a dict naming an unknown argument (listing the known ones).
    """
    if augment is None or augment is False:
        return None
    if augment is True:
        return StereoAugment()
    if isinstance(augment, StereoAugment):
        return augment
    if isinstance(augment, dict):
        known = list(inspect.signature(StereoAugment).parameters)
        unknown = sorted(set(augment) - set(known))
        if unknown:
            raise ValueError(f"augment has unknown settings {unknown}; known: {', '.join(known)}")
        return StereoAugment(**augment)
    raise ValueError(f"augment must be true/false or a dict of settings, got {augment!r}")
