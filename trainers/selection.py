"""The selection stage: which training samples an epoch trains on, and with what loss weight.

Every strategy has one signature: built once per run from the labels and the run seed,
then called with ``(epoch, count, view)`` it returns a ``Selection``: ``count`` distinct
training indices (unordered: the loop shuffles the order apart) and, optionally, a loss
weight per index. ``view`` is the trainer's per-sample state (``SampleView``: last
training loss, last-visit correctness, forgetting events), recorded in the training pass
itself. All randomness comes from generators derived from the run seed (``trainers.rng``).

Random strategies (ignore the view):

- ``fixed`` (our reading of the paper's random selection; the default): one seeded
  permutation; epoch t trains on its first ``count`` entries, so subsets are nested and
  data once introduced stays.
- ``per_epoch``: a fresh random subset every epoch ("repeated random sampling").
- ``stratified``: like ``fixed`` but class-balanced: every prefix of its order holds each
  class in proportion to its share of the training set (within one sample).

Informed strategies (read the view; docs/method.md, "Informed selection"):

- ``loss_soft`` (after InfoBatch): every high-loss sample (last loss >= the mean of the
  known losses, or never seen) is kept; low-loss samples are pruned at random until the
  budget is met, the kept ones weighted 1 / (1 - prune probability). When the high-loss
  samples alone exceed the budget, a random subset of them is taken (weight 1). In the
  last epochs (``anneal``) the budget is the whole training set: see ``budget``.
- ``hardest`` / ``easiest``: the ``count`` highest / lowest last losses (ablations).
- ``forgetting``: the most forgetting events first (never-learned samples first of all).

Ties are broken at random from (seed, epoch). Never-seen samples have loss +inf.
Strategies that need extra forward passes to score samples report them in
``Selection.scoring_evaluations``; every strategy here reuses the training pass (0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from trainers.budget import ANNEALED, annealing, budget, first_annealed_epoch, planned_counts
from trainers.errors import ConfigError
from trainers.rng import generator

__all__ = [
    "ANNEALED",
    "SELECTIONS",
    "SampleView",
    "Selection",
    "Selector",
    "annealing",
    "budget",
    "first_annealed_epoch",
    "make_selector",
    "planned_counts",
    "soft_prune",
    "stratified_order",
]



@dataclass(frozen=True)
class SampleView:
    """Read-only per-sample state of the trainer (tensors on the trainer's device)."""

    loss: torch.Tensor
    """[N] float: last training loss; +inf for a sample never trained on."""
    correct: torch.Tensor
    """[N] bool: classified correctly at its last visit (False when never seen)."""
    forgettings: torch.Tensor
    """[N] int64: forgetting events (correct at the previous visit, wrong at this one)."""

    @classmethod
    def unseen(cls, n: int) -> SampleView:
        """The state before the first epoch."""
        return cls(
            loss=torch.full((n,), float("inf")),
            correct=torch.zeros(n, dtype=torch.bool),
            forgettings=torch.zeros(n, dtype=torch.long),
        )


@dataclass(frozen=True)
class Selection:
    """What one epoch trains on."""

    indices: torch.Tensor
    """[count] CPU int64, distinct."""
    weights: torch.Tensor | None = None
    """[count] CPU float32 loss weight of each index; None = all 1."""
    scoring_evaluations: int = 0
    """Forward passes the strategy made to score samples (counted apart from training)."""


Strategy = Callable[[int, int, SampleView], Selection]


class Selector(Protocol):
    """A strategy bound to one run (labels and seed)."""

    def select(self, epoch: int, count: int, view: SampleView) -> Selection: ...

    def __call__(self, epoch: int, count: int, view: SampleView | None = None) -> torch.Tensor: ...


@dataclass(frozen=True)
class _Bound:
    name: str
    n: int
    strategy: Strategy

    def select(self, epoch: int, count: int, view: SampleView) -> Selection:
        """The full answer: indices, loss weights and scoring passes."""
        _check_count(count, self.n)
        return self.strategy(epoch, count, view)

    def __call__(self, epoch: int, count: int, view: SampleView | None = None) -> torch.Tensor:
        """The indices only (no view: the state before the first epoch)."""
        return self.select(epoch, count, view or SampleView.unseen(self.n)).indices


def _check_count(count: int, n: int) -> None:
    if not 1 <= count <= n:
        raise ValueError(f"count must be in [1, {n}], got {count=}")


# -- random strategies ---------------------------------------------------------------------


def _fixed(labels: torch.Tensor, seed: int) -> Strategy:
    order = torch.randperm(labels.numel(), generator=generator(seed, "selection"))  # [N]
    return lambda epoch, count, view: Selection(order[:count])


def _per_epoch(labels: torch.Tensor, seed: int) -> Strategy:
    n = labels.numel()

    def select(epoch: int, count: int, view: SampleView) -> Selection:
        if count == n:
            return Selection(torch.arange(n))
        return Selection(torch.randperm(n, generator=generator(seed, "selection", epoch))[:count])

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


def _stratified(labels: torch.Tensor, seed: int) -> Strategy:
    order = stratified_order(labels, generator(seed, "selection"))
    return lambda epoch, count, view: Selection(order[:count])


# -- informed strategies -------------------------------------------------------------------


def _ranked(key: torch.Tensor, count: int, descending: bool, gen: torch.Generator) -> torch.Tensor:
    """The ``count`` indices with the largest (or smallest) ``key``; ties in random order.

    A seeded shuffle first, then a stable sort: equal keys keep their shuffled order.
    """
    shuffled = torch.randperm(key.numel(), generator=gen)  # [N]
    ranked = torch.sort(key[shuffled], descending=descending, stable=True).indices  # [N]
    return shuffled[ranked[:count]]


def _losses(view: SampleView) -> torch.Tensor:
    """[N] CPU float last losses (one host sync per epoch); a NaN (diverged) counts as unseen."""
    loss = view.loss.detach().float().cpu()
    return torch.where(torch.isnan(loss), float("inf"), loss)


def _by_loss(descending: bool) -> Callable[[torch.Tensor, int], Strategy]:
    def factory(labels: torch.Tensor, seed: int) -> Strategy:
        def select(epoch: int, count: int, view: SampleView) -> Selection:
            return Selection(_ranked(_losses(view), count, descending,
                                     generator(seed, "selection", epoch)))

        return select

    return factory


def soft_prune(loss: torch.Tensor, count: int, gen: torch.Generator) -> Selection:
    """InfoBatch-style soft pruning of ``loss`` [N] (CPU) down to ``count`` samples.

    High-loss samples (``loss >= mean of the finite losses``, never-seen ones at +inf
    included) are all kept; ``count - |high|`` low-loss samples are kept at random, each
    weighted ``1 / (1 - p) = |low| / kept`` (p: the prune probability), so the expected
    gradient over the low-loss samples is unchanged. When ``|high| >= count`` the budget
    wins: a random ``count`` of the high-loss samples, weight 1 (no low-loss sample).
    """
    n = loss.numel()
    known = loss[torch.isfinite(loss)]
    low_mask = loss < known.mean() if known.numel() else torch.zeros(n, dtype=torch.bool)
    shuffled = torch.randperm(n, generator=gen)  # [N] one draw serves both cases
    low = shuffled[low_mask[shuffled]]  # [m] in random order
    high = shuffled[~low_mask[shuffled]]  # [h] in random order
    if high.numel() >= count:
        return Selection(high[:count])
    kept = count - high.numel()
    weights = torch.cat([torch.ones(high.numel()),
                         torch.full((kept,), low.numel() / kept)])  # [count]
    return Selection(torch.cat([high, low[:kept]]), weights)


def _loss_soft(labels: torch.Tensor, seed: int) -> Strategy:
    def select(epoch: int, count: int, view: SampleView) -> Selection:
        return soft_prune(_losses(view), count, generator(seed, "selection", epoch))

    return select


def _forgetting(labels: torch.Tensor, seed: int) -> Strategy:
    def select(epoch: int, count: int, view: SampleView) -> Selection:
        events = view.forgettings.detach().cpu().double()  # [N]
        learned = view.correct.detach().cpu() | (events > 0)  # correct at some visit
        # Never-learned samples (never seen included) rank as forgotten infinitely often,
        # as in Toneva et al. (2019).
        key = torch.where(learned, events, torch.full_like(events, float("inf")))
        return Selection(_ranked(key, count, True, generator(seed, "selection", epoch)))

    return select


SELECTIONS: dict[str, Callable[[torch.Tensor, int], Strategy]] = {
    "fixed": _fixed,
    "per_epoch": _per_epoch,
    "stratified": _stratified,
    "loss_soft": _loss_soft,
    "hardest": _by_loss(descending=True),
    "easiest": _by_loss(descending=False),
    "forgetting": _forgetting,
}


def make_selector(name: str, labels: torch.Tensor, seed: int) -> Selector:
    """Build the ``name`` strategy for a training set with these ``labels`` (CPU int64 [N])."""
    try:
        factory = SELECTIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown selection {name!r}; expected one of: {', '.join(SELECTIONS)}"
        ) from None
    return _Bound(name, labels.numel(), factory(labels.cpu(), seed))
