"""Rows describing every registered experiment (``lessdata schedules``)."""

from __future__ import annotations

from typing import Any

from trainers.errors import ConfigError
from trainers.experiments import EXPERIMENTS
from trainers.schedule import evaluations, fractions

__all__ = ["schedule_rows"]


def schedule_rows(epochs: int, train_size: int) -> list[dict[str, Any]]:
    """Per experiment: method, parameters, per-epoch fractions and total evaluations."""
    if epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    if train_size < 1:
        raise ConfigError(f"--train-size must be >= 1, got {train_size}")
    benchmark = epochs * train_size
    rows = []
    for name, schedule in EXPERIMENTS.items():
        total = evaluations(schedule, train_size, epochs)
        rows.append(
            {
                "experiment": name,
                "method": schedule.method,
                "params": schedule.model_dump(exclude={"method"}),
                "fractions": fractions(schedule, epochs),
                "evaluations": total,
                "relative_evaluations": total / benchmark,
            }
        )
    return rows
