"""Data schedules: which fraction of the training set each epoch trains on.

Every schedule is a pure, torch-free function of ``(epoch, epochs)`` (epoch 0-based) that
returns a fraction in (0, 1]. The typed ``*Schedule`` models are the validated config
form of each; ``fraction_at`` dispatches on them. ``count_for`` is the one rule that turns a
fraction into a sample count, and ``evaluations`` sums it over a run.

Readings (see docs/method.md): Data Step and the Benchmark are the paper's; the Data
Increment ramp, the Data Cut staircase and the piecewise schedule are ours.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Benchmark",
    "DataCut",
    "DataIncrement",
    "DataStep",
    "Piecewise",
    "Schedule",
    "count_for",
    "counts",
    "cut_fraction",
    "evaluations",
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
    """Data Increment: linear from ``s`` at the first epoch to 1 at the last."""
    _check(epoch, epochs)
    if epochs == 1:
        return 1.0
    return s + (1.0 - s) * epoch / (epochs - 1)


def cut_fraction(epoch: int, epochs: int, n: int) -> float:
    """Data Cut: ``n`` equal sections of epochs; section k = 1..n trains on k/n.

    Epoch t is in section ceil((t + 1) * n / epochs): sections are equal when n divides
    the epochs, and the last epoch is always in section n (full data), also when there
    are fewer epochs than sections.
    """
    _check(epoch, epochs)
    section = -(-(epoch + 1) * n // epochs)
    return section / n


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Benchmark(_Base):
    """The full-data baseline: f = 1."""

    method: Literal["benchmark"] = "benchmark"

    def fraction_at(self, epoch: int, epochs: int) -> float:
        _check(epoch, epochs)
        return 1.0


class DataStep(_Base):
    """Fraction ``d`` for the first fraction ``e`` of the epochs, then all data."""

    method: Literal["data_step"] = "data_step"
    d: Fraction
    e: Fraction

    def fraction_at(self, epoch: int, epochs: int) -> float:
        return step_fraction(epoch, epochs, self.d, self.e)


class DataIncrement(_Base):
    """Fraction rising linearly from ``s`` to 1 over the run."""

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


Schedule = Annotated[
    Union[Benchmark, DataStep, DataIncrement, DataCut, Piecewise],  # noqa: UP007
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


def evaluations(schedule: Schedule, n: int, epochs: int) -> int:
    """Training images forwarded and back-propagated over the whole run."""
    return sum(counts(schedule, n, epochs))
