"""Trial order (interleaved, reproducible) and the runtime-comparability decision."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from orchestrator.comparability import MAX_CV, runtime_comparability
from orchestrator.order import interleave

EXPERIMENTS = ["Benchmark", "E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9"]


@dataclass(frozen=True)
class Trial:
    experiment: str
    seed: int


def _grid(seeds: int = 3) -> list[Trial]:
    return [Trial(e, s) for e in EXPERIMENTS for s in range(seeds)]  # experiments outer


def test_seed_major_with_every_experiment_once_per_seed() -> None:
    ordered = interleave(_grid(), order_seed=0)
    assert sorted(ordered, key=lambda t: (t.experiment, t.seed)) == sorted(
        _grid(), key=lambda t: (t.experiment, t.seed))
    n = len(EXPERIMENTS)
    for block, seed in enumerate(range(3)):
        chunk = ordered[block * n:(block + 1) * n]
        assert {t.seed for t in chunk} == {seed}
        assert sorted(t.experiment for t in chunk) == sorted(EXPERIMENTS)


def test_reproducible_from_the_grid_seed_and_not_the_input_order() -> None:
    a = interleave(_grid(), order_seed=7)
    assert a == interleave(list(reversed(_grid())), order_seed=7)
    assert a != interleave(_grid(), order_seed=8)
    # shuffled per seed: the blocks are not all in one order, the Benchmark not always first
    n = len(EXPERIMENTS)
    blocks = [[t.experiment for t in a[i * n:(i + 1) * n]] for i in range(3)]
    assert len({tuple(b) for b in blocks}) > 1
    assert blocks != [EXPERIMENTS] * 3


def test_benchmark_position_spreads_over_seeds() -> None:
    ordered = interleave(_grid(seeds=20), order_seed=0)
    n = len(EXPERIMENTS)
    places = [i % n for i, t in enumerate(ordered) if t.experiment == "Benchmark"]
    assert len(set(places)) >= 5  # not pinned to one slot


def _trials(per_image: dict[str, list[float]], evaluations: dict[str, int]) -> pd.DataFrame:
    rows = []
    for name, speeds in per_image.items():
        for seed, s in enumerate(speeds):
            ev = evaluations[name]
            rows.append({"experiment": name, "seed": seed, "evaluations": ev,
                         "train_s": s * ev, "train_cpu_s": 0.9 * s * ev})
    return pd.DataFrame(rows)


EVALS = {"Benchmark": 1000, "E1": 800, "E3": 440}


def test_steady_machine_is_comparable() -> None:
    speeds = {"Benchmark": [1.00, 1.01, 0.99], "E1": [1.0, 1.02, 0.99], "E3": [1.01, 1.0, 0.98]}
    result = runtime_comparability(_trials(speeds, EVALS))
    assert result.comparable, result.note
    assert result.ratios["E3"] == pytest.approx(0.99667, abs=1e-4)
    assert result.note.startswith("runtimes compare")


def test_machine_that_changed_speed_is_flagged_with_the_spread() -> None:
    speeds = {"Benchmark": [2.4, 2.3, 2.4], "E1": [1.7, 1.8, 1.7], "E3": [1.7, 1.7, 1.6]}
    result = runtime_comparability(_trials(speeds, EVALS))
    assert not result.comparable
    assert result.cv > MAX_CV
    assert "varied 50% across trials" in result.note and "machine's speed" in result.note


def test_one_slowed_experiment_is_named() -> None:
    speeds = {"Benchmark": [1.0, 1.0, 1.0], "E1": [1.0, 1.0, 1.0], "E3": [1.12, 1.13, 1.12]}
    result = runtime_comparability(_trials(speeds, EVALS))
    assert not result.comparable
    assert result.note.startswith("E3's training time per image was 12% above")


def test_cpu_clock_is_judged_the_same_way() -> None:
    speeds = {"Benchmark": [1.0, 1.0], "E1": [1.0, 1.01]}
    result = runtime_comparability(_trials(speeds, EVALS), clock="train_cpu_s")
    assert result.comparable and result.clock == "train_cpu_s"
    assert "CPU time per image" in result.note


def test_missing_reference_or_clock_is_not_comparable() -> None:
    speeds = {"E1": [1.0, 1.0], "E3": [1.0, 1.0]}
    assert "no Benchmark" in runtime_comparability(_trials(speeds, EVALS)).note
    assert not runtime_comparability(pd.DataFrame()).comparable


def test_a_spread_caused_by_one_experiment_names_it() -> None:
    speeds = {"Benchmark": [1.0, 1.0], "E1": [1.0, 1.01], "E3": [3.0, 3.1]}
    result = runtime_comparability(_trials(speeds, EVALS))
    assert not result.comparable and result.cv > MAX_CV
    assert "furthest from the Benchmark: E3 (+205%)" in result.note
