"""Batch augmentation and preprocessing on whole uint8 batches (PAPER.md section 4).

Every transform takes a whole batch ``[B, C, H, W]`` of uint8 pixels on whatever
device it lives on and returns float32 ``[B, C, S, S]`` in [-1, 1] on that device,
with S the model's input size. Geometric changes are one ``affine_grid`` +
``grid_sample`` with a per-sample ``theta``; crops are index gathers; there is no
per-sample Python. All randomness comes from the ``torch.Generator`` passed in,
which must live on the batch's device, so a (seed, epoch) generator reproduces a
batch exactly.

Ranges marked *ours* are not given by Byerly's paper and are documented in
docs/method.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from trainers.errors import ConfigError, DataError

__all__ = ["INPUT_SIZES", "eval_transform", "input_size", "preprocess", "train_transform"]

INPUT_SIZES = {"mnist": 28, "digits": 28, "cifar10": 32, "smallnorb": 32}
"""Side of the square image the model sees, per dataset."""

# MNIST / digits (Byerly): rotation clip(N(0, 0.33), -1, 1) x 30 deg with p = 0.5.
ROTATION_P = 0.5
ROTATION_STD = 0.33
ROTATION_MAX_DEG = 30.0
# Width squish (ours, after Byerly's form): x scaled by 1 - 0.25 * clip(|N(0, 0.33)|, 0, 1).
SQUISH_STD = 0.33
SQUISH_MAX = 0.25
ERASE_SIZE = 4
# CIFAR-10 random resized crop (Byerly) and colour jitter factors 1 +- j (ours).
CROP_AREA = (0.05, 1.0)
CROP_ASPECT = (0.75, 4.0 / 3.0)
FLIP_P = 0.5
CIFAR_JITTER = (0.25, 0.25, 0.25)  # brightness, contrast, saturation
# smallNORB: 32x32 crop of the stored 48x48; brightness / contrast factors 1 +- j (ours).
NORB_CROP = 32
NORB_JITTER = (0.25, 0.5, 0.0)

_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


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
    if dataset == "cifar10":
        return _cifar_train
    return _norb_train


def eval_transform(dataset: str) -> Callable[[Tensor], Tensor]:
    """The deterministic evaluation transform for ``dataset``: ``uint8 batch -> float``."""
    _check_dataset(dataset)
    if dataset == "smallnorb":
        return _norb_eval
    return preprocess


def _check_dataset(dataset: str) -> None:
    if dataset not in INPUT_SIZES:
        raise ConfigError(f"unknown dataset {dataset!r}; expected one of {tuple(INPUT_SIZES)}")


def _scale(x: Tensor) -> Tensor:
    """Float pixels in [0, 255] -> [-1, 1) (Byerly's scaling)."""
    return (x / 256.0 - 0.5) * 2.0


def _uniform(
    low: float, high: float, shape: tuple[int, ...], gen: torch.Generator, device: torch.device
) -> Tensor:
    """U(low, high) of ``shape`` on ``device`` (which must be the generator's)."""
    return low + (high - low) * torch.rand(shape, generator=gen, device=device)


def _randint(
    high: int, shape: tuple[int, ...], gen: torch.Generator, device: torch.device
) -> Tensor:
    """Uniform integers in [0, high) of ``shape`` (int64) on ``device``."""
    u = torch.rand(shape, generator=gen, device=device)
    # clamp: u * high can round up to high in float32
    return (u * high).long().clamp(max=high - 1)


def _warp(x: Tensor, theta: Tensor, size: int, padding: str) -> Tensor:
    """Resample ``x`` [B, C, H, W] at ``theta`` [B, 2, 3] (output -> input): [B, C, size, size]."""
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


# --- MNIST / digits -----------------------------------------------------------------


def _digit_box(images: Tensor) -> Tensor:
    """Bounding box of the nonzero pixels in normalised coordinates: [B, 2 (x, y), 2 (lo, hi)].

    An empty image gets the whole frame, so it is not shifted.
    """
    _, _, height, width = images.shape
    mask = images.amax(dim=1) > 0  # [B, H, W]
    edges = []
    for any_along, size in ((mask.any(dim=1), width), (mask.any(dim=2), height)):
        hits = any_along.to(torch.uint8)  # [B, size]
        first = hits.argmax(dim=1)  # [B]; 0 when empty
        last = size - 1 - hits.flip(1).argmax(dim=1)  # [B]; size - 1 when empty
        edges.append(torch.stack([first, last + 1], dim=1).float() * (2.0 / size) - 1.0)
    return torch.stack(edges, dim=1)  # [B, 2, 2]


def _digit_theta(images: Tensor, gen: torch.Generator) -> Tensor:
    """Per-sample theta [B, 2, 3] for rotate -> width squish -> shift within the margins."""
    batch, device = images.shape[0], images.device
    z_angle = torch.randn(batch, generator=gen, device=device)
    rotate = torch.rand(batch, generator=gen, device=device) < ROTATION_P
    z_squish = torch.randn(batch, generator=gen, device=device)
    u_shift = torch.rand((batch, 2), generator=gen, device=device)

    max_rad = math.radians(ROTATION_MAX_DEG)
    angle = torch.where(rotate, (z_angle * ROTATION_STD).clamp(-1.0, 1.0) * max_rad, 0.0)
    squish = 1.0 - SQUISH_MAX * (z_squish * SQUISH_STD).abs().clamp(max=1.0)  # [B]
    cos, sin = angle.cos(), angle.sin()
    # forward map p_out = A p_in + t with A = diag(squish, 1) @ R(angle): [B, 2, 2]
    forward = torch.stack(
        [torch.stack([squish * cos, -squish * sin], 1), torch.stack([sin, cos], 1)], 1
    )
    # extent of the transformed bounding box, from its four corners
    box = _digit_box(images)  # [B, 2, 2]
    corners = torch.stack(
        [torch.stack([box[:, 0, i], box[:, 1, j]], 1) for i in (0, 1) for j in (0, 1)], 1
    )  # [B, 4, 2]
    moved = corners @ forward.transpose(1, 2)  # [B, 4, 2]
    low, high = -1.0 - moved.amin(dim=1), 1.0 - moved.amax(dim=1)  # allowed t: [B, 2] each
    # centre a digit that overflows the frame; otherwise shift uniformly within the margins
    half = ((high - low) / 2).clamp(min=0.0)
    shift = (low + high) / 2 + (2 * u_shift - 1) * half  # [B, 2]
    # theta maps output to input: p_in = A^-1 (p_out - t), A^-1 = R(-angle) diag(1 / squish, 1)
    inverse = torch.stack(
        [torch.stack([cos / squish, sin], 1), torch.stack([-sin / squish, cos], 1)], 1
    )  # [B, 2, 2]
    offset = -(inverse @ shift[:, :, None])  # [B, 2, 1]
    return torch.cat([inverse, offset], dim=2)  # [B, 2, 3]


def _erase(x: Tensor, gen: torch.Generator, size: int = ERASE_SIZE) -> Tensor:
    """Zero one ``size`` x ``size`` square per image at a uniform random position."""
    batch, _, height, width = x.shape
    top = _randint(height - size + 1, (batch, 1), gen, x.device)  # [B, 1]
    left = _randint(width - size + 1, (batch, 1), gen, x.device)  # [B, 1]
    rows = torch.arange(height, device=x.device)[None]  # [1, H]
    cols = torch.arange(width, device=x.device)[None]  # [1, W]
    in_rows = (rows >= top) & (rows < top + size)  # [B, H]
    in_cols = (cols >= left) & (cols < left + size)  # [B, W]
    square = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # [B, 1, H, W]
    return x.masked_fill(square, 0.0)


def _digits_train(images: Tensor, gen: torch.Generator) -> Tensor:
    """Byerly's MNIST augmentation: rotate (p = 0.5), squish, shift, 4x4 erase."""
    theta = _digit_theta(images, gen)  # [B, 2, 3]
    x = _warp(images.float(), theta, images.shape[-1], padding="zeros")  # [B, C, H, W]
    return _scale(_erase(x, gen))


# --- colour -------------------------------------------------------------------------


def _jitter(x: Tensor, gen: torch.Generator, strengths: tuple[float, float, float]) -> Tensor:
    """Brightness, contrast, saturation factors U(1 - j, 1 + j) on pixels in [0, 255].

    Contrast blends with the image's mean grey level, saturation with each pixel's grey
    level (channels other than 3: skipped). Three factors are drawn per image either way.
    """
    strength = torch.tensor(strengths, device=x.device)  # [3]
    u = torch.rand((x.shape[0], 3), generator=gen, device=x.device)
    factors = 1.0 + (2 * u - 1) * strength  # [B, 3]
    brightness, contrast, saturation = (f[:, None, None, None] for f in factors.unbind(1))
    x = (x * brightness).clamp(0.0, 255.0)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)  # [B, 1, 1, 1]
    x = (mean + (x - mean) * contrast).clamp(0.0, 255.0)
    if x.shape[1] == 3:
        gray = _gray(x)  # [B, 1, H, W]
        x = (gray + (x - gray) * saturation).clamp(0.0, 255.0)
    return x


def _gray(x: Tensor) -> Tensor:
    """Grey level [B, 1, H, W] of RGB (luma) or single-channel images."""
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    weights = torch.tensor(_GRAY, device=x.device, dtype=x.dtype)
    return (x * weights[None, :, None, None]).sum(dim=1, keepdim=True)


# --- CIFAR-10 -----------------------------------------------------------------------


def _crop_theta(batch: int, gen: torch.Generator, device: torch.device) -> Tensor:
    """Random resized crop + horizontal flip as theta [B, 2, 3] (output -> input)."""
    area = _uniform(*CROP_AREA, (batch,), gen, device)  # fraction of the image
    log_low, log_high = math.log(CROP_ASPECT[0]), math.log(CROP_ASPECT[1])
    log_aspect = _uniform(log_low, log_high, (batch,), gen, device)
    u_centre = torch.rand((batch, 2), generator=gen, device=device)
    flip = torch.rand(batch, generator=gen, device=device) < FLIP_P
    # crop width / height as fractions of the side; clamped so the crop stays inside
    width = (area * log_aspect.exp()).sqrt().clamp(max=1.0)
    height = (area / log_aspect.exp()).sqrt().clamp(max=1.0)
    cx = (2 * u_centre[:, 0] - 1) * (1 - width)
    cy = (2 * u_centre[:, 1] - 1) * (1 - height)
    sx = torch.where(flip, -width, width)
    zero = torch.zeros_like(width)
    return torch.stack(
        [torch.stack([sx, zero, cx], 1), torch.stack([zero, height, cy], 1)], 1
    )  # [B, 2, 3]


def _cifar_train(images: Tensor, gen: torch.Generator) -> Tensor:
    """Random resized crop (area 0.05-1, aspect 0.75-1.33), flip, colour jitter."""
    theta = _crop_theta(images.shape[0], gen, images.device)
    x = _warp(images.float(), theta, INPUT_SIZES["cifar10"], padding="border")
    return _scale(_jitter(x, gen, CIFAR_JITTER))


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


def _norb_train(images: Tensor, gen: torch.Generator) -> Tensor:
    """Random 32x32 crop of the 48x48 image, brightness / contrast jitter."""
    batch, _, height, width = images.shape
    top = _randint(max(height - NORB_CROP + 1, 1), (batch,), gen, images.device)
    left = _randint(max(width - NORB_CROP + 1, 1), (batch,), gen, images.device)
    x = _norb_crop(images, top, left, NORB_CROP).float()  # [B, C, 32, 32]
    return _scale(_jitter(x, gen, NORB_JITTER))


def _norb_eval(images: Tensor) -> Tensor:
    """Centre 32x32 crop of the 48x48 image."""
    batch, _, height, width = images.shape
    top = torch.full((batch,), (height - NORB_CROP) // 2, device=images.device)
    left = torch.full((batch,), (width - NORB_CROP) // 2, device=images.device)
    return preprocess(_norb_crop(images, top, left, NORB_CROP))
