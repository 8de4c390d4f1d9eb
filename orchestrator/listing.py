"""Rows describing every registered experiment (``lessdata schedules``).

Totals come from ``count_runs``, so the listing takes about as long for 10^9 epochs as for
300; only the per-epoch fractions are listed per epoch, up to ``FRACTIONS_CAP`` of them.
"""

from __future__ import annotations

from typing import Any

from orchestrator.coincide import PlanEntry, find_identical
from trainers.errors import ConfigError
from trainers.experiments import EXPERIMENTS, source_of
from trainers.schedule import evaluations

__all__ = ["FRACTIONS_CAP", "schedule_rows"]

FRACTIONS_CAP = 1000  # per-epoch fractions listed per experiment; totals are always whole


def schedule_rows(epochs: int, train_size: int) -> list[dict[str, Any]]:
    """Per experiment: method, parameters, source, fractions, evaluations, identical twin.

    ``fractions`` holds the first ``min(epochs, FRACTIONS_CAP)`` epochs (``fractions_listed``
    says how many); ``same_as`` names the experiment with the same per-epoch counts at
    (``epochs``, ``train_size``), if there is one (all rows share one selection).
    """
    if epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    if train_size < 1:
        raise ConfigError(f"--train-size must be >= 1, got {train_size}")
    benchmark = epochs * train_size
    same_as = {
        other: group.representative
        for group in find_identical(
            {name: PlanEntry(s, "fixed", epochs) for name, s in EXPERIMENTS.items()},
            train_size,
        )
        for other in group.others
    }
    listed = min(epochs, FRACTIONS_CAP)
    rows = []
    for name, schedule in EXPERIMENTS.items():
        total = evaluations(schedule, train_size, epochs)
        rows.append(
            {
                "experiment": name,
                "method": schedule.method,
                "params": schedule.model_dump(exclude={"method"}),
                "source": source_of(name),
                "fractions": [schedule.fraction_at(t, epochs) for t in range(listed)],
                "fractions_listed": listed,
                "evaluations": total,
                "relative_evaluations": total / benchmark,
                "same_as": same_as.get(name),
            }
        )
    return rows
