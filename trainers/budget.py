"""The budget of an epoch: how many samples it trains on, given the schedule's count.

Torch-free, so that planning a grid (``orchestrator.baselines``) never imports torch. A
strategy in ``ANNEALED`` trains on all the data (weight 1) from the annealing boundary
``epoch / epochs >= anneal`` on (InfoBatch's annealing); the others on the schedule's
count every epoch. ``trainers.selection`` re-exports these names.
"""

from __future__ import annotations

from trainers.schedule import first_epoch_at

__all__ = ["ANNEALED", "annealing", "budget", "first_annealed_epoch", "planned_counts"]

ANNEALED = frozenset({"loss_soft"})
"""Strategies that train on all the data (weight 1) from the annealing boundary on."""


def annealing(name: str, anneal: float, epoch: int, epochs: int) -> bool:
    """Whether ``epoch`` (0-based) is past the annealing boundary ``epoch / epochs >= anneal``."""
    return name in ANNEALED and epoch / epochs >= anneal


def first_annealed_epoch(name: str, anneal: float, epochs: int) -> int:
    """The first epoch ``annealing`` holds for (``epochs`` if none): O(1) in the epochs."""
    return first_epoch_at(anneal, epochs) if name in ANNEALED else epochs


def budget(name: str, anneal: float, count: int, n: int, epoch: int, epochs: int) -> int:
    """Samples ``epoch`` trains on: the schedule's ``count``, or all ``n`` when annealing."""
    return n if annealing(name, anneal, epoch, epochs) else count


def planned_counts(name: str, anneal: float, counts: list[int], n: int) -> list[int]:
    """Per-epoch training samples of a run with the schedule's ``counts`` (one per epoch)."""
    epochs = len(counts)
    return [budget(name, anneal, c, n, t, epochs) for t, c in enumerate(counts)]
