"""A search's answer: its points from the experiment table, the front, the cheapest
schedule that holds the constraint."""

from __future__ import annotations

import itertools
import math

import pandas as pd
import pytest

from orchestrator.aggregate import TRIAL_COLUMNS, experiment_table
from orchestrator.pareto import best_constrained, fixed_points, front, search_points

STEP = '{"method":"data_step","d":0.25,"e":0.5}'
FULL = '{"method":"benchmark"}'


def _trials(spec: dict[str, tuple[str, float, list[float]]]) -> pd.DataFrame:
    """experiment -> (schedule, evaluations, best top-1 per seed) as a trial table."""
    rows = []
    for name, (schedule, evaluations, top1) in spec.items():
        for seed, acc in enumerate(top1):
            row = dict.fromkeys(TRIAL_COLUMNS, math.nan)
            row.update(experiment=name, method=schedule.split('"')[3], schedule=schedule,
                       seed=seed, dataset="digits", selection="fixed", source="ours",
                       hardware="cpu", epochs=4, train_size=100, best_top1=acc,
                       final_top1=acc, evaluations=evaluations, scoring_evaluations=0.0,
                       run_id=f"{name}-{seed}")
            rows.append(row)
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS)).astype({"seed": int})


SPEC = {
    "Benchmark": (FULL, 400.0, [0.950, 0.952, 0.951]),
    "E3": (STEP, 250.0, [0.940, 0.942, 0.941]),
    "S000": (STEP, 100.0, [0.900, 0.902, 0.901]),   # cheapest: on the front
    "S001": (STEP, 200.0, [0.890, 0.892, 0.891]),   # dearer and worse than S000
    "S002": (STEP, 300.0, [0.9505, 0.9525, 0.9515]),  # equivalent at 1 point, on the front
    "S003": (STEP, 380.0, [0.9505, 0.9525, 0.9515]),  # as accurate as S002, dearer
    "S004": (STEP, 390.0, [0.960, 0.962, 0.961]),   # the most accurate: on the front
    "S010": (STEP, 300.0, [0.9505, 0.9525, 0.9515]),  # S002's twin: neither dominates
}


@pytest.fixture(scope="module")
def points_and_table() -> tuple[list, pd.DataFrame, pd.DataFrame]:
    trials = _trials(SPEC)
    table = experiment_table(trials, margin=1.0)
    return search_points(table, trials), table, trials


def test_points_are_the_search_schedules_in_asked_order(points_and_table: tuple) -> None:
    points, table, trials = points_and_table
    assert [p.experiment for p in points] == ["S000", "S001", "S002", "S003", "S004", "S010"]
    assert [p.experiment for p in fixed_points(table, trials)] == ["Benchmark", "E3"]
    s000 = points[0]
    assert s000.evaluation_ratio == pytest.approx(0.25) and s000.n == 3
    assert s000.top1_mean == pytest.approx(0.901) and s000.top1_std == pytest.approx(0.001)
    assert s000.schedule == "data_step d=25% e=50%, fixed"


def test_the_front_is_exactly_the_non_dominated_points(points_and_table: tuple) -> None:
    points = points_and_table[0]
    on_front = front(points)
    assert [p.experiment for p in on_front] == ["S000", "S002", "S010", "S004"]
    for p, q in itertools.permutations(points, 2):  # checked independently
        dominates = (q.evaluation_ratio <= p.evaluation_ratio and q.top1_mean >= p.top1_mean
                     and (q.evaluation_ratio < p.evaluation_ratio or q.top1_mean > p.top1_mean))
        if dominates:
            assert p not in on_front


def test_best_constrained_is_the_cheapest_equivalent(points_and_table: tuple) -> None:
    points = points_and_table[0]
    equivalent = {p.experiment for p in points if p.equivalent}
    assert {"S002", "S003", "S010"} <= equivalent and "S000" not in equivalent
    best = best_constrained(points)
    assert best is not None and best.experiment == "S002"  # S010 ties it: asked first wins


def test_no_claim_below_three_seeds() -> None:
    spec = {k: (s, e, top1[:2]) for k, (s, e, top1) in SPEC.items()}
    trials = _trials(spec)
    points = search_points(experiment_table(trials, margin=1.0), trials)
    assert all(p.equivalent is None for p in points)
    assert best_constrained(points) is None
    assert front(points)  # the front needs no test
