"""A grid's ``search:`` block: which schedules a search may try, and how it searches.

Pure and Optuna-free: the block is validated like the rest of the grid (unknown keys are
errors), and a searcher's parameters become a schedule through ``schedule_from_params``,
the one place that knows which parameters each method takes. ``orchestrator.search``
samples those parameters with Optuna and runs the schedules.

A range is ``[low, high]``: continuous unless both ends are integers (``n`` is always an
integer range; the fractions d, e, s, d2, e2 always continuous, in (0, 1]). ``method`` and
``selection`` are lists of choices.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.validate import distinct, known_experiment
from trainers.config import SelectionName
from trainers.experiments import EXPERIMENTS
from trainers.schedule import DataCut, DataIncrement, DataStep, Piecewise2, Schedule

__all__ = ["METHOD_PARAMS", "Constraint", "Objective", "Search", "SearchSpace",
           "is_search_label", "schedule_from_params", "schedule_label", "search_defaults"]

Method = Literal["data_step", "data_increment", "data_cut", "piecewise2"]
METHOD_PARAMS: dict[str, tuple[str, ...]] = {
    "data_step": ("d", "e"),
    "data_increment": ("s",),
    "data_cut": ("n",),
    "piecewise2": ("d", "e", "d2", "e2"),
}
OBJECTIVES = {"max top1", "min evaluations"}
BENCHMARK = "Benchmark"
_LABEL = re.compile(r"S\d{3,}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Fraction = Annotated[float, Field(gt=0.0, le=1.0)]
FractionRange = Annotated[list[Fraction], Field(min_length=2, max_length=2)]
CountRange = Annotated[list[Annotated[int, Field(ge=1, le=1000)]],
                       Field(min_length=2, max_length=2)]


def _ordered(bounds: list[Any] | None) -> list[Any] | None:
    if bounds is not None and bounds[0] > bounds[1]:
        raise ValueError(f"a range is [low, high] with low <= high, got {bounds}")
    return bounds


class SearchSpace(_Strict):
    """The schedules a search may try: methods, their parameters' ranges, selections."""

    method: Annotated[list[Method], Field(min_length=1)]
    d: FractionRange | None = None
    e: FractionRange | None = None
    s: FractionRange | None = None
    d2: FractionRange | None = None
    e2: FractionRange | None = None
    n: CountRange | None = None
    selection: Annotated[list[SelectionName], Field(min_length=1)] | None = None
    """Selections to choose from (default: the grid's ``selection``)."""

    @field_validator("d", "e", "s", "d2", "e2", "n")
    @classmethod
    def _low_high(cls, bounds: list[Any] | None) -> list[Any] | None:
        return _ordered(bounds)

    @field_validator("method", "selection")
    @classmethod
    def _distinct(cls, choices: list[str] | None) -> list[str] | None:
        return None if choices is None else distinct(choices, "choices")

    @model_validator(mode="after")
    def _params_match_methods(self) -> SearchSpace:
        needed = {p for m in self.method for p in METHOD_PARAMS[m]}
        given = {p for p in ("d", "e", "s", "d2", "e2", "n") if getattr(self, p) is not None}
        for method in self.method:
            missing = [p for p in METHOD_PARAMS[method] if p not in given]
            if missing:
                raise ValueError(f"method {method} needs a range for {', '.join(missing)}")
        if given - needed:
            raise ValueError(f"{', '.join(sorted(given - needed))}: no method listed "
                             f"({', '.join(self.method)}) takes it")
        return self

    def bounds(self, param: str) -> tuple[float, float] | tuple[int, int]:
        low, high = getattr(self, param)
        return low, high


class Constraint(_Strict):
    """Keep only schedules equivalent to the Benchmark (TOST at ``margin`` points)."""

    equivalent_to: Literal["Benchmark"] = "Benchmark"
    margin: Annotated[float, Field(gt=0.0, le=100.0)] = 0.1
    """Accuracy points (0.1 = 0.1 percentage points)."""


Objective = Literal["max top1", "min evaluations"]


class Search(_Strict):
    """A grid's ``search:``: ``samples`` schedules from ``space``, each on every seed."""

    space: SearchSpace
    objectives: Annotated[list[Objective], Field(min_length=1, max_length=2)] = [
        "max top1", "min evaluations"]
    samples: Annotated[int, Field(ge=1, le=10_000)]
    seeds: (Annotated[int, Field(ge=1, le=1000)]
            | Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]) = 1
    """The grid's seeds (the grid's own ``seeds`` or ``--seeds``, when given, win)."""
    concurrent: Annotated[int, Field(ge=1, le=10_000)] = 1
    """Trials at once: ``concurrent // seeds`` schedules run together (at least one)."""
    algorithm: Literal["nsga2", "tpe", "random"] = "nsga2"
    constraint: Constraint | None = None
    include: list[str] = Field(default_factory=list)
    """E-numbered experiments run beside the search as fixed points (in ``experiments``)."""

    @field_validator("objectives")
    @classmethod
    def _distinct_objectives(cls, objectives: list[str]) -> list[str]:
        return distinct(objectives, "objectives")

    @field_validator("include")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        return [known_experiment(name) for name in names]

    def seed_count(self) -> int:
        return self.seeds if isinstance(self.seeds, int) else len(self.seeds)

    def batch(self) -> int:
        """Schedules run at once: all the seeds of each in one Tune run."""
        return max(1, self.concurrent // self.seed_count())

    def directions(self) -> list[Literal["maximize", "minimize"]]:
        """Optuna's study directions, in the objectives' order."""
        return ["maximize" if o.startswith("max") else "minimize" for o in self.objectives]


def search_defaults(raw: Any) -> Any:
    """A raw grid with a ``search:`` block, completed before it is validated: the grid's
    seeds and the search's agree (the grid's own, or ``--seeds``, win), and the Benchmark
    and the ``include``d experiments are among its experiments."""
    if not isinstance(raw, dict) or not isinstance(raw.get("search"), dict):
        return raw
    search = dict(raw["search"])
    raw = dict(raw)
    if "seeds" in raw:
        search["seeds"] = raw["seeds"]
    else:
        raw["seeds"] = search.get("seeds", 1)
    experiments = list(raw.get("experiments") or [])
    have = {str(e).lower() for e in experiments}
    for name in [BENCHMARK, *(search.get("include") or [])]:
        if isinstance(name, str) and name.lower() not in have:
            experiments.append(name)
            have.add(name.lower())
    raw["experiments"], raw["search"] = experiments, search
    return raw


def schedule_label(number: int) -> str:
    """The experiment label of the search's ``number``-th schedule: S000, S001, ..."""
    return f"S{number:03d}"


def is_search_label(name: str) -> bool:
    return bool(_LABEL.fullmatch(name)) and name not in EXPERIMENTS


def schedule_from_params(params: dict[str, Any]) -> tuple[Schedule, str | None]:
    """A searcher's parameters -> (schedule, selection or None for the grid's).

    ``piecewise2``'s two phase ends are taken in order (e <= e2), so every point of the
    space is a schedule.
    """
    method = params["method"]
    selection = params.get("selection")
    values = {p: params[p] for p in METHOD_PARAMS[method]}
    schedule: Schedule
    if method == "data_step":
        schedule = DataStep(**values)
    elif method == "data_increment":
        schedule = DataIncrement(**values)
    elif method == "data_cut":
        schedule = DataCut(n=int(values["n"]))
    else:
        e, e2 = sorted((values["e"], values["e2"]))
        schedule = Piecewise2(d=values["d"], e=e, d2=values["d2"], e2=e2)
    return schedule, selection
