"""Identical schedules in a report: the alias rows of a plan's coinciding experiments."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from orchestrator.aggregate import experiment_order

if TYPE_CHECKING:
    from orchestrator.plan import Plan

__all__ = ["with_aliases"]


def with_aliases(table: pd.DataFrame, plan: Plan | None) -> pd.DataFrame:
    """The table with a row per alias of the plan (``Plan.identical``): the representative's
    numbers under the alias's name, schedule and source, with ``same_as`` and ``note`` set.

    Aliases are added after the statistics: a copy is not a second test (Holm) nor a
    second point to plot. Without a plan the two columns are empty.
    """
    table = table.assign(same_as=None, note=None)
    if plan is None or table.empty:
        return table
    plans = plan.grid.plans()
    rows = table.to_dict("records")
    by_name = {row["experiment"]: row for row in rows}
    for alias, group in plan.aliases().items():
        if group.representative not in by_name:
            continue  # nothing of it finished yet
        own = plans[alias]
        note = next(n for n in group.notes() if n.startswith(f"{alias}:"))
        rows.append({**by_name[group.representative], "experiment": alias,
                     "schedule": own.schedule.model_dump_json(), "method": own.schedule.method,
                     "source": own.source, "same_as": group.representative, "note": note})
    rows.sort(key=lambda row: experiment_order(str(row["experiment"])))
    return pd.DataFrame(rows, columns=table.columns).astype(table.dtypes.to_dict())
