"""A search's answer from the experiment table: its points, their front, the cheapest that
holds the constraint. Pure: reads ``aggregate.experiment_table`` rows, on the driver.

A point is one schedule: its evaluations over the Benchmark's (scoring included) and its
best top-1, mean ± sample std over seeds. The front is the points no other point beats
(``aggregate.pareto_mask``: no more evaluations, no less accuracy, one strictly), among
the search's schedules only; the Benchmark and any ``include``d experiments are fixed
points drawn beside them. ``best_constrained`` is the cheapest schedule whose accuracy is
equivalent to the Benchmark's (TOST at the margin, paired by seed: 3 seeds at least).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from orchestrator.aggregate import pareto_mask
from orchestrator.schedule_text import schedule_summary
from orchestrator.search_space import is_search_label

__all__ = ["SearchPoint", "best_constrained", "fixed_points", "front", "search_points"]


@dataclass(frozen=True)
class SearchPoint:
    """One schedule of a search (or a fixed point) as the report shows it."""

    experiment: str
    schedule: str
    """In words: method, parameters, selection."""
    evaluation_ratio: float | None
    top1_mean: float
    top1_std: float | None
    n: int
    equivalent: bool | None
    """TOST vs the Benchmark at the margin (None: fewer than 3 seeds, or no test)."""
    tost_p: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _words(row: dict[str, Any], selection: str | None) -> str:
    summary = schedule_summary(str(row["schedule"]))
    text = summary if row["method"] == "benchmark" else f"{row['method']} {summary}"
    return f"{text}, {selection}" if selection else text


def _point(row: dict[str, Any], selection: str | None) -> SearchPoint:
    equivalent = row.get("equivalent")
    return SearchPoint(
        experiment=str(row["experiment"]), schedule=_words(row, selection),
        evaluation_ratio=_num(row.get("evaluation_ratio")),
        top1_mean=float(row["top1_mean"]), top1_std=_num(row.get("top1_std")),
        n=int(row["n"]),
        equivalent=None if equivalent is None or equivalent is pd.NA else bool(equivalent),
        tost_p=_num(row.get("tost_p")))


def _selections(trials: pd.DataFrame) -> dict[str, str]:
    if trials.empty:
        return {}
    return {str(k): str(v) for k, v in trials.groupby("experiment")["selection"].first().items()}


def search_points(table: pd.DataFrame, trials: pd.DataFrame) -> list[SearchPoint]:
    """The search's schedules (S000, S001 ...), in the order they were asked."""
    selections = _selections(trials)
    rows = [r for r in table.to_dict("records") if is_search_label(str(r["experiment"]))]
    rows.sort(key=lambda r: int(str(r["experiment"])[1:]))
    return [_point(r, selections.get(str(r["experiment"]))) for r in rows]


def fixed_points(table: pd.DataFrame, trials: pd.DataFrame) -> list[SearchPoint]:
    """The grid's own experiments (the Benchmark, ``include``d E-numbers)."""
    selections = _selections(trials)
    return [_point(r, selections.get(str(r["experiment"])))
            for r in table.to_dict("records") if not is_search_label(str(r["experiment"]))]


def front(points: list[SearchPoint]) -> list[SearchPoint]:
    """The non-dominated points, cheapest first."""
    cost = [p.evaluation_ratio if p.evaluation_ratio is not None else math.nan
            for p in points]
    mask = pareto_mask(cost, [p.top1_mean for p in points])
    kept = [p for p, keep in zip(points, mask, strict=True) if keep]
    return sorted(kept, key=lambda p: (p.evaluation_ratio or 0.0, -p.top1_mean))


def best_constrained(points: list[SearchPoint]) -> SearchPoint | None:
    """The cheapest point equivalent to the Benchmark (more accurate on a tie); None if none."""
    held = [p for p in points if p.equivalent and p.evaluation_ratio is not None]
    return min(held, key=lambda p: (p.evaluation_ratio, -p.top1_mean), default=None)
