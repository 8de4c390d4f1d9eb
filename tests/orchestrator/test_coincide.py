"""Identical schedules: which experiments of a grid train the same way, and who stands for them."""

from __future__ import annotations

import pytest

from orchestrator.coincide import (
    Coincidence,
    PlanEntry,
    canonical_order,
    find_identical,
    summary_line,
)
from trainers.experiments import EXPERIMENTS
from trainers.schedule import DataIncrement, DataStep, Piecewise


def _registry(epochs: int, selection: str = "fixed") -> dict[str, PlanEntry]:
    return {name: PlanEntry(s, selection, epochs) for name, s in EXPERIMENTS.items()}


def _groups(found: list[Coincidence]) -> list[tuple[str, ...]]:
    return [c.names for c in found]


@pytest.mark.parametrize("epochs", [2, 4, 5, 7, 24, 300, 301, 10**9])
@pytest.mark.parametrize("n", [60_000, 6_000, 1_000])
def test_e13_is_e5_at_every_epochs(epochs: int, n: int) -> None:
    found = find_identical(_registry(epochs), n)
    group = next(c for c in found if "E13" in c.names)
    assert "E5" in group.names and group.representative != "E13"  # at E = 2, E4 joins them
    if epochs >= 4:  # from four epochs on, E5 = E13 is the only pair
        assert _groups(found) == [("E5", "E13")]
        assert group.notes() == [f"E13: same schedule as E5 at E = {epochs}"]


def test_small_epochs_give_six_pairs_at_n_1000_e_3() -> None:
    # The issue counts eight pairs: that was under the earlier readings (Data Increment
    # t / (E - 1), Data Cut sections ceil((t + 1) n / E)). Under the current ones:
    found = find_identical(_registry(3), 1_000)
    assert _groups(found) == [("E2", "E3"), ("E5", "E6", "E13"), ("E8", "E9"), ("E15", "E19")]
    pairs = sum(len(c.names) * (len(c.names) - 1) // 2 for c in found)
    assert pairs == 6
    assert [note for c in found for note in c.notes()] == [
        "E3: same schedule as E2 at E = 3",
        "E6: same schedule as E5 at E = 3",
        "E13: same schedule as E5 at E = 3",
        "E9: same schedule as E8 at E = 3",
        "E19: same schedule as E15 at E = 3",
    ]


def test_the_benchmark_stands_for_everything_that_trains_on_all_the_data() -> None:
    # One epoch: a Data Step with round(e) = 0 reduced epochs and every Data Cut train on all.
    found = find_identical(_registry(1), 1_000)
    full = found[0]
    assert full.representative == "Benchmark"
    assert set(full.others) == {"E1", "E4", "E7", *[f"E{i}" for i in range(13, 21)]}


def test_a_custom_schedule_that_coincides_with_a_registered_one_is_found() -> None:
    entries = {
        "my_half": PlanEntry(Piecewise.model_validate(
            {"breakpoints": [{"at": 0.0, "fraction": 0.5}, {"at": 0.5, "fraction": 1.0}]}),
            "fixed", 300),
        "E13": PlanEntry(EXPERIMENTS["E13"], "fixed", 300),
        "E10": PlanEntry(EXPERIMENTS["E10"], "fixed", 300),
        "E5": PlanEntry(EXPERIMENTS["E5"], "fixed", 300),
        "ramp": PlanEntry(DataIncrement(s=0.25), "fixed", 300),
    }
    found = find_identical(entries, 60_000)
    # The paper's first, then the lowest E-number, then names.
    assert _groups(found) == [("E5", "E13", "my_half"), ("E10", "ramp")]


def test_representative_order_without_the_papers_experiment() -> None:
    step = DataStep(d=0.5, e=0.5)
    entries = {name: PlanEntry(step, "fixed", 300) for name in ("zeta", "E13", "alpha")}
    assert _groups(find_identical(entries, 60_000)) == [("E13", "alpha", "zeta")]
    assert sorted(["E13", "E5", "Benchmark", "b", "E10", "a"], key=canonical_order) == [
        "Benchmark", "E5", "E10", "E13", "a", "b"]


@pytest.mark.parametrize(
    "other",
    [
        PlanEntry(EXPERIMENTS["E13"], "per_epoch", 300),  # another selection
        PlanEntry(EXPERIMENTS["E13"], "fixed", 300, recipe="lr=0.01"),  # another recipe
        PlanEntry(EXPERIMENTS["E13"], "fixed", 302),  # other epochs
        PlanEntry(DataStep(d=0.5, e=0.49), "fixed", 300),  # one epoch fewer reduced
    ],
)
def test_anything_else_that_differs_is_not_identical(other: PlanEntry) -> None:
    entries = {"E5": PlanEntry(EXPERIMENTS["E5"], "fixed", 300), "other": other}
    assert find_identical(entries, 60_000) == []


def test_counts_decide_not_fractions() -> None:
    # 0.5 and 0.5001 of 1,000 images are both 500 (round half up): the same trials.
    a = PlanEntry(DataStep(d=0.5, e=0.5), "fixed", 10)
    b = PlanEntry(DataStep(d=0.5001, e=0.5), "fixed", 10)
    assert _groups(find_identical({"a": a, "b": b}, 1_000)) == [("a", "b")]
    assert find_identical({"a": a, "b": b}, 100_000) == []


def test_summary_line() -> None:
    assert summary_line([]) == ""
    line = summary_line(find_identical(_registry(300), 60_000))
    assert line == ("identical schedules, trained once and reported under every name: "
                    "E13: same schedule as E5 at E = 300")
    with pytest.raises(ValueError, match="n must be >= 1"):
        find_identical(_registry(3), 0)
