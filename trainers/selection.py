"""The selection stage: which training samples an epoch trains on.

Every strategy has one signature: built once per run from the labels and the run seed,
then called with ``(epoch, count)`` it returns a 1-D int64 tensor of ``count`` distinct
training indices (unordered: the loop shuffles the order apart). All randomness comes
from generators derived from the run seed (``trainers.rng``).

- ``fixed`` (the paper's reading): one seeded permutation; epoch t trains on its first
  ``count`` entries, so subsets are nested and data once introduced stays.
- ``per_epoch``: a fresh random subset every epoch ("repeated random sampling").
- ``stratified``: like ``fixed`` but class-balanced: every prefix of its order holds each
  class in proportion to its share of the training set (within one sample).
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from trainers.errors import ConfigError
from trainers.rng import generator

__all__ = ["SELECTIONS", "Selector", "make_selector", "stratified_order"]


class Selector(Protocol):
    def __call__(self, epoch: int, count: int) -> torch.Tensor: ...


def _check_count(count: int, n: int) -> None:
    if not 1 <= count <= n:
        raise ValueError(f"count must be in [1, {n}], got {count=}")


def _fixed(labels: torch.Tensor, seed: int) -> Selector:
    n = labels.numel()
    order = torch.randperm(n, generator=generator(seed, "selection"))  # [N]

    def select(epoch: int, count: int) -> torch.Tensor:
        _check_count(count, n)
        return order[:count]

    return select


def _per_epoch(labels: torch.Tensor, seed: int) -> Selector:
    n = labels.numel()

    def select(epoch: int, count: int) -> torch.Tensor:
        _check_count(count, n)
        if count == n:
            return torch.arange(n)
        return torch.randperm(n, generator=generator(seed, "selection", epoch))[:count]

    return select


def stratified_order(labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A permutation whose every prefix is class-balanced.

    Each sample gets a random rank within its class; sorting by (rank + 0.5) / class size
    interleaves the classes so a prefix of length k holds about k * n_c / N of class c.
    """
    n = labels.numel()
    shuffled = torch.randperm(n, generator=gen)  # [N] random tie-breaking
    labels_s = labels[shuffled]
    # Rank of each (shuffled) sample within its class: stable sort by label, then offsets.
    by_class = torch.sort(labels_s, stable=True).indices  # [N]
    class_sizes = torch.bincount(labels_s)  # [K]
    starts = torch.cumsum(class_sizes, 0) - class_sizes  # [K]
    rank = torch.empty(n, dtype=torch.long)
    rank[by_class] = torch.arange(n) - starts[labels_s[by_class]]
    key = (rank.double() + 0.5) / class_sizes[labels_s].double()  # [N] in (0, 1)
    return shuffled[torch.sort(key, stable=True).indices]


def _stratified(labels: torch.Tensor, seed: int) -> Selector:
    n = labels.numel()
    order = stratified_order(labels, generator(seed, "selection"))

    def select(epoch: int, count: int) -> torch.Tensor:
        _check_count(count, n)
        return order[:count]

    return select


SELECTIONS: dict[str, Callable[[torch.Tensor, int], Selector]] = {
    "fixed": _fixed,
    "per_epoch": _per_epoch,
    "stratified": _stratified,
}


def make_selector(name: str, labels: torch.Tensor, seed: int) -> Selector:
    """Build the ``name`` strategy for a training set with these ``labels`` (CPU int64 [N])."""
    try:
        factory = SELECTIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown selection {name!r}; expected one of: {', '.join(SELECTIONS)}"
        ) from None
    return factory(labels.cpu(), seed)
