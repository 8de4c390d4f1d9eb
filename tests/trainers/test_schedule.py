"""Schedules: fractions in (0, 1], the count rule, closed-form evaluations per E-number."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from trainers.errors import ConfigError
from trainers.experiments import EXPERIMENTS, experiment, experiment_names
from trainers.schedule import (
    Benchmark,
    DataCut,
    DataIncrement,
    DataStep,
    Piecewise,
    count_for,
    counts,
    evaluations,
    fraction_at,
    fractions,
    round_half_up,
)

SIZES = [(60_000, 300), (60_000, 10), (1437, 7), (50_000, 300), (24_300, 1), (100, 3), (7, 4)]
LEVELS = (0.25, 0.5, 0.75)


def test_registry_is_the_papers_numbering() -> None:
    names = experiment_names()
    assert names[0] == "Benchmark"
    assert names[1:] == [f"E{i}" for i in range(1, 21)]
    # Data Step: d outer, e inner.
    expected = [(d, e) for d in LEVELS for e in LEVELS]
    assert [(EXPERIMENTS[f"E{i}"].d, EXPERIMENTS[f"E{i}"].e) for i in range(1, 10)] == expected
    assert [EXPERIMENTS[f"E{i}"].s for i in (10, 11, 12)] == list(LEVELS)
    assert [EXPERIMENTS[f"E{i}"].n for i in range(13, 21)] == list(range(2, 10))
    assert experiment("e3") == DataStep(d=0.25, e=0.75)
    assert experiment(" benchmark ") == Benchmark()


def test_unknown_experiment_lists_the_options() -> None:
    with pytest.raises(ConfigError, match="unknown experiment 'E21'.*Benchmark, E1, E2"):
        experiment("E21")


@pytest.mark.parametrize("name", list(EXPERIMENTS))
@pytest.mark.parametrize(("n", "epochs"), SIZES)
def test_fractions_in_unit_interval_and_counts_in_range(name: str, n: int, epochs: int) -> None:
    schedule = EXPERIMENTS[name]
    fs = fractions(schedule, epochs)
    assert len(fs) == epochs
    assert all(0.0 < f <= 1.0 for f in fs)
    if epochs >= 4:  # with 1-3 epochs, round(e * E) can cover every epoch of a Data Step
        assert fs[-1] == 1.0  # every registered schedule ends on the full data
    assert all(1 <= c <= n for c in counts(schedule, n, epochs))
    assert fs == sorted(fs)  # the fraction never falls


def _closed_form(name: str, n: int, epochs: int) -> int:
    """Evaluations straight from PAPER.md's definitions, written independently."""
    s = EXPERIMENTS[name]
    full = n * epochs
    if isinstance(s, Benchmark):
        return full
    if isinstance(s, DataStep):
        reduced = math.floor(s.e * epochs + 0.5)
        return reduced * max(1, math.floor(n * s.d + 0.5)) + (epochs - reduced) * n
    if isinstance(s, DataCut):
        # section k of n covers epochs t with ceil((t + 1) * n / E) == k
        total = 0
        for k in range(1, s.n + 1):
            epochs_in_k = sum(1 for t in range(epochs) if math.ceil((t + 1) * s.n / epochs) == k)
            total += epochs_in_k * max(1, math.floor(n * k / s.n + 0.5 + 1e-9))
        return total
    assert isinstance(s, DataIncrement)
    if epochs == 1:
        return n
    return sum(
        max(1, math.floor(n * (s.s + (1 - s.s) * t / (epochs - 1)) + 0.5 + 1e-9))
        for t in range(epochs)
    )


@pytest.mark.parametrize("name", list(EXPERIMENTS))
@pytest.mark.parametrize(("n", "epochs"), SIZES)
def test_evaluations_match_closed_form(name: str, n: int, epochs: int) -> None:
    assert evaluations(EXPERIMENTS[name], n, epochs) == _closed_form(name, n, epochs)


@pytest.mark.parametrize(("d", "e"), [(d, e) for d in LEVELS for e in LEVELS])
def test_data_step_ratio_is_one_minus_e_times_one_minus_d(d: float, e: float) -> None:
    # Exact at the paper's scale: E = 300, N = 60,000.
    ratio = evaluations(DataStep(d=d, e=e), 60_000, 300) / (60_000 * 300)
    assert ratio == pytest.approx(1 - e * (1 - d), abs=1e-12)


def test_e3_is_the_cheapest_data_step() -> None:
    ratios = {f"E{i}": evaluations(EXPERIMENTS[f"E{i}"], 60_000, 300) for i in range(1, 10)}
    assert min(ratios, key=ratios.__getitem__) == "E3"
    assert ratios["E3"] == 0.4375 * 60_000 * 300


@pytest.mark.parametrize("n_cuts", range(2, 10))
def test_data_cut_ratio_when_sections_divide_epochs(n_cuts: int) -> None:
    epochs = n_cuts * 10
    ratio = evaluations(DataCut(n=n_cuts), 60_000 * n_cuts, epochs) / (60_000 * n_cuts * epochs)
    assert ratio == pytest.approx((n_cuts + 1) / (2 * n_cuts), abs=1e-12)


def test_data_increment_25_matches_e2_evaluations() -> None:
    # The paper: its 25% Data Increment and E2 do nearly the same number of evaluations.
    inc = evaluations(DataIncrement(s=0.25), 60_000, 300)
    step = evaluations(DataStep(d=0.25, e=0.5), 60_000, 300)
    assert abs(inc - step) / step < 1e-3


def test_data_step_boundary() -> None:
    s = DataStep(d=0.5, e=0.25)
    assert [fraction_at(s, t, 8) for t in range(8)] == [0.5, 0.5] + [1.0] * 6
    assert fraction_at(DataStep(d=0.5, e=1.0), 7, 8) == 0.5  # e = 1: never full


def test_data_increment_endpoints() -> None:
    s = DataIncrement(s=0.25)
    assert fraction_at(s, 0, 5) == 0.25
    assert fraction_at(s, 4, 5) == 1.0
    assert fraction_at(s, 2, 5) == pytest.approx(0.625)
    assert fraction_at(s, 0, 1) == 1.0


def test_data_cut_staircase() -> None:
    assert fractions(DataCut(n=3), 6) == [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0, 1.0]
    assert fractions(DataCut(n=1), 3) == [1.0, 1.0, 1.0]


def test_piecewise_schedule() -> None:
    s = Piecewise.model_validate(
        {"breakpoints": [{"at": 0.0, "fraction": 0.2}, {"at": 0.5, "fraction": 0.6},
                         {"at": 0.75, "fraction": 1.0}]}
    )
    assert fractions(s, 8) == [0.2] * 4 + [0.6] * 2 + [1.0] * 2


@pytest.mark.parametrize(
    "bad",
    [
        {"method": "data_step", "d": 0.0, "e": 0.5},
        {"method": "data_step", "d": 1.5, "e": 0.5},
        {"method": "data_step", "d": -0.1, "e": 0.5},
        {"method": "data_step", "d": 0.5},
        {"method": "data_step", "d": 0.5, "e": 0.5, "x": 1},
        {"method": "data_increment", "s": 0},
        {"method": "data_cut", "n": 0},
        {"method": "piecewise", "breakpoints": []},
        {"method": "piecewise", "breakpoints": [{"at": 0.5, "fraction": 0.5}]},
        {"method": "piecewise", "breakpoints": [{"at": 0.0, "fraction": 0.5},
                                                {"at": 0.0, "fraction": 0.7}]},
        {"method": "piecewise", "breakpoints": [{"at": 0.0, "fraction": 1.01}]},
        {"method": "nope"},
    ],
)
def test_invalid_schedules_are_rejected(bad: dict) -> None:
    from pydantic import TypeAdapter

    from trainers.schedule import Schedule

    with pytest.raises(ValidationError):
        TypeAdapter(Schedule).validate_python(bad)


def test_count_rule() -> None:
    assert round_half_up(2.5) == 3 and round_half_up(3.5) == 4  # not banker's rounding
    assert count_for(0.25, 60_000) == 15_000
    assert count_for(1 / 3, 60_000) == 20_000
    assert count_for(0.5, 5) == 3  # 2.5 rounds up
    assert count_for(0.01, 10) == 1  # never empty
    assert count_for(1.0, 7) == 7
    for bad in (0.0, -0.5, 1.0001):
        with pytest.raises(ValueError, match="fraction must be in"):
            count_for(bad, 10)


def test_epoch_out_of_range() -> None:
    with pytest.raises(ValueError, match="epoch must be in"):
        fraction_at(Benchmark(), 3, 3)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fraction_at(DataStep(d=0.5, e=0.5), 0, 0)
