"""Batch augmentation and preprocessing on whole uint8 batches (PAPER.md section 4).

Every transform takes a whole batch ``[B, C, H, W]`` of uint8 pixels on whatever
device it lives on and returns float32 ``[B, C, S, S]`` on that device, with S the
model's input size, scaled as Byerly scales: (x / 256 - 0.5) * 2. Geometric changes are
``affine_grid`` + ``grid_sample`` with a per-sample ``theta``; crops are index gathers;
there is no per-sample Python. All randomness comes from the ``torch.Generator`` passed
in, which must live on the batch's device, so a (seed, epoch) generator reproduces a
batch exactly. The random parameters are drawn in ``trainers.augment_params``, pure
functions of (batch size, generator), so each distribution is tested on its own.

The values are Byerly's (github.com/AdamByerly/BMCNNwHFCs, ``python/input``); where
lessdata differs (bilinear resampling instead of Lanczos, the shift's rounding), it says
so here and in docs/method.md.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from trainers.augment_params import (
    ERASE_SIZE,
    NORB_CROP,
    CropBox,
    Squish,
    draw_angles,
    draw_colour,
    draw_crop_boxes,
    draw_erase_corners,
    draw_norb_crops,
    draw_norb_jitter,
    draw_shifts,
    draw_squish,
)
from trainers.colour import adjust_brightness, adjust_contrast, adjust_saturation_hue
from trainers.errors import ConfigError, DataError

__all__ = ["INPUT_SIZES", "UNAUGMENTED", "eval_transform", "input_size", "preprocess",
           "train_transform"]

INPUT_SIZES = {"mnist": 28, "digits": 28, "cifar10": 32, "smallnorb": 32,
               "fashionmnist": 28, "kmnist": 28, "cifar100": 32, "svhn": 32}
"""Side of the square image the model sees, per dataset."""
UNAUGMENTED = ("fashionmnist", "kmnist", "svhn")
"""Sets the paper and Byerly do not train on (ours): scaled only, no augmentation. SVHN's
digits must not be flipped and MNIST's shifts assume a dark background, so neither
augmentation carries over without a study of its own."""


def input_size(dataset: str) -> int:
    """The model's input side S for ``dataset``."""
    _check_dataset(dataset)
    return INPUT_SIZES[dataset]


def preprocess(images: Tensor) -> Tensor:
    """uint8 ``[B, C, H, W]`` -> float32 in [-1, 1) as (x / 256 - 0.5) * 2, same device."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    return _scale(images.float())


def train_transform(dataset: str) -> Callable[[Tensor, torch.Generator], Tensor]:
    """The random training augmentation for ``dataset``: ``(uint8 batch, generator) -> float``."""
    _check_dataset(dataset)
    if dataset in ("mnist", "digits"):
        return _digits_train
    if dataset in ("cifar10", "cifar100"):
        return _cifar_train
    if dataset in UNAUGMENTED:
        return _scaled_only
    return _norb_train


def eval_transform(dataset: str) -> Callable[[Tensor], Tensor]:
    """The deterministic evaluation transform for ``dataset``: ``uint8 batch -> float``."""
    _check_dataset(dataset)
    if dataset == "smallnorb":
        return _norb_eval
    return preprocess


def _scaled_only(images: Tensor, gen: torch.Generator) -> Tensor:
    """No augmentation: the evaluation transform (``gen`` unused, kept for the signature)."""
    return preprocess(images)


def _check_dataset(dataset: str) -> None:
    if dataset not in INPUT_SIZES:
        raise ConfigError(f"unknown dataset {dataset!r}; expected one of {tuple(INPUT_SIZES)}")


def _scale(x: Tensor) -> Tensor:
    """Float pixels in [0, 255] -> [-1, 1) (Byerly's scaling)."""
    return (x / 256.0 - 0.5) * 2.0


def _centre(x: Tensor) -> Tensor:
    """Pixels in Byerly's [0, 1] units (x / 256) -> (x - 0.5) * 2."""
    return (x - 0.5) * 2.0


def _warp(x: Tensor, theta: Tensor, size: int, padding: str) -> Tensor:
    """Resample ``x`` [B, C, H, W] at ``theta`` [B, 2, 3] (output -> input): [B, C, size, size]."""
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


# --- MNIST / digits -----------------------------------------------------------------


def _margins(images: Tensor) -> Tensor:
    """Empty columns / rows beside the nonzero pixels: [B, 4] (left, right, top, bottom).

    An empty image has margins 0, so it is not shifted.
    """
    mask = images.amax(dim=1) > 0  # [B, H, W]
    sides = []
    for hits in (mask.any(dim=1), mask.any(dim=2)):  # columns [B, W], rows [B, H]
        hits = hits.to(torch.uint8)
        sides += [hits.argmax(dim=1), hits.flip(1).argmax(dim=1)]  # 0 when empty
    return torch.stack(sides, dim=1).float()


def _rotation_theta(angle_deg: Tensor) -> Tensor:
    """Rotation about the centre as theta [B, 2, 3] (output -> input: R(-angle))."""
    rad = torch.deg2rad(angle_deg)
    cos, sin, zero = rad.cos(), rad.sin(), torch.zeros_like(rad)
    return torch.stack(
        [torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1
    )  # [B, 2, 3]


def _shift_squish_theta(shift: Tensor, squish: Squish, size: int) -> Tensor:
    """Shift by ``shift`` [B, 2] pixels, then squish the width: theta [B, 2, 3].

    The squish resizes the W columns to W - width and pads ``offset`` zero columns on
    the left: output column j reads the shifted image at (j - offset + 0.5) W / (W - width)
    - 0.5, i.e. u_in = u_out W / (W - width) + (W - 2 offset) / (W - width) - 1 in
    normalised coordinates; the shift subtracts 2 dx / W (and 2 dy / W).
    """
    kept = (size - squish.width).float()  # [B]
    scale = size / kept
    x_off = (size - 2 * squish.offset).float() / kept - 1 - 2 * shift[:, 0] / size
    y_off = -2 * shift[:, 1].float() / size
    zero, one = torch.zeros_like(scale), torch.ones_like(scale)
    return torch.stack(
        [torch.stack([scale, zero, x_off], 1), torch.stack([zero, one, y_off], 1)], 1
    )  # [B, 2, 3]


def _erase(x: Tensor, corners: Tensor, size: int = ERASE_SIZE) -> Tensor:
    """Zero one ``size`` x ``size`` square per image, top-left at ``corners`` [B, 2]."""
    _, _, height, width = x.shape
    top, left = corners[:, :1], corners[:, 1:]  # [B, 1] each
    rows = torch.arange(height, device=x.device)[None]  # [1, H]
    cols = torch.arange(width, device=x.device)[None]  # [1, W]
    in_rows = (rows >= top) & (rows < top + size)  # [B, H]
    in_cols = (cols >= left) & (cols < left + size)  # [B, W]
    square = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # [B, 1, H, W]
    return x.masked_fill(square, 0.0)


def _digits_train(images: Tensor, gen: torch.Generator) -> Tensor:
    """Byerly's MNIST augmentation, in his order: rotate (p = 0.5), shift, squish, erase."""
    batch, _, size, _ = images.shape
    x = images.float()  # [B, C, 28, 28]
    angle = draw_angles(batch, gen)
    rotated = _warp(x, _rotation_theta(angle), size, padding="zeros")
    x = torch.where((angle != 0)[:, None, None, None], rotated, x)
    shift = draw_shifts(_margins(x), gen)  # margins of the rotated digit, as Byerly's
    theta = _shift_squish_theta(shift, draw_squish(batch, gen, size), size)
    x = _warp(x, theta, size, padding="zeros")  # whole-pixel shifts: exact rows
    return _scale(_erase(x, draw_erase_corners(batch, gen)))


# --- CIFAR-10 -----------------------------------------------------------------------


def _resize_boxes(x: Tensor, box: CropBox, size: int) -> Tensor:
    """Crop each image [B, C, H, W] to its box and resize it to size x size (bilinear).

    The sampling grid is clamped to the box's outer pixel centres, so the edges read the
    box's own pixels, as a crop followed by a resize does.
    """
    height, width = x.shape[-2:]
    grid = F.affine_grid(_box_theta(box, size), [x.shape[0], x.shape[1], size, size], False)
    limits = []
    for start, extent, side in ((box.left, box.width, width), (box.top, box.height, height)):
        low = (2 * start + 1).float() / side - 1  # [B], first pixel centre of the box
        high = (2 * (start + extent) - 1).float() / side - 1  # [B], last pixel centre
        limits.append((low[:, None, None], high[:, None, None]))
    grid = torch.stack([grid[..., i].clamp(*limits[i]) for i in (0, 1)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", align_corners=False)


def _box_theta(box: CropBox, size: int) -> Tensor:
    """Resize ``box`` to the whole output, flipped where ``box.flip``: theta [B, 2, 3]."""
    sx, sy = box.width.float() / size, box.height.float() / size
    cx = (2 * box.left + box.width).float() / size - 1
    cy = (2 * box.top + box.height).float() / size - 1
    sx = torch.where(box.flip, -sx, sx)
    zero = torch.zeros_like(sx)
    return torch.stack(
        [torch.stack([sx, zero, cx], 1), torch.stack([zero, sy, cy], 1)], 1
    )  # [B, 2, 3]


def _cifar_train(images: Tensor, gen: torch.Generator) -> Tensor:
    """Byerly's CIFAR-10 augmentation: crop box resized, flip, colour in one of two orders.

    Order 1: brightness, saturation, hue, contrast; order 2: brightness, contrast,
    saturation, hue; then clipped to [0, 1] (no clipping in between, as in TF).
    """
    batch, size = images.shape[0], images.shape[-1]
    x = images.float() / 256.0  # Byerly's [0, 1) pixels
    x = _resize_boxes(x, draw_crop_boxes(batch, gen, size), size)
    colour = draw_colour(batch, gen)
    contrast_first = colour.contrast_first[:, None, None, None]  # [B, 1, 1, 1]
    x = adjust_brightness(x, colour.brightness)
    x = torch.where(contrast_first, adjust_contrast(x, colour.contrast), x)
    x = adjust_saturation_hue(x, colour.saturation, colour.hue)
    x = torch.where(contrast_first, x, adjust_contrast(x, colour.contrast))
    return _centre(x.clamp(0.0, 1.0))


# --- smallNORB ----------------------------------------------------------------------


def _norb_crop(images: Tensor, top: Tensor, left: Tensor, size: int) -> Tensor:
    """Gather a ``size`` x ``size`` window at per-sample (top, left) [B]: [B, C, size, size]."""
    batch, channels, height, width = images.shape
    if height < size or width < size:
        raise DataError(f"smallnorb images must be at least {size}x{size}, got {height}x{width}")
    steps = torch.arange(size, device=images.device)
    rows = top[:, None] + steps  # [B, size]
    cols = left[:, None] + steps  # [B, size]
    flat = (rows[:, :, None] * width + cols[:, None, :]).reshape(batch, 1, size * size)
    index = flat.expand(batch, channels, size * size)  # [B, C, size * size]
    return images.flatten(2).gather(2, index).reshape(batch, channels, size, size)


def _norb_unit(images: Tensor) -> Tensor:
    """Stored smallNORB (uint8, already inverted: 255 - x) -> Byerly's 1 - x / 256."""
    return (images.float() + 1.0) / 256.0


def _norb_train(images: Tensor, gen: torch.Generator) -> Tensor:
    """Random 32x32 crop of the 48x48 image, brightness then contrast; no clipping (Byerly)."""
    batch, size = images.shape[0], images.shape[-1]
    corners = draw_norb_crops(batch, gen, size)  # [B, 2]
    x = _norb_unit(_norb_crop(images, corners[:, 0], corners[:, 1], NORB_CROP))  # [B, C, 32, 32]
    brightness, contrast = draw_norb_jitter(batch, gen)
    return _centre(adjust_contrast(adjust_brightness(x, brightness), contrast))


def _norb_eval(images: Tensor) -> Tensor:
    """Centre 32x32 crop of the 48x48 image."""
    batch, _, height, width = images.shape
    top = torch.full((batch,), (height - NORB_CROP) // 2, device=images.device)
    left = torch.full((batch,), (width - NORB_CROP) // 2, device=images.device)
    return _centre(_norb_unit(_norb_crop(images, top, left, NORB_CROP)))
