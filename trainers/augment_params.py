"""The random parameters of Byerly's augmentations: pure functions of a generator.

Each ``draw_*`` takes a batch size and a ``torch.Generator`` and returns per-image
parameters on the generator's device, so a distribution can be tested on its own
(range, mean) and ``trainers.augment`` applies them to whole batches. Values from
Byerly's code (github.com/AdamByerly/BMCNNwHFCs, ``python/input``; PAPER.md section 4).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "Colour",
    "CropBox",
    "Squish",
    "draw_angles",
    "draw_colour",
    "draw_crop_boxes",
    "draw_erase_corners",
    "draw_norb_crops",
    "draw_norb_jitter",
    "draw_shifts",
    "draw_squish",
]

# MNIST / digits (Byerly): every z ~ N(0, 0.33), clipped to +-0.9999 where used as an amount.
Z_STD = 0.33
Z_CLIP = 0.9999
ROTATION_P = 0.5
ROTATION_MAX_DEG = 30.0
ERASE_SIZE = 4
ERASE_CORNER = (4, 22)  # top-left corner, inclusive, on each axis (28x28)
# CIFAR-10 (Byerly, via tf.image.sample_distorted_bounding_box and tf.image.random_*).
CROP_AREA = (0.05, 1.0)
CROP_ASPECT = (0.75, 1.33)
CROP_MIN_COVERED = 0.1  # min_object_covered of the whole image: the crop's least area
CROP_ATTEMPTS = 100
FLIP_P = 0.5
BRIGHTNESS_DELTA = 32.0 / 255.0
SATURATION = (0.5, 1.5)
HUE_DELTA = 0.2
CONTRAST = (0.5, 1.5)
# smallNORB (Byerly): random 32x32 crop of the 48x48 image; brightness, contrast.
NORB_CROP = 32
NORB_BRIGHTNESS_DELTA = 0.25
NORB_CONTRAST = (0.2, 1.8)


class Squish(NamedTuple):
    """Per image [B]: columns the width loses (1-7 at 28) and the left padding."""

    width: Tensor
    offset: Tensor


class CropBox(NamedTuple):
    """Per image [B] (int64, pixels): the crop box, and whether to flip it horizontally."""

    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor
    flip: Tensor


class Colour(NamedTuple):
    """Per image [B]: Byerly's colour factors, and which of his two orders applies."""

    brightness: Tensor  # additive, in [0, 1] pixel units
    saturation: Tensor
    hue: Tensor  # added to the hue in [0, 1)
    contrast: Tensor
    contrast_first: Tensor  # bool: brightness, contrast, saturation, hue (else contrast last)


def _z(shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """Byerly's z ~ N(0, 0.33) of ``shape``, on the generator's device."""
    return torch.randn(shape, generator=gen, device=gen.device) * Z_STD


def _uniform(low: float, high: float, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """U(low, high) of ``shape`` on the generator's device."""
    return low + (high - low) * torch.rand(shape, generator=gen, device=gen.device)


def _randint(high: Tensor | int, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """Uniform integers in [0, high) (int64; ``high`` >= 1, a tensor broadcasts) of ``shape``."""
    u = torch.rand(shape, generator=gen, device=gen.device)
    # clamp: u * high can round up to high in float32
    return torch.minimum((u * high).long(), torch.as_tensor(high, device=u.device) - 1)


# --- MNIST / digits ---


def draw_angles(batch: int, gen: torch.Generator) -> Tensor:
    """Rotation angles [B] in degrees: clip(z, +-0.9999) x 30 with p = 0.5, else 0."""
    angle = _z((batch,), gen).clamp(-Z_CLIP, Z_CLIP) * ROTATION_MAX_DEG
    rotate = torch.rand(batch, generator=gen, device=gen.device) < ROTATION_P
    return torch.where(rotate, angle, 0.0)


def draw_shifts(margins: Tensor, gen: torch.Generator) -> Tensor:
    """Whole-pixel shifts [B, 2] (dx, dy) within ``margins`` [B, 4] (left, right, top, bottom).

    Per axis a random direction (p = 0.5) and a = |clip(z, +-0.9999)|; the digit moves
    right / down by floor(a x (margin + 1)) or left / up by ceil(a x margin) pixels:
    Byerly's code (``floor(-a x left)``, ``floor(a x (1 + right))``), which reaches the
    whole margin on both sides and never leaves the frame.
    """
    batch = margins.shape[0]
    amount = _z((batch, 2), gen).abs().clamp(max=Z_CLIP)  # [B, 2]
    forward = torch.rand((batch, 2), generator=gen, device=gen.device) < 0.5  # right, down
    ahead = (amount * (margins[:, 1::2] + 1)).floor()  # [B, 2] (x, y): right, bottom
    back = -(amount * margins[:, 0::2]).ceil()  # [B, 2]: left, top
    return torch.where(forward, ahead, back).long()


def draw_squish(batch: int, gen: torch.Generator, size: int = 28) -> Squish:
    """Width lost floor(|clip(z)| x size / 4) + 1 (1-7 at 28); offset width // 2 + 0 or 1."""
    amount = _z((batch, 2), gen).abs().clamp(max=Z_CLIP)  # [B, 2]
    width = (amount[:, 0] * (size / 4)).floor().long() + 1
    return Squish(width=width, offset=width // 2 + (amount[:, 1] * 2).floor().long())


def draw_erase_corners(batch: int, gen: torch.Generator) -> Tensor:
    """Top-left corners [B, 2] (row, column) of the 4x4 erase, uniform in [4, 22] each."""
    low, high = ERASE_CORNER
    return _randint(high - low + 1, (batch, 2), gen) + low


# --- CIFAR-10 ---


def draw_crop_boxes(batch: int, gen: torch.Generator, size: int = 32) -> CropBox:
    """``tf.image.sample_distorted_bounding_box`` on the whole image, and a flip (p = 0.5).

    Per attempt: aspect (w / h) ~ U(0.75, 1.33); height a uniform integer between the
    heights that give area 0.05 and 1.0 of the image at that aspect; width
    round(height x aspect); accepted if the area is in range, the box fits, and it covers
    >= 10% of the image (Byerly's ``min_object_covered``: the area's real lower bound).
    The first accepted of 100 attempts wins, else the whole image (as TF).
    """
    device, full = gen.device, float(size * size)
    u = torch.rand((batch, CROP_ATTEMPTS, 4), generator=gen, device=device)
    aspect = CROP_ASPECT[0] + (CROP_ASPECT[1] - CROP_ASPECT[0]) * u[..., 0]  # [B, A]
    min_area, max_area = CROP_AREA[0] * full, CROP_AREA[1] * full
    low = (min_area / aspect).sqrt().round()
    high = (max_area / aspect).sqrt().round()
    fitted = ((size + 0.5 - 1e-7) / aspect).floor()  # tallest box whose width still fits
    fitted = torch.where((fitted * aspect).round() > size, fitted - 1, fitted)
    high = torch.where((high * aspect).round() > size, fitted, high).clamp(max=size)
    low = torch.minimum(low, high)
    height = torch.minimum(low + (u[..., 1] * (high - low + 1)).floor(), high)
    width = (height * aspect).round()
    # TF's rounding repairs: one row more if too small, one less if too large
    small = width * height < min_area
    height = torch.where(small, height + 1, height)
    width = torch.where(small, (height * aspect).round(), width)
    large = width * height > max_area
    height = torch.where(large, height - 1, height)
    width = torch.where(large, (height * aspect).round(), width)
    area = width * height
    ok = (area >= max(min_area, CROP_MIN_COVERED * full, 1.0)) & (area <= max_area)
    ok &= (width <= size) & (height <= size)
    # offsets: TF's Uniform(size - extent), i.e. [0, size - extent), 0 when it fills the side
    top = torch.minimum((u[..., 2] * (size - height)).floor(), (size - height - 1).clamp(min=0))
    left = torch.minimum((u[..., 3] * (size - width)).floor(), (size - width - 1).clamp(min=0))
    first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)  # [B, 1]; 0 when none is ok
    found = ok.any(dim=1)  # [B]

    def pick(values: Tensor, fallback: float) -> Tensor:
        return torch.where(found, values.gather(1, first)[:, 0], fallback).long()

    flip = torch.rand(batch, generator=gen, device=device) < FLIP_P
    return CropBox(
        top=pick(top, 0.0),
        left=pick(left, 0.0),
        height=pick(height, float(size)),
        width=pick(width, float(size)),
        flip=flip,
    )


def draw_colour(batch: int, gen: torch.Generator) -> Colour:
    """Byerly's CIFAR-10 colour factors per image and the order they apply in."""
    u = torch.rand((batch, 5), generator=gen, device=gen.device)
    return Colour(
        brightness=(2 * u[:, 0] - 1) * BRIGHTNESS_DELTA,
        saturation=SATURATION[0] + (SATURATION[1] - SATURATION[0]) * u[:, 1],
        hue=(2 * u[:, 2] - 1) * HUE_DELTA,
        contrast=CONTRAST[0] + (CONTRAST[1] - CONTRAST[0]) * u[:, 3],
        contrast_first=u[:, 4] >= 0.5,
    )


# --- smallNORB ---


def draw_norb_crops(batch: int, gen: torch.Generator, size: int = 48) -> Tensor:
    """Top-left corners [B, 2] (row, column) of the random 32x32 crop, uniform in [0, 16]."""
    return _randint(max(size - NORB_CROP + 1, 1), (batch, 2), gen)


def draw_norb_jitter(batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """(brightness delta U(-0.25, 0.25), contrast factor U(0.2, 1.8)), each [B]."""
    brightness = _uniform(-NORB_BRIGHTNESS_DELTA, NORB_BRIGHTNESS_DELTA, (batch,), gen)
    return brightness, _uniform(*NORB_CONTRAST, (batch,), gen)
