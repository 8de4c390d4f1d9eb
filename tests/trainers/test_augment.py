"""Batch augmentation: shapes, ranges, seeding, and what each operation does."""

from __future__ import annotations

import colorsys

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
    assert torch.isfinite(out).all()
    if dataset != "smallnorb":  # Byerly clips nothing on smallNORB (see the test below)
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
        ConfigError, match=r"'imagenet'; expected one of .*mnist.*digits.*cifar10.*smallnorb.*svhn"
    ):
        make("imagenet")  # type: ignore[operator]


@pytest.mark.parametrize("dataset", ["fashionmnist", "kmnist", "svhn"])
def test_sets_without_augmentation_are_scaled_only(dataset: str) -> None:
    side, channels = INPUT_SIZES[dataset], 1 if dataset != "svhn" else 3
    images = torch.randint(0, 256, (4, channels, side, side), dtype=torch.uint8)
    torch.testing.assert_close(train_transform(dataset)(images, _seeded(1)), preprocess(images))
    assert eval_transform(dataset) is preprocess


def test_cifar100_takes_cifar10s_augmentation() -> None:
    assert train_transform("cifar100") is train_transform("cifar10")
    assert input_size("cifar100") == 32 and input_size("kmnist") == 28


def test_margins_count_the_empty_rows_and_columns() -> None:
    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    images[0, 0, 5:10, 3:21] = 7
    margins = augment._margins(images.float())
    assert margins.tolist() == [[3.0, 7.0, 5.0, 18.0], [0.0, 0.0, 0.0, 0.0]]


def test_a_whole_pixel_shift_is_exact() -> None:
    images = _digits(4).float()
    shift = torch.tensor([[3, -2], [-9, 7], [0, 0], [10, -5]])  # up to each ring's margins
    no_squish = augment.Squish(width=torch.zeros(4, dtype=torch.long), offset=torch.zeros(4))
    theta = augment._shift_squish_theta(shift, no_squish, 28)
    out = augment._warp(images, theta, 28, padding="zeros")
    for i, (dx, dy) in enumerate(shift.tolist()):
        expected = images[i].roll((dy, dx), dims=(1, 2))  # the ring stays inside its margins
        torch.testing.assert_close(out[i], expected, atol=1e-3, rtol=0)


def test_squish_resizes_the_width_behind_the_left_padding() -> None:
    images = torch.full((1, 1, 28, 28), 255.0)
    squish = augment.Squish(width=torch.tensor([4]), offset=torch.tensor([3]))
    theta = augment._shift_squish_theta(torch.zeros(1, 2), squish, 28)
    out = augment._warp(images, theta, 28, padding="zeros")[0, 0]  # [28, 28]
    # 24 columns of image from column 3 on; zeros before and after (edges blend)
    assert (out[:, :3] < 128).all() and (out[:, 27:] < 128).all()
    torch.testing.assert_close(out[:, 4:26], torch.full((28, 22), 255.0))
    assert out.sum().item() == pytest.approx(255 * 28 * 24, rel=0.01)


def test_rotation_theta_turns_about_the_centre() -> None:
    images = _digits(2).float()
    images[:, :, 2:5, 20:26] = 255  # something off centre
    angle = torch.tensor([0.0, 180.0])
    out = augment._warp(images, augment._rotation_theta(angle), 28, padding="zeros")
    torch.testing.assert_close(out[0], images[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(out[1], images[1].flip(1, 2), atol=1e-3, rtol=0)


def test_mnist_transform_keeps_the_digit_in_the_frame() -> None:
    images = _digits(1).expand(512, -1, -1, -1)
    out = train_transform("mnist")(images, _seeded(0))
    mass = (out[:, 0] + 1).clamp(min=0)  # [B, H, W]
    ratio = mass.sum((1, 2)) / (images[:, 0].float() / 128).sum((1, 2))
    # the squish loses 1-7 of 28 columns (up to 25%), the erase up to 16 of the ring's 64
    # pixels; the frame loses nothing
    assert ratio.max() < 1.02 and ratio.min() > 0.5 and ratio.mean() > 0.8
    cols = torch.arange(28.0)
    centre_y = (mass.sum(2) * cols).sum(1) / mass.sum((1, 2))  # [B]
    # the 12x8 ring has 8 rows of margin above and below: shifted by whole rows
    assert centre_y.std() > 1.0 and centre_y.min() >= 13.5 - 8.5 and centre_y.max() <= 13.5 + 8.5


def test_empty_image_stays_black() -> None:
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    out = train_transform("mnist")(images, _seeded(0))
    assert torch.equal(out, torch.full_like(out, -1.0))


def test_erase_zeroes_the_4x4_square_at_each_corner() -> None:
    x = torch.full((3, 1, 28, 28), 255.0)
    corners = torch.tensor([[4, 4], [22, 22], [10, 17]])
    erased = augment._erase(x, corners)
    for i, (top, left) in enumerate(corners.tolist()):
        expected = torch.full((28, 28), 255.0)
        expected[top : top + 4, left : left + 4] = 0
        assert torch.equal(erased[i, 0], expected)


def test_erase_shows_as_minus_one_after_the_mnist_transform() -> None:
    images = torch.full((32, 1, 28, 28), 255, dtype=torch.uint8)
    out = train_transform("mnist")(images, _seeded(0))
    centre = out[:, 0, 10:18, 10:18]
    # the centre of a white frame stays white except where a 4x4 square was erased
    assert ((centre == -1).sum((1, 2)) <= 16).all()
    assert (out == -1).any()


def test_cifar_box_is_cropped_and_resized_to_the_whole_image() -> None:
    images = _images("cifar10", 3).float()
    box = augment.CropBox(
        top=torch.tensor([0, 8, 0]),
        left=torch.tensor([0, 4, 0]),
        height=torch.tensor([32, 16, 32]),
        width=torch.tensor([32, 16, 32]),
        flip=torch.tensor([False, False, True]),
    )
    out = augment._resize_boxes(images, box, 32)
    torch.testing.assert_close(out[0], images[0], atol=1e-3, rtol=0)
    crop = images[1:2, :, 8:24, 4:20]
    resized = torch.nn.functional.interpolate(crop, size=32, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[1:2], resized, atol=1e-3, rtol=0)
    torch.testing.assert_close(out[2], images[2].flip(2), atol=1e-3, rtol=0)


def test_cifar_uniform_colour_stays_uniform() -> None:
    images = torch.zeros(32, 3, 32, 32, dtype=torch.uint8)
    images[:, 0], images[:, 1], images[:, 2] = 200, 100, 50
    out = train_transform("cifar10")(images, _seeded(0))
    assert out.flatten(2).std(dim=2).max() < 1e-5
    assert out.mean((2, 3)).std(0).min() > 0.01, "the jitter should vary colours across images"


def test_cifar_colour_follows_each_images_order() -> None:
    """The batch path against Byerly's two orders applied image by image, per pixel."""
    images = _images("cifar10", 8)
    gen = _seeded(5)
    out = train_transform("cifar10")(images, gen)
    gen = _seeded(5)  # the same draws, in the transform's order
    box = augment.draw_crop_boxes(8, gen, 32)
    colour = augment.draw_colour(8, gen)
    x = augment._resize_boxes(images.float() / 256, box, 32)
    assert colour.contrast_first.any() and not colour.contrast_first.all()
    for i in range(8):
        img = x[i] + colour.brightness[i]  # [3, H, W]

        def contrast(img: torch.Tensor, i: int = i) -> torch.Tensor:
            mean = img.mean(dim=(1, 2), keepdim=True)
            return (img - mean) * colour.contrast[i] + mean

        def sat_hue(img: torch.Tensor, i: int = i) -> torch.Tensor:
            pixels = []
            for r, g, b in img.flatten(1).T.tolist():
                h, s, v = colorsys.rgb_to_hsv(r, g, b)
                s = min(max(s * colour.saturation[i].item(), 0.0), 1.0)
                pixels.append(colorsys.hsv_to_rgb((h + colour.hue[i].item()) % 1.0, s, v))
            return torch.tensor(pixels).T.reshape(img.shape)

        img = sat_hue(contrast(img)) if colour.contrast_first[i] else contrast(sat_hue(img))
        expected = (img.clamp(0, 1) - 0.5) * 2
        torch.testing.assert_close(out[i], expected, atol=1e-4, rtol=0)


def test_smallnorb_crop_gathers_windows() -> None:
    images = _images("smallnorb", 8)
    top = torch.tensor([0, 16, 3, 8, 0, 16, 5, 11])
    left = torch.tensor([0, 16, 9, 8, 16, 0, 2, 7])
    crops = augment._norb_crop(images, top, left, 32)
    for i in range(8):
        t, s = int(top[i]), int(left[i])
        assert torch.equal(crops[i], images[i, :, t : t + 32, s : s + 32])


def test_smallnorb_eval_is_the_centre_crop_in_byerlys_units() -> None:
    images = _images("smallnorb")
    # stored inverted (255 - x); Byerly's 1 - x / 256 is (stored + 1) / 256
    expected = preprocess(images[:, :, 8:40, 8:40]) + 2 / 256
    torch.testing.assert_close(eval_transform("smallnorb")(images), expected)


def test_smallnorb_brightness_is_additive_and_nothing_is_clipped() -> None:
    images = torch.full((4000, 1, 48, 48), 127, dtype=torch.uint8)  # 0.5 in Byerly's units
    out = train_transform("smallnorb")(images, _seeded(0))
    level = out.mean(dim=(1, 2, 3))  # [B]; contrast leaves a uniform image alone
    assert out.flatten(1).std(dim=1).max() < 1e-5
    # (0.5 + delta - 0.5) * 2 with delta ~ U(-0.25, 0.25): U(-0.5, 0.5)
    assert level.min() < -0.49 and level.max() > 0.49 and level.abs().max() <= 0.5
    assert level.mean().abs() < 0.02
    bright = torch.zeros(64, 1, 48, 48, dtype=torch.uint8)
    bright[:, :, ::2] = 255  # stripes: contrast > 1 pushes them past [-1, 1]
    out = train_transform("smallnorb")(bright, _seeded(0))
    assert out.max() > 1.0 and out.min() < -1.0


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
