"""Data schedules: which fraction of the training set each epoch trains on.

Every schedule is a pure, torch-free function of ``(epoch, epochs)`` (epoch 0-based) that
returns a fraction in (0, 1]. The typed ``*Schedule`` models are the validated config
form of each; ``fraction_at`` dispatches on them. ``count_for`` is the one rule that turns a
fraction into a sample count, and ``evaluations`` sums it over a run.

Readings (see docs/method.md): Data Step and the Benchmark are the paper's; the Data
Increment ramp, the Data Cut staircase, the piecewise schedule and the two-phase
``piecewise2`` (two Data Steps back to back, for schedule search) are ours
(``trainers.experiments.source_of`` says which experiment is which).

``count_runs`` gives a run's per-epoch counts as runs of equal counts, in time that grows
with the number of runs, not with the epochs: ``evaluations`` and the identical-schedule
check use it, so a run of 10^9 epochs is summed as fast as one of 300.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction as _Ratio
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Benchmark",
    "DataCut",
    "DataIncrement",
    "DataStep",
    "Piecewise",
    "Piecewise2",
    "Schedule",
    "count_for",
    "count_runs",
    "counts",
    "cut_fraction",
    "evaluations",
    "first_epoch_at",
    "fraction_at",
    "fractions",
    "increment_fraction",
    "round_half_up",
    "step_fraction",
]

Fraction = Annotated[float, Field(gt=0.0, le=1.0)]


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (never banker's rounding)."""
    # The small epsilon absorbs float error such as 60000 * (1/3) = 19999.999...
    return math.floor(x + 0.5 + 1e-9)


def _check(epoch: int, epochs: int) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs=}")
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch must be in [0, {epochs}), got {epoch=}")


def step_fraction(epoch: int, epochs: int, d: float, e: float) -> float:
    """Data Step: fraction ``d`` for the first ``round(e * epochs)`` epochs, then 1."""
    _check(epoch, epochs)
    return d if epoch < round_half_up(e * epochs) else 1.0


def increment_fraction(epoch: int, epochs: int, s: float) -> float:
    """Data Increment: ``s + (1 - s) * epoch / epochs``, one equal step per epoch.

    The full data would come only after the last epoch: a run does
    ``s + (1 - s)(E - 1) / 2E`` of the Benchmark's evaluations, a little less than Data
    Step (s, 50%), as the paper reports for its 25% Data Increment.
    """
    _check(epoch, epochs)
    return s + (1.0 - s) * epoch / epochs


def cut_fraction(epoch: int, epochs: int, n: int) -> float:
    """Data Cut: ``n`` equal sections of epochs; section k = 1..n trains on k/n.

    Epoch t is in the section that holds its midpoint, k = ceil((2t + 1) n / 2E), so the
    section boundaries fall at round_half_up(k E / n), rounded as Data Step rounds
    ``e * E``: sections are equal when n divides E, and n = 2 is Data Step (50%, 50%) at
    every E >= 2. The last epoch is always in section n (all the data), also when there
    are fewer epochs than sections.
    """
    _check(epoch, epochs)
    if epoch == epochs - 1:
        return 1.0
    section = -(-(2 * epoch + 1) * n // (2 * epochs))
    return section / n


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Benchmark(_Base):
    """The full-data baseline: f = 1."""

    method: Literal["benchmark"] = "benchmark"

    def fraction_at(self, epoch: int, epochs: int) -> float:
        _check(epoch, epochs)
        return 1.0

    def fraction_runs(self, epochs: int) -> list[tuple[float, int]]:
        return [(1.0, epochs)]


class DataStep(_Base):
    """Fraction ``d`` for the first fraction ``e`` of the epochs, then all data."""

    method: Literal["data_step"] = "data_step"
    d: Fraction
    e: Fraction

    def fraction_at(self, epoch: int, epochs: int) -> float:
        return step_fraction(epoch, epochs, self.d, self.e)

    def fraction_runs(self, epochs: int) -> list[tuple[float, int]]:
        reduced = min(epochs, round_half_up(self.e * epochs))
        return [(self.d, reduced), (1.0, epochs - reduced)]


class DataIncrement(_Base):
    """Fraction rising from ``s`` by equal steps per epoch; all the data only after the run."""

    method: Literal["data_increment"] = "data_increment"
    s: Fraction

    def fraction_at(self, epoch: int, epochs: int) -> float:
        return increment_fraction(epoch, epochs, self.s)


class DataCut(_Base):
    """``n`` equal sections of epochs training on 1/n, 2/n, ..., 1 of the data."""

    method: Literal["data_cut"] = "data_cut"
    n: Annotated[int, Field(ge=1, le=1000)]

    def fraction_at(self, epoch: int, epochs: int) -> float:
        return cut_fraction(epoch, epochs, self.n)

    def fraction_runs(self, epochs: int) -> list[tuple[float, int]]:
        # Section k starts at round_half_up((k - 1) E / n), never after the last epoch.
        starts = [min(epochs - 1, (2 * (k - 1) * epochs + self.n) // (2 * self.n))
                  for k in range(1, self.n + 1)]
        ends = [*starts[1:], epochs]
        return [(k / self.n, end - start)
                for k, (start, end) in enumerate(zip(starts, ends, strict=True), start=1)]


class Piecewise2(_Base):
    """Two Data Step phases: ``d`` up to share ``e`` of the epochs, ``d2`` up to ``e2``,
    then all the data (ours: a schedule search's two-knob staircase, docs/search.md).

    Boundaries round as Data Step's: ``round_half_up(e * E)`` and ``round_half_up(e2 * E)``.
    """

    method: Literal["piecewise2"] = "piecewise2"
    d: Fraction
    e: Fraction
    d2: Fraction
    e2: Fraction

    @model_validator(mode="after")
    def _ordered(self) -> Piecewise2:
        if self.e2 < self.e:
            raise ValueError(f"the second phase must end no earlier than the first: "
                             f"e={self.e} > e2={self.e2}")
        return self

    def _bounds(self, epochs: int) -> tuple[int, int]:
        return (min(epochs, round_half_up(self.e * epochs)),
                min(epochs, round_half_up(self.e2 * epochs)))

    def fraction_at(self, epoch: int, epochs: int) -> float:
        _check(epoch, epochs)
        first, second = self._bounds(epochs)
        return self.d if epoch < first else self.d2 if epoch < second else 1.0

    def fraction_runs(self, epochs: int) -> list[tuple[float, int]]:
        first, second = self._bounds(epochs)
        return [(self.d, first), (self.d2, second - first), (1.0, epochs - second)]


class Breakpoint(_Base):
    """From progress ``at`` (share of the epochs elapsed, in [0, 1)) on, train on ``fraction``."""

    at: Annotated[float, Field(ge=0.0, lt=1.0)]
    fraction: Fraction


class Piecewise(_Base):
    """A user-defined staircase: the last breakpoint with ``at <= epoch / epochs`` applies."""

    method: Literal["piecewise"] = "piecewise"
    breakpoints: Annotated[list[Breakpoint], Field(min_length=1)]

    @model_validator(mode="after")
    def _ordered(self) -> Piecewise:
        ats = [b.at for b in self.breakpoints]
        if ats[0] != 0.0:
            raise ValueError(f"the first breakpoint must be at 0.0, got at={ats[0]}")
        if any(b <= a for a, b in zip(ats, ats[1:], strict=False)):
            raise ValueError(f"breakpoints must be strictly increasing in 'at', got {ats}")
        return self

    def fraction_at(self, epoch: int, epochs: int) -> float:
        _check(epoch, epochs)
        progress = epoch / epochs
        return [b.fraction for b in self.breakpoints if b.at <= progress][-1]

    def fraction_runs(self, epochs: int) -> list[tuple[float, int]]:
        starts = [first_epoch_at(b.at, epochs) for b in self.breakpoints]
        ends = [*starts[1:], epochs]
        return [(b.fraction, end - start)
                for b, start, end in zip(self.breakpoints, starts, ends, strict=True)]


def first_epoch_at(at: float, epochs: int) -> int:
    """The first epoch t with ``at <= t / epochs`` in float arithmetic, as ``fraction_at``
    compares (``epochs`` if none): O(1) in the epochs."""
    t = min(epochs, math.ceil(at * epochs))
    while t > 0 and at <= (t - 1) / epochs:
        t -= 1
    while t < epochs and not at <= t / epochs:
        t += 1
    return t


Schedule = Annotated[
    Union[Benchmark, DataStep, DataIncrement, DataCut, Piecewise, Piecewise2],  # noqa: UP007
    Field(discriminator="method"),
]


def fraction_at(schedule: Schedule, epoch: int, epochs: int) -> float:
    """The fraction of the training set that ``epoch`` (0-based) trains on."""
    return schedule.fraction_at(epoch, epochs)


def count_for(fraction: float, n: int) -> int:
    """Samples for ``fraction`` of ``n``: round half up, at least 1, at most ``n``."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction=}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n=}")
    return min(n, max(1, round_half_up(n * fraction)))


def fractions(schedule: Schedule, epochs: int) -> list[float]:
    """The per-epoch fractions of a whole run."""
    return [schedule.fraction_at(t, epochs) for t in range(epochs)]


def counts(schedule: Schedule, n: int, epochs: int) -> list[int]:
    """The per-epoch sample counts of a whole run on ``n`` training samples."""
    return [count_for(f, n) for f in fractions(schedule, epochs)]


def count_runs(schedule: Schedule, n: int, epochs: int) -> list[tuple[int, int]]:
    """The per-epoch counts of a run as ``(count, epochs)`` runs, equal neighbours merged.

    The same counts as ``counts`` (tested), in time linear in the number of runs: two for
    a Data Step, three for a ``piecewise2``, at most n for a Data Cut, one per breakpoint;
    a Data Increment has one
    run per distinct count, at most min(E, N (1 - s) + 1).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs=}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n=}")
    if isinstance(schedule, DataIncrement):
        runs = _increment_runs(schedule.s, n, epochs)
    else:
        runs = [(count_for(f, n), k) for f, k in schedule.fraction_runs(epochs)]
    merged: list[tuple[int, int]] = []
    for count, length in runs:
        if length and merged and merged[-1][0] == count:
            merged[-1] = (count, merged[-1][1] + length)
        elif length:
            merged.append((count, length))
    return merged


_DIRECT_EPOCHS = 4096  # below this, Data Increment's counts are simply listed


def _increment_runs(s: float, n: int, epochs: int) -> list[tuple[int, int]]:
    """Data Increment's runs: from each run's start, jump to the next count's first epoch."""

    def count(t: int) -> int:
        return count_for(increment_fraction(t, epochs, s), n)

    if s == 1.0:
        return [(n, epochs)]
    if epochs <= _DIRECT_EPOCHS:
        return [(count(t), 1) for t in range(epochs)]
    p, q = _Ratio(s).as_integer_ratio()  # s exactly, as the float it is
    runs, t, c = [], 0, count(0)
    while t < epochs:
        # In exact arithmetic the count exceeds c once n (p E + (q - p) t) / (q E) >= c + 1/2.
        guess = -(-((2 * c + 1) * q * epochs - 2 * n * p * epochs) // (2 * n * (q - p)))
        end, next_count = _first_above(count, c, t, epochs, guess)
        runs.append((c, end - t))
        t, c = end, next_count
    return runs


def _first_above(
    count: Callable[[int], int], c: int, lo: int, hi: int, guess: int
) -> tuple[int, int]:
    """The first t in (lo, hi) with ``count(t) > c`` (``hi`` if none) and its count.

    ``count`` never falls; ``guess`` is where exact arithmetic puts the step.
    """
    g = min(max(guess, lo + 1), hi)
    above = count(g) if g < hi else c
    if (g == hi or above > c) and (g - 1 == lo or count(g - 1) <= c):
        return g, above
    left, right = lo + 1, hi  # float rounding moved the step off the guess: bisect
    while left < right:
        mid = (left + right) // 2
        if count(mid) > c:
            right = mid
        else:
            left = mid + 1
    return left, (count(left) if left < hi else c)


def evaluations(schedule: Schedule, n: int, epochs: int) -> int:
    """Training images forwarded and back-propagated over the whole run (via ``count_runs``)."""
    return sum(count * length for count, length in count_runs(schedule, n, epochs))
