"""The HVC capsule CNN: parameter counts, shapes, seeded init, and that it learns."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from trainers.config import ModelConfig
from trainers.errors import ConfigError
from trainers.model import (
    CapsuleNet,
    build_model,
    conv_channels,
    count_parameters,
    head_positions,
)


def _small(**overrides: object) -> ModelConfig:
    """A quarter-width config, quick on CPU."""
    return ModelConfig.model_validate({"width": 0.25, **overrides})


def _blocks(model: CapsuleNet) -> list[Any]:
    return list(model.blocks)


def _heads(model: CapsuleNet) -> list[Any]:
    return list(model.heads)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, 917_026),
        ({"merge": "affine"}, 917_026),
        ({"merge": "sum"}, 917_024),
        ({"heads": 3}, 1_513_686),
        ({"heads": 3, "merge": "affine"}, 1_513_686),
        ({"heads": 3, "merge": "sum"}, 1_513_680),
    ],
)
def test_parameter_counts_on_mnist(overrides: dict[str, object], expected: int) -> None:
    model = CapsuleNet(ModelConfig.model_validate(overrides), 1, 28, 10)
    assert count_parameters(model) == expected


def test_count_parameters_skips_frozen_and_buffers() -> None:
    model = CapsuleNet(ModelConfig(), 1, 28, 10)
    _heads(model)[0].weight.requires_grad_(False)
    assert count_parameters(model) == 917_026 - 160_000


@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize(
    ("in_channels", "size", "classes"),
    [(1, 28, 10), (3, 32, 10), (1, 32, 5)],
    ids=["mnist", "cifar10", "smallnorb"],
)
def test_output_shape(heads: int, in_channels: int, size: int, classes: int) -> None:
    model = build_model(_small(heads=heads), in_channels, size, classes, seed=0)
    x = torch.rand(3, in_channels, size, size) * 2 - 1
    logits = model(x)
    assert logits.shape == (3, classes)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    model.eval()
    assert model(x).shape == (3, classes)


def test_full_width_forward_on_cifar_shape() -> None:
    model = build_model(ModelConfig(heads=3), 3, 32, 10, seed=0)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_channels_follow_width() -> None:
    assert conv_channels(ModelConfig()) == [32, 48, 64, 80, 96, 112, 128, 144, 160]
    assert conv_channels(ModelConfig(width=0.5)) == [16, 24, 32, 40, 48, 56, 64, 72, 80]
    assert conv_channels(ModelConfig(width=0.001)) == [1] * 9
    assert conv_channels(ModelConfig(convs=3, width=2.0)) == [64, 96, 128]
    model = CapsuleNet(ModelConfig(width=0.5), 1, 28, 10)
    assert [b.conv.out_channels for b in _blocks(model)] == conv_channels(ModelConfig(width=0.5))
    assert count_parameters(model) < count_parameters(CapsuleNet(ModelConfig(), 1, 28, 10))


def test_class_capsules_are_the_elementwise_weighted_sum() -> None:
    model = build_model(_small(), 1, 28, 10, seed=0)
    head = _heads(model)[0]
    x = torch.rand(4, 40, 10, 10)  # [B, D, H, W]
    caps = x.flatten(2).transpose(1, 2)  # [B, N, D]
    u = torch.einsum("bnd,knd->bkd", caps, head.weight)
    u = torch.relu(
        torch.nn.functional.batch_norm(u.transpose(1, 2), None, None, training=True, eps=1e-3)
    )
    torch.testing.assert_close(head(x), torch.linalg.vector_norm(u.transpose(1, 2), dim=-1))


def test_head_positions() -> None:
    assert head_positions(ModelConfig()) == [9]
    assert head_positions(ModelConfig(heads=3)) == [3, 6, 9]
    assert head_positions(ModelConfig(heads=3, convs=6)) == [2, 4, 6]
    assert head_positions(ModelConfig(heads=1, convs=3)) == [3]


def test_head_capsule_shapes_for_three_heads() -> None:
    model = CapsuleNet(ModelConfig(heads=3), 1, 28, 10)
    # maps after convs 3, 6, 9 on 28x28: 22, 16, 10; capsule dims 64, 112, 160
    assert [tuple(h.weight.shape) for h in _heads(model)] == [
        (10, 484, 64),
        (10, 256, 112),
        (10, 100, 160),
    ]


def test_input_too_small_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"input_size=18.*need input_size >= 19"):
        CapsuleNet(ModelConfig(), 1, 18, 10)
    assert build_model(_small(), 1, 19, 10, seed=0)(torch.zeros(2, 1, 19, 19)).shape
    assert CapsuleNet(ModelConfig(convs=3), 1, 7, 10)


@pytest.mark.parametrize(("in_channels", "classes"), [(0, 10), (1, 0)])
def test_bad_channels_or_classes_are_config_errors(in_channels: int, classes: int) -> None:
    with pytest.raises(ConfigError):
        CapsuleNet(ModelConfig(), in_channels, 28, classes)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_gives_identical_weights_regardless_of_global_rng() -> None:
    config = _small(heads=3)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        first = _weights(build_model(config, 1, 28, 10, seed=7))
        torch.manual_seed(2)
        second = _weights(build_model(config, 1, 28, 10, seed=7))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_other_seed_gives_different_weights() -> None:
    config = _small()
    first = build_model(config, 1, 28, 10, seed=0)
    second = build_model(config, 1, 28, 10, seed=1)
    assert not torch.equal(_blocks(first)[0].conv.weight, _blocks(second)[0].conv.weight)
    assert not torch.equal(_heads(first)[0].weight, _heads(second)[0].weight)


def test_init_values() -> None:
    model = build_model(ModelConfig(heads=3, init_std=0.05), 1, 28, 10, seed=0)
    weights = torch.cat(
        [b.conv.weight.flatten() for b in _blocks(model)]
        + [h.weight.flatten() for h in _heads(model)]
    )
    assert weights.mean().abs() < 0.001
    assert weights.std().item() == pytest.approx(0.05, rel=0.01)
    assert all(not b.shift.any() for b in _blocks(model))
    assert all(not h.shift.any() for h in _heads(model))
    assert model.branch_weight is not None and model.branch_shift is not None
    assert torch.equal(model.branch_weight, torch.ones(3))
    assert torch.equal(model.branch_shift, torch.zeros(3))
    assert model.logit_norm is not None
    assert torch.equal(model.logit_norm.running_mean, torch.zeros(3))
    assert torch.equal(model.logit_norm.running_var, torch.ones(3))


def test_affine_merge_starts_as_a_plain_sum() -> None:
    config = _small(heads=3, merge="sum")
    model = build_model(config, 1, 28, 10, seed=0)
    assert model.branch_weight is None and model.logit_norm is None
    affine = build_model(config.model_copy(update={"merge": "affine"}), 1, 28, 10, seed=0)
    assert affine.logit_norm is None
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    # merge weights start at 1 and shifts at 0, so both give the same logits
    torch.testing.assert_close(model(x), affine(x))


def _raw_norms(model: CapsuleNet, config: ModelConfig, x: torch.Tensor) -> torch.Tensor:
    """The capsule norms [B, heads, K] of ``model``'s branches, before the merge."""
    raw = CapsuleNet(config.model_copy(update={"merge": "sum"}), 1, 28, 10)
    raw.load_state_dict(model.state_dict(), strict=False)  # all but the merge's own state
    raw.train(model.training)
    return raw.branch_logits(x)


@pytest.mark.parametrize("heads", [1, 3])
def test_train_mode_normalises_each_branch_over_batch_and_classes(heads: int) -> None:
    config = _small(heads=heads)
    model = build_model(config, 1, 28, 10, seed=0)
    assert model.branch_weight is not None and model.branch_shift is not None
    with torch.no_grad():
        model.branch_shift.copy_(torch.tensor([0.3, -0.2, 0.5][:heads]))
        model.branch_weight.copy_(torch.tensor([2.0, 0.5, 1.0][:heads]))
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    logits = model.branch_logits(x)  # [B, heads, K]
    assert logits.shape == (32, heads, 10)
    # per branch, over batch x classes: mean = the branch's shift, variance ~1
    # (the branch weight is normalised away; eps = 1e-3 takes a little off the variance)
    mean = logits.mean(dim=(0, 2))
    var = logits.var(dim=(0, 2), unbiased=False)
    torch.testing.assert_close(mean, model.branch_shift.detach(), atol=1e-5, rtol=0)
    assert ((var > 0.9) & (var <= 1.0 + 1e-5)).all(), var
    # ... and it is exactly the shift-only batch norm of weight x capsule norm
    raw = _raw_norms(model, config, x) * model.branch_weight[:, None]
    expected = F.batch_norm(raw, None, None, training=True, eps=1e-3)
    torch.testing.assert_close(logits, expected + model.branch_shift[:, None])
    torch.testing.assert_close(model(x), logits.sum(dim=1))


@pytest.mark.parametrize("heads", [1, 3])
def test_eval_mode_uses_the_running_statistics(heads: int) -> None:
    config = _small(heads=heads, bn_momentum=0.5)
    model = build_model(config, 1, 28, 10, seed=0)
    norm = model.logit_norm
    assert norm is not None and norm.momentum == 0.5
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    raw = _raw_norms(model, config, x)  # the train-mode capsule norms: [B, heads, K]
    model(x)  # one training step of the running statistics, momentum 0.5, from (0, 1)
    torch.testing.assert_close(norm.running_mean, 0.5 * raw.mean(dim=(0, 2)))
    torch.testing.assert_close(norm.running_var, 0.5 + 0.5 * raw.var(dim=(0, 2)))
    model.eval()
    logits = model.branch_logits(x)
    raw_eval = _raw_norms(model, config, x)
    expected = (raw_eval - norm.running_mean[:, None]) / (norm.running_var[:, None] + 1e-3).sqrt()
    torch.testing.assert_close(logits, expected)
    # running statistics: an image's logits do not depend on the rest of its batch
    torch.testing.assert_close(model(x[:3]), model(x)[:3])


def test_batch_norm_settings_follow_config() -> None:
    model = CapsuleNet(ModelConfig(heads=3, bn_momentum=0.01, bn_eps=1e-5), 1, 28, 10)
    assert model.logit_norm is not None
    norms = [b.norm for b in _blocks(model)] + [h.norm for h in _heads(model)]
    norms.append(model.logit_norm)
    assert all(n.momentum == 0.01 and n.eps == 1e-5 and not n.affine for n in norms)


@pytest.mark.parametrize("heads", [1, 3])
def test_a_few_adam_steps_reduce_the_loss(heads: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 28, 28, generator=gen) * 2 - 1
    y = torch.arange(8) % 4
    model = build_model(_small(heads=heads), 1, 28, 4, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
