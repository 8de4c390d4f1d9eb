"""Schedules: fractions in (0, 1], the count rule, closed-form evaluations per E-number,
runs of equal counts, and which experiments are the paper's."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from pydantic import ValidationError

from tests.conftest import REPO
from trainers.errors import ConfigError
from trainers.experiments import EXPERIMENTS, experiment, experiment_names, source_of
from trainers.schedule import (
    Benchmark,
    DataCut,
    DataIncrement,
    DataStep,
    Piecewise,
    Piecewise2,
    count_for,
    count_runs,
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
    if isinstance(schedule, DataIncrement):  # all the data only after the last epoch
        assert fs[-1] == pytest.approx(1 - (1 - schedule.s) / epochs)
    elif epochs >= 4:  # with 1-3 epochs, round(e * E) can cover every epoch of a Data Step
        assert fs[-1] == 1.0  # every other registered schedule ends on the full data
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
        # section k of n: epochs from round((k - 1) E / n) on, the last epoch in section n
        starts = [min(epochs - 1, math.floor((k - 1) * epochs / s.n + 0.5))
                  for k in range(1, s.n + 1)]
        lengths = [b - a for a, b in zip(starts, [*starts[1:], epochs], strict=True)]
        return sum(length * max(1, math.floor(n * k / s.n + 0.5 + 1e-9))
                   for k, length in enumerate(lengths, start=1))
    assert isinstance(s, DataIncrement)
    return _increment_floor_sum(s.s, n, epochs)


def _floor_sum(count: int, m: int, a: int, b: int) -> int:
    """sum of floor((a i + b) / m) for i in [0, count), in O(log) steps (AtCoder's floor_sum)."""
    total = 0
    while True:
        if a >= m:
            total += count * (count - 1) // 2 * (a // m)
            a %= m
        if b >= m:
            total += count * (b // m)
            b %= m
        y_max = a * count + b
        if y_max < m:
            return total
        count, b = y_max // m, y_max % m
        m, a = a, m


def _increment_floor_sum(s: float, n: int, epochs: int) -> int:
    """Data Increment in closed form: count_t = floor(n (s + (1 - s) t / E) + 1/2), s = p/q.

    That is floor((2n(q - p) t + 2npE + qE) / 2qE), a floor sum in exact arithmetic. It
    equals the float rule (``round_half_up`` rounds up from 1e-9 below a half) wherever no
    exact n f_t lies in that gap: true at the sizes below, not at N = 7, E = 10^9, s = 0.5,
    where the float rule, which the trainer follows, counts one image more.
    """
    p, q = Fraction(s).as_integer_ratio()
    return _floor_sum(epochs, 2 * q * epochs, 2 * n * (q - p), 2 * n * p * epochs + q * epochs)


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


def test_data_increment_25_does_fewer_evaluations_than_e2() -> None:
    # The paper: its 25% Data Increment did fewer evaluations than E2, by under 1%.
    inc = evaluations(EXPERIMENTS["E10"], 60_000, 300)
    step = evaluations(EXPERIMENTS["E2"], 60_000, 300)
    assert inc == 11_227_500 and step == 11_250_000
    assert 0 < (step - inc) / step < 0.01


@pytest.mark.parametrize(("name", "total"),
                         [("E10", 11_227_500), ("E11", 13_485_000), ("E12", 15_742_500)])
def test_data_increment_totals_at_the_papers_scale(name: str, total: int) -> None:
    # N s and N (1 - s) t / E are whole at N = 60,000, E = 300: no rounding at all, so the
    # total is E N s + N (1 - s)(E - 1) / 2.
    s = EXPERIMENTS[name].s
    assert evaluations(EXPERIMENTS[name], 60_000, 300) == total
    assert total == 300 * 60_000 * s + 60_000 * (1 - s) * 299 / 2


@pytest.mark.parametrize("name", ["E10", "E11", "E12"])
@pytest.mark.parametrize(("n", "epochs"), [(60_000, 300), (60_000, 24), (6_000, 24),
                                           (1_000, 3), (50_000, 250), (60_000, 10_000),
                                           (1_000, 100_000), (60_000, 10**9), (7, 10**6)])
def test_data_increment_matches_its_floor_sum_at_any_epochs(name: str, n: int,
                                                            epochs: int) -> None:
    s = EXPERIMENTS[name]
    total = evaluations(s, n, epochs)
    assert total == _increment_floor_sum(s.s, n, epochs)
    # Each epoch rounds by at most 1/2: the total is within E / 2 of its exact mean.
    mean = epochs * n * s.s + n * (1 - s.s) * (epochs - 1) / 2
    assert abs(total - mean) <= epochs / 2
    if (n * (1 - s.s)) % epochs == 0:  # whole steps: exactly (1 + s)/2 - (1 - s)/2E of N E
        assert total / (n * epochs) == pytest.approx((1 + s.s) / 2 - (1 - s.s) / (2 * epochs))


def test_equal_budget_study_ratios() -> None:
    # The shipped equal-budget grid's own N and E: E2 and E15 do exactly 0.625, E10 its own
    # (1 + s)/2 - (1 - s)/2E, a little less (docs/results-mnist.md quotes these figures).
    import yaml

    grid = yaml.safe_load((REPO / "search_spaces" / "equal-budget.yaml").read_text())
    n, epochs = grid["training"]["train_subset"], grid["epochs"]
    assert (n, epochs) == (1_000, 40)
    ratio = {name: evaluations(EXPERIMENTS[name], n, epochs) / (n * epochs)
             for name in ("E2", "E10", "E15")}
    assert ratio["E2"] == ratio["E15"] == 0.625
    assert ratio["E10"] == pytest.approx((1 + 0.25) / 2 - (1 - 0.25) / (2 * epochs), abs=5e-4)
    assert ratio["E10"] == pytest.approx(0.61575)  # 24,630 of 40,000: whole images per epoch
    assert ratio["E10"] < ratio["E2"]


@pytest.mark.parametrize("epochs", [2, 3, 4, 5, 6, 7, 9, 10, 11, 24, 99, 101, 300, 301, 10**9])
def test_e13_is_e5_at_every_epochs(epochs: int) -> None:
    # Data Cut's boundaries round as Data Step's: n = 2 is Data Step (50%, 50%).
    for n in (1, 7, 1_000, 60_000):
        assert count_runs(EXPERIMENTS["E13"], n, epochs) == count_runs(EXPERIMENTS["E5"], n,
                                                                       epochs)


def test_e13_and_e5_part_only_at_one_epoch() -> None:
    # One epoch: Data Step's reduced part rounds up to it, Data Cut's last epoch is full.
    assert fractions(EXPERIMENTS["E5"], 1) == [0.5]
    assert fractions(EXPERIMENTS["E13"], 1) == [1.0]


def _step_schedules() -> list:
    return [*EXPERIMENTS.values(), DataIncrement(s=0.1), DataIncrement(s=1 / 3),
            DataIncrement(s=1.0), DataCut(n=1), DataCut(n=17), DataStep(d=0.3, e=1.0),
            Piecewise.model_validate({"breakpoints": [{"at": 0.0, "fraction": 0.2},
                                                      {"at": 1 / 3, "fraction": 0.7},
                                                      {"at": 0.35, "fraction": 0.7},
                                                      {"at": 0.9, "fraction": 1.0}]}),
            Piecewise2(d=0.2, e=0.3, d2=0.6, e2=0.7), Piecewise2(d=0.5, e=0.5, d2=0.9, e2=0.5),
            Piecewise2(d=0.1, e=1.0, d2=0.4, e2=1.0)]


@pytest.mark.parametrize("schedule", _step_schedules(), ids=lambda s: repr(s)[:40])
def test_count_runs_spell_out_the_per_epoch_counts(schedule: object) -> None:
    epoch_list = [*range(1, 30), 97, 300, 301, 4_097, 12_345]  # past 4096: the jumping path
    for epochs in epoch_list:
        for n in (1, 7, 1_000, 60_000):
            runs = count_runs(schedule, n, epochs)  # type: ignore[arg-type]
            spelled = [count for count, length in runs for _ in range(length)]
            assert spelled == counts(schedule, n, epochs), (n, epochs)  # type: ignore[arg-type]
            assert all(length > 0 for _, length in runs)
            assert all(a[0] != b[0] for a, b in zip(runs, runs[1:], strict=False))  # merged


def test_count_runs_do_not_grow_with_the_epochs() -> None:
    epochs = 10**9
    assert count_runs(EXPERIMENTS["E3"], 60_000, epochs) == [(15_000, 750_000_000),
                                                             (60_000, 250_000_000)]
    assert len(count_runs(EXPERIMENTS["E20"], 60_000, epochs)) == 9
    assert len(count_runs(EXPERIMENTS["E10"], 60_000, epochs)) == 45_001  # one per count
    assert evaluations(EXPERIMENTS["Benchmark"], 60_000, epochs) == 60_000 * epochs


def test_sources() -> None:
    assert [source_of(name) for name in EXPERIMENTS] == ["paper"] * 10 + ["ours"] * 11
    assert source_of("e3") == source_of(" Benchmark ") == "paper"
    assert source_of("E3-loss_soft") == source_of("my_ramp") == "ours"  # custom: ours


def test_data_step_boundary() -> None:
    s = DataStep(d=0.5, e=0.25)
    assert [fraction_at(s, t, 8) for t in range(8)] == [0.5, 0.5] + [1.0] * 6
    assert fraction_at(DataStep(d=0.5, e=1.0), 7, 8) == 0.5  # e = 1: never full


def test_data_increment_steps() -> None:
    s = DataIncrement(s=0.25)
    assert fractions(s, 3) == [0.25, 0.5, 0.75]  # one equal step per epoch, never 1
    assert fraction_at(s, 4, 5) == pytest.approx(0.85)
    assert fraction_at(s, 0, 1) == 0.25


def test_data_cut_staircase() -> None:
    assert fractions(DataCut(n=3), 6) == [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0, 1.0]
    assert fractions(DataCut(n=1), 3) == [1.0, 1.0, 1.0]
    # E = 7, n = 3: boundaries at round(7/3) = 2 and round(14/3) = 5
    assert fractions(DataCut(n=3), 7) == [1 / 3] * 2 + [2 / 3] * 3 + [1.0] * 2
    # fewer epochs than sections: each epoch in the section of its midpoint, the last full
    assert fractions(DataCut(n=9), 4) == [2 / 9, 4 / 9, 6 / 9, 1.0]


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


@pytest.mark.parametrize(("n", "epochs"), SIZES)
@pytest.mark.parametrize(("d", "e", "d2", "e2"), [(0.25, 0.25, 0.5, 0.75), (0.3, 0.4, 0.3, 0.4),
                                                  (0.05, 0.95, 0.95, 0.95), (0.5, 0.1, 1.0, 1.0)])
def test_piecewise2_evaluations_in_closed_form(n: int, epochs: int, d: float, e: float,
                                               d2: float, e2: float) -> None:
    """Two Data Steps back to back: k1 = [eE] epochs at d, k2 - k1 at d2, the rest at 1."""
    k1, k2 = round_half_up(e * epochs), round_half_up(e2 * epochs)
    total = (k1 * count_for(d, n) + (k2 - k1) * count_for(d2, n) + (epochs - k2) * n)
    schedule = Piecewise2(d=d, e=e, d2=d2, e2=e2)
    assert evaluations(schedule, n, epochs) == total
    assert all(0.0 < f <= 1.0 for f in fractions(schedule, epochs))


def test_piecewise2_with_equal_phases_is_data_step() -> None:
    for epochs in (1, 4, 7, 300):
        assert (fractions(Piecewise2(d=0.25, e=0.5, d2=0.25, e2=0.75), epochs)
                == fractions(DataStep(d=0.25, e=0.75), epochs))


def test_piecewise2_phases_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="e=0.8 > e2=0.2"):
        Piecewise2(d=0.5, e=0.8, d2=0.5, e2=0.2)
