"""A schedule in words for tables: 'd=25% e=75%', 's=50%', 'n=9', 'full data'."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from trainers.schedule import Schedule

__all__ = ["schedule_summary"]


@functools.cache
def _adapter() -> TypeAdapter[Schedule]:
    from pydantic import TypeAdapter

    from trainers.schedule import Schedule

    return TypeAdapter(Schedule)


def _pct(x: float) -> str:
    return f"{round(100 * x, 1):g}%"  # a searched fraction (0.116175) reads 11.6%


def schedule_summary(schedule_json: str) -> str:
    """'d=25% e=75%', 's=50%', 'n=9', 'full data', or piecewise 'from 0%: 25%, from 50%: 100%'."""
    from pydantic import ValidationError

    try:
        s = _adapter().validate_json(schedule_json)
    except (ValidationError, ValueError, TypeError):
        return str(schedule_json)
    if s.method == "data_step":
        return f"d={_pct(s.d)} e={_pct(s.e)}"
    if s.method == "piecewise2":
        return f"d={_pct(s.d)} to e={_pct(s.e)}, d2={_pct(s.d2)} to e2={_pct(s.e2)}"
    if s.method == "data_increment":
        return f"s={_pct(s.s)}"
    if s.method == "data_cut":
        return f"n={s.n}"
    if s.method == "piecewise":
        return ", ".join(f"from {_pct(b.at)}: {_pct(b.fraction)}" for b in s.breakpoints)
    return "full data"
