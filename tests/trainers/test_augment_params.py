"""Byerly's augmentation parameters: each distribution's range and mean on a large batch.

Expected means are closed forms where there is one (z ~ N(0, 0.33): P(|z| >= t) =
erfc(t / (0.33 sqrt 2))); the crop box, which has none, is checked against a plain
per-sample transcription of TensorFlow's ``sample_distorted_bounding_box``.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from trainers.augment_params import (
    draw_angles,
    draw_colour,
    draw_crop_boxes,
    draw_erase_corners,
    draw_norb_crops,
    draw_norb_jitter,
    draw_shifts,
    draw_squish,
)

N = 200_000


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tail(t: float) -> float:
    """P(|z| >= t), z ~ N(0, 0.33)."""
    return math.erfc(t / (0.33 * math.sqrt(2)))


def _close(value: torch.Tensor, expected: float, se: float) -> None:
    """``value`` (a sample mean) within 4 standard errors of ``expected``."""
    assert abs(value.item() - expected) < 4 * se, (value.item(), expected)


def _uniform_checks(x: torch.Tensor, low: float, high: float) -> None:
    """Range, mean and spread of U(low, high)."""
    assert x.min() >= low and x.max() <= high
    assert x.min() < low + 0.001 * (high - low) and x.max() > high - 0.001 * (high - low)
    std = (high - low) / math.sqrt(12)
    _close(x.mean(), (low + high) / 2, std / math.sqrt(x.numel()))
    assert x.std().item() == pytest.approx(std, rel=0.01)


def test_angles_half_unrotated_the_rest_30_degrees_times_clipped_z() -> None:
    angle = draw_angles(N, _gen())
    assert angle.shape == (N,) and angle.dtype == torch.float32
    rotated = angle[angle != 0]
    _close(torch.tensor(rotated.numel() / N), 0.5, 0.5 / math.sqrt(N))
    assert rotated.abs().max() <= 30 * 0.9999 + 1e-4
    _close(rotated.mean(), 0.0, 10 / math.sqrt(rotated.numel()))
    # E|clip(z)| x 30 = 0.33 sqrt(2 / pi) x 30 (the clip at 3 std changes it by < 1e-3)
    _close(rotated.abs().mean(), 30 * 0.33 * math.sqrt(2 / math.pi), 6 / math.sqrt(N / 2))


def test_shifts_stay_within_the_margins_and_follow_byerlys_rounding() -> None:
    left, right, top, bottom = 10, 4, 0, 7
    margins = torch.tensor([[left, right, top, bottom]], dtype=torch.float32).expand(N, 4)
    shift = draw_shifts(margins, _gen())
    assert shift.shape == (N, 2) and shift.dtype == torch.int64
    dx, dy = shift[:, 0], shift[:, 1]
    assert dx.min() == -left and dx.max() == right  # the whole margin is reachable
    assert dy.min() == 0 and dy.max() == bottom
    # right / down: floor(a (m + 1)), mean sum_{k=1..m} P(a >= k / (m + 1));
    # left / up: ceil(a m), mean 1 + sum_{k=1..m-1} P(a >= k / m) (0 when m = 0)
    ahead = {m: sum(_tail(k / (m + 1)) for k in range(1, m + 1)) for m in (right, bottom)}
    back = {m: 1 + sum(_tail(k / m) for k in range(1, m)) if m else 0.0 for m in (left, top)}
    _close(dx.float().mean(), 0.5 * (ahead[right] - back[left]), 3 / math.sqrt(N))
    _close(dy.float().mean(), 0.5 * (ahead[bottom] - back[top]), 3 / math.sqrt(N))
    _close((dx > 0).float().mean(), 0.5 * (1 - math.erf(0.2 / (0.33 * math.sqrt(2)))), 0.002)


def test_empty_margins_never_shift() -> None:
    assert not draw_shifts(torch.zeros(1000, 4), _gen()).any()


def test_squish_loses_1_to_7_columns_at_28() -> None:
    squish = draw_squish(N, _gen(), size=28)
    width, extra = squish.width, squish.offset - squish.width // 2
    assert width.min() == 1 and width.max() == 7
    _close(width.float().mean(), 1 + sum(_tail(k / 7) for k in range(1, 7)), 1 / math.sqrt(N))
    assert set(extra.unique().tolist()) == {0, 1}
    _close(extra.float().mean(), _tail(0.5), 0.5 / math.sqrt(N))


def test_erase_corners_uniform_4_to_22() -> None:
    corners = draw_erase_corners(N, _gen())
    assert corners.shape == (N, 2) and corners.dtype == torch.int64
    counts = torch.bincount(corners.flatten(), minlength=23)
    assert counts[:4].sum() == 0 and counts[4:].min() > 0.9 * 2 * N / 19
    _close(corners.float().mean(), 13.0, 5.5 / math.sqrt(2 * N))


def test_colour_factors() -> None:
    colour = draw_colour(N, _gen())
    _uniform_checks(colour.brightness, -32 / 255, 32 / 255)
    _uniform_checks(colour.saturation, 0.5, 1.5)
    _uniform_checks(colour.hue, -0.2, 0.2)
    _uniform_checks(colour.contrast, 0.5, 1.5)
    assert colour.contrast_first.dtype == torch.bool
    _close(colour.contrast_first.float().mean(), 0.5, 0.5 / math.sqrt(N))


def test_norb_jitter_and_crops() -> None:
    brightness, contrast = draw_norb_jitter(N, _gen())
    _uniform_checks(brightness, -0.25, 0.25)
    _uniform_checks(contrast, 0.2, 1.8)
    corners = draw_norb_crops(N, _gen(), size=48)
    assert corners.min() == 0 and corners.max() == 16
    _close(corners.float().mean(), 8.0, 5 / math.sqrt(2 * N))


def _tf_crop(rng: random.Random, size: int = 32) -> tuple[int, int, int, int]:
    """One box (top, left, height, width), TF's GenerateRandomCrop loop written per sample."""
    full = size * size
    min_area, max_area = 0.05 * full, 1.0 * full
    for _ in range(100):
        aspect = 0.75 + rng.random() * (1.33 - 0.75)
        height = round(math.sqrt(min_area / aspect))
        max_height = round(math.sqrt(max_area / aspect))
        if round(max_height * aspect) > size:
            max_height = int((size + 0.5 - 1e-7) / aspect)
            if round(max_height * aspect) > size:
                max_height -= 1
        max_height = min(max_height, size)
        height = min(height, max_height)
        height += rng.randrange(max_height - height + 1)
        width = round(height * aspect)
        if width * height < min_area:
            height += 1
            width = round(height * aspect)
        if width * height > max_area:
            height -= 1
            width = round(height * aspect)
        area = width * height
        if not (min_area <= area <= max_area and 0 < width <= size and 0 < height <= size):
            continue
        top = rng.randrange(size - height) if height < size else 0
        left = rng.randrange(size - width) if width < size else 0
        if area >= 0.1 * full:  # min_object_covered of the whole image
            return top, left, height, width
    return 0, 0, size, size


def test_crop_boxes_match_tensorflows_sampler() -> None:
    n = 40_000
    box = draw_crop_boxes(n, _gen(), size=32)
    top, left, height, width = (t.float() for t in box[:4])
    area = height * width / 1024
    assert (height >= 1).all() and (width >= 1).all()
    assert (top + height <= 32).all() and (left + width <= 32).all()
    assert area.min() >= 0.1 and area.max() <= 1.0  # 10% covered: the real lower bound
    assert ((width / height) > 0.6).all() and ((width / height) < 1.5).all()
    _close(box.flip.float().mean(), 0.5, 0.5 / math.sqrt(n))
    rng = random.Random(0)
    ref = torch.tensor([_tf_crop(rng) for _ in range(n)], dtype=torch.float32)  # [n, 4]
    ours = torch.stack([top, left, height, width], dim=1)
    for column in range(4):
        se = math.hypot(ours[:, column].std().item(), ref[:, column].std().item()) / math.sqrt(n)
        _close(ours[:, column].mean(), ref[:, column].mean().item(), se)
    ref_area = ref[:, 2] * ref[:, 3] / 1024
    _close(area.mean(), ref_area.mean().item(), 2 * area.std().item() / math.sqrt(n))


@pytest.mark.parametrize(
    "draw",
    [
        lambda g: draw_angles(64, g),
        lambda g: draw_shifts(torch.full((64, 4), 5.0), g),
        lambda g: torch.stack(list(draw_squish(64, g))),
        lambda g: draw_erase_corners(64, g),
        lambda g: torch.cat([t.float() for t in draw_crop_boxes(64, g)]),
        lambda g: torch.cat([t.float() for t in draw_colour(64, g)]),
        lambda g: torch.cat(draw_norb_jitter(64, g)),
    ],
)
def test_same_generator_seed_same_draws(draw: object) -> None:
    first = draw(_gen(3))  # type: ignore[operator]
    assert torch.equal(first, draw(_gen(3)))  # type: ignore[operator]
    assert not torch.equal(first, draw(_gen(4)))  # type: ignore[operator]
