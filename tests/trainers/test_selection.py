"""Selection strategies: sizes, nesting, seeding, class balance."""

from __future__ import annotations

import pytest
import torch

from trainers.errors import ConfigError
from trainers.rng import derive_seed, generator
from trainers.selection import SELECTIONS, make_selector, stratified_order

N = 1000
LABELS = torch.arange(N) % 7  # 7 unbalanced-ish classes
LABELS[:200] = 0


@pytest.mark.parametrize("name", list(SELECTIONS))
@pytest.mark.parametrize("count", [1, 250, 999, 1000])
def test_returns_count_distinct_valid_indices(name: str, count: int) -> None:
    idx = make_selector(name, LABELS, seed=0)(3, count)
    assert idx.dtype == torch.long and idx.shape == (count,)
    assert idx.unique().numel() == count
    assert int(idx.min()) >= 0 and int(idx.max()) < N


@pytest.mark.parametrize("name", ["fixed", "stratified"])
def test_nested_subsets(name: str) -> None:
    select = make_selector(name, LABELS, seed=1)
    previous: set[int] = set()
    for epoch, count in enumerate([100, 100, 400, 700, 1000]):
        current = set(select(epoch, count).tolist())
        assert previous <= current  # data once introduced stays
        previous = current


def test_per_epoch_redraws_each_epoch() -> None:
    select = make_selector("per_epoch", LABELS, seed=1)
    a, b = set(select(0, 300).tolist()), set(select(1, 300).tolist())
    assert a != b
    assert set(select(0, 300).tolist()) == a  # but the same epoch redraws the same subset


@pytest.mark.parametrize("name", list(SELECTIONS))
def test_same_seed_same_indices_other_seed_other(name: str) -> None:
    a = make_selector(name, LABELS, seed=5)(2, 300)
    b = make_selector(name, LABELS, seed=5)(2, 300)
    c = make_selector(name, LABELS, seed=6)(2, 300)
    assert torch.equal(a, b)
    assert not torch.equal(a.sort().values, c.sort().values)


def test_selection_ignores_global_rng() -> None:
    torch.manual_seed(0)
    a = make_selector("fixed", LABELS, seed=5)(0, 300)
    torch.manual_seed(123)
    torch.rand(10)
    b = make_selector("fixed", LABELS, seed=5)(0, 300)
    assert torch.equal(a, b)


def test_stratified_prefixes_are_class_balanced() -> None:
    order = stratified_order(LABELS, generator(0, "selection"))
    sizes = torch.bincount(LABELS).double()
    for k in (50, 123, 500, 777):
        got = torch.bincount(LABELS[order[:k]], minlength=7).double()
        expected = sizes * k / N
        assert torch.all((got - expected).abs() <= 1.0 + 1e-9), (k, got, expected)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown selection 'random'.*fixed, per_epoch"):
        make_selector("random", LABELS, 0)
    with pytest.raises(ValueError, match="count must be in"):
        make_selector("fixed", LABELS, 0)(0, 0)
    with pytest.raises(ValueError, match="count must be in"):
        make_selector("fixed", LABELS, 0)(0, N + 1)


def test_derived_seeds_differ_by_purpose_and_epoch() -> None:
    seeds = {derive_seed(0, p, e) for p in ("order", "augment", "selection") for e in (0, 1)}
    assert len(seeds) == 6
    with pytest.raises(ValueError, match="unknown RNG purpose"):
        derive_seed(0, "dropout")
