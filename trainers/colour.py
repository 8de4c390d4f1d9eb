"""Colour adjustments on whole float batches, as TensorFlow's ``tf.image.adjust_*``.

Byerly's CIFAR-10 and smallNORB augmentations (PAPER.md section 4) are written with
``tf.image.random_brightness / _contrast / _saturation / _hue``; these are the same
operations on a batch ``[B, C, H, W]`` of pixels in [0, 1] units, with one factor per
image (``[B]``). Like TensorFlow's, they do not clip: the caller clips where Byerly does.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["adjust_brightness", "adjust_contrast", "adjust_saturation_hue"]


def adjust_brightness(x: Tensor, delta: Tensor) -> Tensor:
    """x + delta per image (``tf.image.adjust_brightness``)."""
    return x + delta[:, None, None, None]


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """(x - m) * factor + m, m each channel's mean over the image (``adjust_contrast``)."""
    mean = x.mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
    return (x - mean) * factor[:, None, None, None] + mean


def adjust_saturation_hue(x: Tensor, saturation: Tensor, hue: Tensor) -> Tensor:
    """RGB ``[B, 3, H, W]``: saturation x factor (clipped to [0, 1]), hue + delta (mod 1).

    ``tf.image.adjust_saturation`` then ``adjust_hue``, in one trip through HSV (both
    leave value alone, and the saturation change leaves hue alone).
    """
    h, s, v = _rgb_to_hsv(x)  # each [B, H, W]
    s = (s * saturation[:, None, None]).clamp(0.0, 1.0)
    h = torch.remainder(h + hue[:, None, None], 1.0)
    return _hsv_to_rgb(h, s, v)


def _rgb_to_hsv(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """[B, 3, H, W] -> hue in [0, 1), saturation, value: each [B, H, W] (TF's formulas)."""
    r, g, b = x.unbind(dim=1)
    value = torch.maximum(torch.maximum(r, g), b)
    spread = value - torch.minimum(torch.minimum(r, g), b)
    saturation = torch.where(value > 0, spread / value.clamp(min=1e-12), 0.0)
    norm = 1.0 / (6.0 * spread.clamp(min=1e-12))
    hue = torch.where(
        r == value,
        norm * (g - b),
        torch.where(g == value, norm * (b - r) + 2.0 / 6.0, norm * (r - g) + 4.0 / 6.0),
    )
    hue = torch.where(spread > 0, torch.remainder(hue, 1.0), 0.0)
    return hue, saturation, value


def _hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """Hue in [0, 1), saturation, value [B, H, W] -> RGB [B, 3, H, W]."""
    # the standard form: channel n's offset k = (n + 6 h) mod 6, n = 5, 3, 1 for R, G, B
    n = torch.tensor([5.0, 3.0, 1.0], device=hue.device, dtype=hue.dtype)[None, :, None, None]
    k = torch.remainder(n + 6.0 * hue[:, None], 6.0)  # [B, 3, H, W]
    ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return value[:, None] - value[:, None] * saturation[:, None] * ramp
