"""Budget-matched baselines: for an experiment X, twins that train on as many images.

- ``X-uniform``: a constant fraction every epoch, ``evaluations(X) / (N * E)``, as a
  piecewise schedule with one breakpoint (same epochs, same selection as X).
- ``X-short``: all the data for ``round(evaluations(X) / N)`` epochs (at least 1), with the
  same per-epoch learning rate (lr x decay^t): the run simply stops earlier.

``N`` is the training-set size after ``train_subset``. Totals match X's within rounding:
``|uniform - X| <= E / 2`` (one rounding per epoch) and ``|short - X| <= N / 2``. A
strategy that trains on all the data past an annealing boundary (``loss_soft``) keeps
those epochs in the twin too; the constant fraction covers the others. Pure functions of
numbers and schedules: the grid (``orchestrator.grid``) names and expands the twins.
"""

from __future__ import annotations

from typing import Literal, get_args

from trainers.budget import first_annealed_epoch
from trainers.schedule import Breakpoint, Piecewise, Schedule, count_runs, round_half_up

__all__ = ["BASELINES", "BaselineKind", "planned_evaluations", "short_epochs",
           "uniform_schedule"]

BaselineKind = Literal["uniform", "short"]
"""A budget-matched twin of experiment X, named ``X-<kind>``: the one list of twin kinds."""
BASELINES: tuple[BaselineKind, ...] = get_args(BaselineKind)


def planned_evaluations(schedule: Schedule, selection: str, anneal: float, n: int,
                        epochs: int) -> int:
    """Training images of a run: the schedule's counts, all ``n`` in annealed epochs.

    Summed over the schedule's runs of equal counts (``count_runs``), never per epoch, so
    planning a run of 10^9 epochs takes as long as one of 300.
    """
    annealed = first_annealed_epoch(selection, anneal, epochs)
    total, start = 0, 0
    for count, length in count_runs(schedule, n, epochs):
        total += count * max(0, min(length, annealed - start))
        start += length
    return total + n * (epochs - annealed)


def uniform_schedule(total: int, n: int, epochs: int, selection: str, anneal: float
                     ) -> Schedule:
    """The constant-fraction schedule that trains on about ``total`` images in ``epochs``."""
    free = first_annealed_epoch(selection, anneal, epochs)  # epochs before annealing
    assert free, "epoch 0 is never annealed (anneal > 0)"
    left = total - (epochs - free) * n  # what the non-annealed epochs may use
    fraction = min(1.0, max(1.0 / n, left / (free * n)))
    return Piecewise(breakpoints=[Breakpoint(at=0.0, fraction=fraction)])


def short_epochs(total: int, n: int) -> int:
    """Full-data epochs that train on about ``total`` images: round(total / n), at least 1."""
    return max(1, round_half_up(total / n))
