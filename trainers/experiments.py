"""The E-numbered experiments of the paper (and our extensions), as a registry.

Benchmark and E1-E9 (Data Step, d outer, e inner) are the paper's; E10-E12 (Data
Increment s = 25/50/75%) and E13-E20 (Data Cut n = 2..9) are our numbering.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from trainers.errors import ConfigError
from trainers.schedule import Benchmark, DataCut, DataIncrement, DataStep, Schedule

__all__ = ["EXPERIMENTS", "canonical_name", "experiment", "experiment_names"]

_LEVELS = (0.25, 0.5, 0.75)


def _build() -> dict[str, Schedule]:
    table: dict[str, Schedule] = {"Benchmark": Benchmark()}
    number = 1
    for d in _LEVELS:
        for e in _LEVELS:
            table[f"E{number}"] = DataStep(d=d, e=e)
            number += 1
    for s in _LEVELS:
        table[f"E{number}"] = DataIncrement(s=s)
        number += 1
    for n in range(2, 10):
        table[f"E{number}"] = DataCut(n=n)
        number += 1
    return table


EXPERIMENTS: Mapping[str, Schedule] = MappingProxyType(_build())


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


def experiment(name: str) -> Schedule:
    """The schedule of a registered experiment (case-insensitive: ``e3``, ``benchmark``)."""
    return EXPERIMENTS[canonical_name(name)]
