"""The homogeneous-vector-capsule CNN of Byerly et al. (PAPER.md section 3).

A stack of unpadded 3x3 convolutions, each followed by a shift-only batch norm and
ReLU, then one or three capsule heads. A head turns every spatial position of a
feature map into a primary capsule (its channel vector), forms one class capsule per
class as the element-wise weighted sum of the primary capsules (homogeneous vector
capsules: no routing, no matrix multiply), normalises it and takes its L2 norm as
the branch's class logit. The branch logits, stacked to [B, classes, heads], are
multiplied by learnable branch weights, batch-normalised per branch (statistics over
batch and classes, shift only) and summed over branches: Byerly's merge, with one head
as with three (``ModelConfig.merge``; the other merges are kept as options).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainers.config import ModelConfig
from trainers.errors import ConfigError
from trainers.rng import generator

__all__ = ["CapsuleNet", "build_capsule", "build_model", "conv_channels", "count_parameters",
           "head_positions"]

_BASE_CHANNELS = 32
_CHANNEL_STEP = 16


def conv_channels(config: ModelConfig) -> list[int]:
    """Output channels of each conv: 32, 48, 64, ... times ``config.width`` (at least 1)."""
    return [
        max(1, round((_BASE_CHANNELS + _CHANNEL_STEP * i) * config.width))
        for i in range(config.convs)
    ]


def head_positions(config: ModelConfig) -> list[int]:
    """1-based indices of the convs followed by a capsule head (e.g. [9] or [3, 6, 9])."""
    if config.heads == 1:
        return [config.convs]
    step = config.convs // 3
    return [step, 2 * step, 3 * step]


class _ConvBlock(nn.Module):
    """3x3 conv (stride 1, no padding, no bias) -> batch norm with a shift only -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, bias=False)
        self.norm = nn.BatchNorm2d(
            out_channels, eps=config.bn_eps, momentum=config.bn_momentum, affine=False
        )
        self.shift = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        # x: [B, C_in, H, W] -> [B, C_out, H - 2, W - 2]
        x = self.norm(self.conv(x))
        return torch.relu(x + self.shift[:, None, None])


class _CapsuleHead(nn.Module):
    """Primary capsules (one per position) -> HVC class capsules -> shift-only BN -> norms."""

    def __init__(self, n_caps: int, dim: int, num_classes: int, config: ModelConfig) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, n_caps, dim))  # [K, N, D]
        self.norm = nn.BatchNorm1d(
            dim, eps=config.bn_eps, momentum=config.bn_momentum, affine=False
        )
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        # x: [B, D, H, W] -> primary capsules, dim-major: [D, B, N = H * W]
        caps = x.flatten(2).transpose(0, 1).contiguous()
        # class capsules u[b, k, d] = sum_n caps[b, n, d] * W[k, n, d], i.e.
        # einsum("bnd,knd->bkd"): one [B, N] @ [N, K] per dim d. This explicit bmm on
        # contiguous operands ran the forward 2-3x faster than the einsum on CPU (B=120).
        weight = self.weight.permute(2, 1, 0).contiguous()  # [D, N, K]
        u = torch.bmm(caps, weight).permute(1, 2, 0)  # [D, B, K] -> [B, K, D]
        # BN per capsule dimension d, over batch and classes: BatchNorm1d wants [B, D, K]
        u = self.norm(u.transpose(1, 2)).transpose(1, 2)
        u = torch.relu(u + self.shift)  # [B, K, D]
        return torch.linalg.vector_norm(u, dim=-1)  # [B, K]


class CapsuleNet(nn.Module):
    """Byerly's CNN with homogeneous vector capsule heads.

    Input: float ``[B, in_channels, input_size, input_size]`` scaled to [-1, 1];
    output: logits ``[B, num_classes]``, the sum over branches of ``branch_logits``.
    """

    def __init__(
        self, config: ModelConfig, in_channels: int, input_size: int, num_classes: int
    ) -> None:
        super().__init__()
        _validate(config, in_channels, input_size, num_classes)
        channels = conv_channels(config)
        positions = head_positions(config)
        self.blocks = nn.ModuleList(
            _ConvBlock(c_in, c_out, config)
            for c_in, c_out in zip([in_channels, *channels[:-1]], channels, strict=True)
        )
        self.head_after = tuple(p - 1 for p in positions)  # 0-based block indices
        self.heads = nn.ModuleList(
            _CapsuleHead((input_size - 2 * p) ** 2, channels[p - 1], num_classes, config)
            for p in positions
        )
        self.merge = config.merge
        self.branch_weight: nn.Parameter | None = None
        self.branch_shift: nn.Parameter | None = None
        self.logit_norm: nn.BatchNorm1d | None = None
        if config.merge != "sum":
            self.branch_weight = nn.Parameter(torch.ones(len(positions)))
            self.branch_shift = nn.Parameter(torch.zeros(len(positions)))
        if config.merge == "norm":
            self.logit_norm = nn.BatchNorm1d(
                len(positions), eps=config.bn_eps, momentum=config.bn_momentum, affine=False
            )

    def branch_logits(self, x: Tensor) -> Tensor:
        """The merged branch logits before their sum: ``[B, n_heads, K]``."""
        # x: [B, C, S, S] -> capsule norms of each branch, stacked: [B, n_heads, K]
        norms: list[Tensor] = []
        heads = iter(self.heads)
        for i, block in enumerate(self.blocks):
            x = block(x)  # [B, C_i, S - 2(i+1), S - 2(i+1)]
            if i in self.head_after:
                norms.append(next(heads)(x))
        stacked = torch.stack(norms, dim=1)  # [B, n_heads, K]
        if self.branch_weight is None or self.branch_shift is None:
            return stacked
        stacked = stacked * self.branch_weight[:, None]
        if self.logit_norm is not None:
            # BatchNorm1d on [B, C = n_heads, L = K]: statistics per branch over B and K
            stacked = self.logit_norm(stacked)
        return stacked + self.branch_shift[:, None]  # [B, n_heads, K]

    def forward(self, x: Tensor) -> Tensor:
        return self.branch_logits(x).sum(dim=1)  # [B, K]


def _validate(config: ModelConfig, in_channels: int, input_size: int, num_classes: int) -> None:
    """Raise ``ConfigError`` for shapes the conv stack cannot take."""
    if in_channels < 1:
        raise ConfigError(f"in_channels must be >= 1, got {in_channels=}")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes=}")
    min_size = 2 * config.convs + 1
    if input_size < min_size:
        raise ConfigError(
            f"{input_size=} is too small for {config.convs} unpadded 3x3 convs "
            f"(each removes 2 pixels); need input_size >= {min_size}"
        )


@torch.no_grad()
def _init_parameters(model: CapsuleNet, std: float, gen: torch.Generator) -> None:
    """Weights ~ N(0, std) from ``gen`` in a fixed order; shifts 0; branch weights 1."""
    for block in model.blocks:
        assert isinstance(block, _ConvBlock)
        block.conv.weight.normal_(0.0, std, generator=gen)
        block.shift.zero_()
    for head in model.heads:
        assert isinstance(head, _CapsuleHead)
        head.weight.normal_(0.0, std, generator=gen)
        head.shift.zero_()
    if model.branch_weight is not None and model.branch_shift is not None:
        model.branch_weight.fill_(1.0)
        model.branch_shift.zero_()


def build_model(
    config: ModelConfig, in_channels: int, input_size: int, num_classes: int, seed: int
) -> CapsuleNet:
    """A freshly initialised ``CapsuleNet`` on the CPU; same seed -> identical weights.

    Initial weights come from ``trainers.rng.generator(seed, "init")`` only, never from
    torch's global RNG.
    """
    model = CapsuleNet(config, in_channels, input_size, num_classes)
    _init_parameters(model, config.init_std, generator(seed, "init"))
    return model


def build_capsule(
    num_classes: int, in_channels: int, image_size: int, seed: int, **settings: object
) -> CapsuleNet:
    """The capsule CNN as the model registry's factory (``trainers.factories.CAPSULE``):
    ``settings`` are ``ModelConfig``'s fields."""
    config = ModelConfig.model_validate(settings)
    return build_model(config, in_channels, image_size, num_classes, seed)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
