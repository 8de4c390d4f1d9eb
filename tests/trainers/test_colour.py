"""Colour adjustments on batches against their per-pixel definitions."""

from __future__ import annotations

import colorsys

import torch

from trainers.colour import adjust_brightness, adjust_contrast, adjust_saturation_hue


def _pixels(batch: int = 6, seed: int = 0) -> torch.Tensor:
    """Random RGB images in [0, 1], with some grey and some saturated pixels."""
    x = torch.rand(batch, 3, 5, 7, generator=torch.Generator().manual_seed(seed))
    x[:, :, 0, 0] = 0.5  # grey: hue undefined, saturation 0
    x[:, :, 0, 1] = torch.tensor([1.0, 0.0, 0.0])  # pure red
    x[:, :, 0, 2] = 0.0  # black
    return x


def test_saturation_and_hue_match_colorsys() -> None:
    x = _pixels()
    saturation = torch.tensor([0.5, 1.0, 1.5, 0.7, 1.3, 1.0])
    hue = torch.tensor([0.0, 0.2, -0.2, 0.1, -0.05, 0.0])
    out = adjust_saturation_hue(x, saturation, hue)
    expected = torch.empty_like(x)
    for b in range(x.shape[0]):
        for i in range(x.shape[2]):
            for j in range(x.shape[3]):
                h, s, v = colorsys.rgb_to_hsv(*x[b, :, i, j].tolist())
                s = min(max(s * saturation[b].item(), 0.0), 1.0)
                h = (h + hue[b].item()) % 1.0
                expected[b, :, i, j] = torch.tensor(colorsys.hsv_to_rgb(h, s, v))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_identity_factors_leave_the_image() -> None:
    x = _pixels()
    ones, zeros = torch.ones(6), torch.zeros(6)
    torch.testing.assert_close(adjust_saturation_hue(x, ones, zeros), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(adjust_contrast(x, ones), x)
    torch.testing.assert_close(adjust_brightness(x, zeros), x)


def test_contrast_scales_about_each_channels_mean() -> None:
    x = _pixels()
    factor = torch.linspace(0.2, 1.8, 6)
    out = adjust_contrast(x, factor)
    mean = x.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(out.mean(dim=(2, 3), keepdim=True), mean)
    torch.testing.assert_close(out - mean, (x - mean) * factor[:, None, None, None])


def test_brightness_adds_without_clipping() -> None:
    x = _pixels()
    delta = torch.tensor([0.25, -0.25, 0.1, 0.0, -0.1, 0.2])
    out = adjust_brightness(x, delta)
    torch.testing.assert_close(out, x + delta[:, None, None, None])
    assert out.max() > 1.0 and out.min() < 0.0
