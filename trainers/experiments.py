"""The E-numbered experiments of the paper (and our extensions), as a registry.

Benchmark and E1-E9 (Data Step, d outer, e inner) are the paper's; E10-E12 (Data
Increment s = 25/50/75%) and E13-E20 (Data Cut n = 2..9) are our numbering and our
reading of schedules the paper names without a formula. ``source_of`` says which is which,
in one place, for the listing, the report and the runs' tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from trainers.errors import ConfigError
from trainers.schedule import Benchmark, DataCut, DataIncrement, DataStep, Schedule

__all__ = [
    "EXPERIMENTS",
    "SOURCE_LEGEND",
    "SELECTION_NOTE",
    "Source",
    "canonical_name",
    "experiment",
    "experiment_names",
    "source_of",
]

Source = Literal["paper", "ours"]

SOURCE_LEGEND = (
    "source: paper = the paper's schedule (Benchmark, Data Step E1-E9); "
    "ours = our reading where the paper gives no formula (Data Increment E10-E12, "
    "Data Cut E13-E20, custom schedules); see docs/method.md"
)
SELECTION_NOTE = (
    "selection: 'fixed' (nested random subsets from one seeded permutation: data once "
    "introduced stays) is our reading of the paper's random exclusion, for every experiment"
)

_LEVELS = (0.25, 0.5, 0.75)


def _build() -> dict[str, tuple[Schedule, Source]]:
    table: dict[str, tuple[Schedule, Source]] = {"Benchmark": (Benchmark(), "paper")}
    number = 1
    for d in _LEVELS:
        for e in _LEVELS:
            table[f"E{number}"] = (DataStep(d=d, e=e), "paper")
            number += 1
    for s in _LEVELS:
        table[f"E{number}"] = (DataIncrement(s=s), "ours")
        number += 1
    for n in range(2, 10):
        table[f"E{number}"] = (DataCut(n=n), "ours")
        number += 1
    return table


_TABLE = _build()
EXPERIMENTS: Mapping[str, Schedule] = MappingProxyType(
    {name: schedule for name, (schedule, _) in _TABLE.items()}
)
_SOURCES: Mapping[str, Source] = {name.lower(): source for name, (_, source) in _TABLE.items()}


def experiment_names() -> list[str]:
    """Every registered experiment, Benchmark first then E1, E2, ... in number order."""
    return list(EXPERIMENTS)


def canonical_name(name: str) -> str:
    """A registered experiment's name, matched case-insensitively (``e3`` -> ``E3``)."""
    for key in EXPERIMENTS:
        if key.lower() == str(name).strip().lower():
            return key
    raise ConfigError(
        f"unknown experiment {name!r}; expected one of: {', '.join(EXPERIMENTS)}"
    )


def source_of(name: str) -> Source:
    """``"paper"`` for the Benchmark and E1-E9, ``"ours"`` for E10-E20 and any other name.

    Any name that is not a registered experiment is a custom schedule (or a registered one
    with another selection, or a budget-matched twin): ours.
    """
    return _SOURCES.get(name.strip().lower(), "ours")


def experiment(name: str) -> Schedule:
    """The schedule of a registered experiment (case-insensitive: ``e3``, ``benchmark``)."""
    return EXPERIMENTS[canonical_name(name)]
