"""Batch augmentation: shapes, ranges, seeding, and what each operation does."""

from __future__ import annotations

import math

import pytest
import torch

from trainers import augment
from trainers.augment import (
    INPUT_SIZES,
    eval_transform,
    input_size,
    preprocess,
    train_transform,
)
from trainers.errors import ConfigError

STORED = {"mnist": (1, 28), "digits": (1, 28), "cifar10": (3, 32), "smallnorb": (1, 48)}


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(dataset: str, batch: int = 16) -> torch.Tensor:
    channels, side = STORED[dataset]
    return torch.randint(0, 256, (batch, channels, side, side), generator=_seeded(99)).to(
        torch.uint8
    )


def _digits(batch: int = 64) -> torch.Tensor:
    """A ring ("0") of varying size in the middle of a black 28x28 frame."""
    images = torch.zeros(batch, 1, 28, 28, dtype=torch.uint8)
    for i in range(batch):
        h, w = 6 + i % 5, 4 + i % 3
        images[i, 0, 14 - h : 14 + h, 14 - w : 14 + w] = 255
        images[i, 0, 16 - h : 12 + h, 16 - w : 12 + w] = 0
    return images


@pytest.mark.parametrize("dataset", list(STORED))
def test_train_output_shape_dtype_range(dataset: str) -> None:
    images = _images(dataset)
    out = train_transform(dataset)(images, _seeded(0))
    side = input_size(dataset)
    assert out.shape == (16, STORED[dataset][0], side, side)
    assert out.dtype == torch.float32
    assert out.device == images.device
    assert out.min() >= -1.0 and out.max() <= 1.0


@pytest.mark.parametrize("dataset", list(STORED))
def test_eval_output_shape_range_and_determinism(dataset: str) -> None:
    images = _images(dataset)
    transform = eval_transform(dataset)
    out = transform(images)
    side = INPUT_SIZES[dataset]
    assert out.shape == (16, STORED[dataset][0], side, side)
    assert out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert torch.equal(out, transform(images))


@pytest.mark.parametrize("dataset", list(STORED))
def test_same_seed_same_output_other_seed_different(dataset: str) -> None:
    images = _images(dataset)
    transform = train_transform(dataset)
    first = transform(images, _seeded(1))
    assert torch.equal(first, transform(images, _seeded(1)))
    assert not torch.equal(first, transform(images, _seeded(2)))


def test_generator_advances_between_batches() -> None:
    images = _digits(8)
    gen = _seeded(0)
    transform = train_transform("mnist")
    assert not torch.equal(transform(images, gen), transform(images, gen))


def test_preprocess_scaling() -> None:
    images = torch.tensor([0, 64, 128, 255], dtype=torch.uint8).reshape(1, 1, 2, 2)
    expected = torch.tensor([-1.0, -0.5, 0.0, 255 / 128 - 1]).reshape(1, 1, 2, 2)
    torch.testing.assert_close(preprocess(images), expected)
    assert eval_transform("mnist") is preprocess
    with pytest.raises(TypeError, match="uint8"):
        preprocess(images.float())


@pytest.mark.parametrize("make", [train_transform, eval_transform, input_size])
def test_unknown_dataset_lists_options(make: object) -> None:
    with pytest.raises(
        ConfigError, match=r"'svhn'; expected one of .*mnist.*digits.*cifar10.*smallnorb"
    ):
        make("svhn")  # type: ignore[operator]


def test_digit_warp_keeps_most_of_the_mass() -> None:
    images = _digits()
    theta = augment._digit_theta(images, _seeded(0))
    warped = augment._warp(images.float(), theta, 28, padding="zeros")
    ratio = warped.sum(dim=(1, 2, 3)) / images.float().sum(dim=(1, 2, 3))
    # the squish shrinks the width by at most 25%; nothing leaves the frame
    assert ratio.min() > 0.7 and ratio.max() < 1.05
    assert ratio.mean() > 0.85


def test_digit_shift_moves_the_digit_within_its_margins() -> None:
    images = _digits(1).expand(256, -1, -1, -1)
    out = train_transform("mnist")(images, _seeded(0))
    mass = (out[:, 0] + 1).clamp(min=0)  # [B, H, W]
    cols = torch.arange(28.0)
    centre_x = (mass.sum(1) * cols).sum(1) / mass.sum((1, 2))  # [B]
    centre_y = (mass.sum(2) * cols).sum(1) / mass.sum((1, 2))  # [B]
    # the 12x8 ring has 10 columns of margin on each side, 8 rows above and below
    assert centre_x.std() > 2.0 and centre_y.std() > 2.0
    assert centre_x.min() < 8 and centre_x.max() > 19


def test_digit_theta_rotation_and_squish_ranges() -> None:
    images = _digits(1).expand(4000, -1, -1, -1)
    theta = augment._digit_theta(images, _seeded(0))
    linear = theta[:, :, :2]  # A^-1 = R(-angle) diag(1 / squish, 1)
    angle = torch.atan2(linear[:, 0, 1], linear[:, 1, 1])  # (sin, cos)
    unrotated = (angle == 0).float().mean().item()
    assert 0.45 < unrotated < 0.55
    assert angle.abs().max() <= math.radians(30) + 1e-5
    squish = 1 / linear.det()
    assert squish.min() >= 0.75 - 1e-5 and squish.max() <= 1 + 1e-5


def test_empty_image_stays_black() -> None:
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    out = train_transform("mnist")(images, _seeded(0))
    assert torch.equal(out, torch.full_like(out, -1.0))


def test_erase_zeroes_one_4x4_square() -> None:
    x = torch.full((2000, 1, 28, 28), 255.0)
    erased = augment._erase(x, _seeded(0))
    zero = erased[:, 0] == 0  # [B, H, W]
    assert (zero.sum((1, 2)) == 16).all()
    assert (zero.any(2).sum(1) == 4).all() and (zero.any(1).sum(1) == 4).all()
    top = zero.any(2).to(torch.uint8).argmax(1)  # [B] first erased row
    left = zero.any(1).to(torch.uint8).argmax(1)  # [B] first erased column
    assert top.min() == 0 and top.max() == 24 and left.min() == 0 and left.max() == 24


def test_erase_shows_as_minus_one_after_the_mnist_transform() -> None:
    images = torch.full((32, 1, 28, 28), 255, dtype=torch.uint8)
    out = train_transform("mnist")(images, _seeded(0))
    centre = out[:, 0, 10:18, 10:18]
    # the centre of a white frame stays white except where a 4x4 square was erased
    assert ((centre == -1).sum((1, 2)) <= 16).all()
    assert (out == -1).any()


def test_cifar_crop_stays_inside_the_image() -> None:
    theta = augment._crop_theta(2000, _seeded(0), torch.device("cpu"))
    sx, cx, sy, cy = theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2]
    assert ((sx.abs() + cx.abs()) <= 1 + 1e-6).all() and ((sy + cy.abs()) <= 1 + 1e-6).all()
    area = sx.abs() * sy
    assert area.min() >= 0.05 - 1e-6 and area.max() <= 1 + 1e-6
    assert 0.45 < (sx < 0).float().mean() < 0.55
    assert (theta[:, 0, 1] == 0).all() and (theta[:, 1, 0] == 0).all()


def test_cifar_uniform_colour_stays_uniform() -> None:
    images = torch.zeros(32, 3, 32, 32, dtype=torch.uint8)
    images[:, 0], images[:, 1], images[:, 2] = 200, 100, 50
    out = train_transform("cifar10")(images, _seeded(0))
    assert out.flatten(2).std(dim=2).max() < 1e-5
    red, green = out[:, 0].mean((1, 2)), out[:, 1].mean((1, 2))
    assert (red >= green).all()
    assert out.mean((2, 3)).std(0).min() > 0.01, "the jitter should vary colours across images"


def test_smallnorb_crop_gathers_windows() -> None:
    images = _images("smallnorb", 8)
    top = torch.tensor([0, 16, 3, 8, 0, 16, 5, 11])
    left = torch.tensor([0, 16, 9, 8, 16, 0, 2, 7])
    crops = augment._norb_crop(images, top, left, 32)
    for i in range(8):
        t, s = int(top[i]), int(left[i])
        assert torch.equal(crops[i], images[i, :, t : t + 32, s : s + 32])


def test_smallnorb_eval_is_the_centre_crop() -> None:
    images = _images("smallnorb")
    torch.testing.assert_close(
        eval_transform("smallnorb")(images), preprocess(images[:, :, 8:40, 8:40])
    )


def test_smallnorb_train_crops_are_random_windows() -> None:
    images = torch.zeros(64, 1, 48, 48, dtype=torch.uint8)
    images[:, :, 23:25, 23:25] = 255  # a dot in the centre
    out = train_transform("smallnorb")(images, _seeded(0))
    rows = out[:, 0].amax(2).argmax(1)  # [B] row of the dot in the crop
    assert rows.min() < 12 and rows.max() > 20


def test_mnist_batch_of_512() -> None:
    out = train_transform("mnist")(_digits(8).repeat(64, 1, 1, 1), _seeded(0))
    assert out.shape == (512, 1, 28, 28)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dataset", list(STORED))
def test_runs_on_cuda_with_a_cuda_generator(dataset: str) -> None:
    images = _images(dataset).cuda()
    gen = torch.Generator(device="cuda").manual_seed(0)
    out = train_transform(dataset)(images, gen)
    assert out.device == images.device
    again = train_transform(dataset)(images, torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(out, again)
    assert eval_transform(dataset)(images).device == images.device
