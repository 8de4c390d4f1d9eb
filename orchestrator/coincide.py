"""Identical schedules: experiments of one grid that would train exactly the same way.

Two experiments whose per-epoch sample counts, selection, epochs and recipe agree train
identically for a given seed (every generator is derived from the seed, the purpose and
the epoch, never from the experiment's name), so one trial per seed serves both. Under
our readings E13 (Data Cut n = 2) is E5 (Data Step 50%, 50%) at every E >= 2, and at
small E more experiments coincide.

Pure: no MLflow, no Ray, no torch. Runs on the driver, before anything is planned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from trainers.experiments import EXPERIMENTS, source_of
from trainers.schedule import Schedule, count_runs

__all__ = ["Coincidence", "PlanEntry", "canonical_order", "find_identical", "summary_line"]


@dataclass(frozen=True)
class PlanEntry:
    """What one experiment of a grid trains: compared field by field with the others.

    ``recipe`` is a fingerprint of everything else the trial's training depends on
    (model, optimiser, augmentation, data subset, ``anneal`` ...): the planner's to define.
    """

    schedule: Schedule
    selection: str
    epochs: int
    recipe: str = ""


@dataclass(frozen=True)
class Coincidence:
    """Experiments that train identically: ``representative`` runs, ``others`` reuse it."""

    representative: str
    others: tuple[str, ...]
    epochs: int

    @property
    def names(self) -> tuple[str, ...]:
        return (self.representative, *self.others)

    def notes(self) -> list[str]:
        """One line per other name, e.g. ``E13: same schedule as E5 at E = 300``."""
        return [f"{name}: same schedule as {self.representative} at E = {self.epochs}"
                for name in self.others]


def canonical_order(name: str) -> tuple[bool, float, str]:
    """Sort key: the paper's experiments first, then the lowest E-number, then the name."""
    registered = [key.lower() for key in EXPERIMENTS]
    lowered = name.lower()
    position = registered.index(lowered) if lowered in registered else math.inf
    return (source_of(name) != "paper", position, name)


def find_identical(entries: Mapping[str, PlanEntry], n: int) -> list[Coincidence]:
    """The groups of ``entries`` (name -> what it trains) that train identically on ``n``.

    Each group has two names or more; its representative is the first in
    ``canonical_order``. Groups are listed by representative, in the same order.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n=}")
    groups: dict[tuple[object, ...], list[str]] = {}
    for name, entry in entries.items():
        key = (tuple(count_runs(entry.schedule, n, entry.epochs)), entry.selection,
               entry.epochs, entry.recipe)
        groups.setdefault(key, []).append(name)
    found = []
    for names in groups.values():
        if len(names) > 1:
            first, *others = sorted(names, key=canonical_order)
            found.append(Coincidence(first, tuple(others), entries[first].epochs))
    return sorted(found, key=lambda c: canonical_order(c.representative))


def summary_line(coincidences: list[Coincidence]) -> str:
    """One line for ``submit``: which names share a trial, or ``""`` when none do."""
    if not coincidences:
        return ""
    pairs = "; ".join(note for c in coincidences for note in c.notes())
    return f"identical schedules, trained once and reported under every name: {pairs}"
