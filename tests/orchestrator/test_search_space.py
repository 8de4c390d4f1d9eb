"""The ``search:`` block: validated with the grid, one line and exit 2 for a bad one; a
searcher's parameters -> a schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.grid import load_grid
from orchestrator.search_space import (
    METHOD_PARAMS,
    is_search_label,
    schedule_from_params,
    schedule_label,
)
from tests.conftest import run_cli
from trainers.errors import ConfigError
from trainers.schedule import DataCut, DataIncrement, DataStep, Piecewise2

SPACE = {"method": ["data_step", "data_cut"], "d": [0.1, 0.9], "e": [0.1, 0.9], "n": [2, 6]}


def _write(tmp_path: Path, search: dict[str, Any], **grid: Any) -> Path:
    raw = {"name": "s", "dataset": "digits", "epochs": 2,
           "search": {"space": SPACE, "samples": 4, **search}, **grid}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_search_grid_runs_the_benchmark_and_includes_on_its_seeds(tmp_path: Path) -> None:
    grid = load_grid(_write(tmp_path, {"seeds": 3, "include": ["e5"], "concurrent": 7}))
    assert grid.experiments == ["Benchmark", "E5"]
    assert grid.seed_list() == [0, 1, 2]
    assert grid.search is not None and grid.search.seed_count() == 3
    assert grid.search.batch() == 2  # 7 trials at once: 2 schedules x 3 seeds
    assert grid.search.directions() == ["maximize", "minimize"]
    assert [t.experiment for t in grid.trials()] == ["Benchmark"] * 3 + ["E5"] * 3


def test_the_grid_seeds_win_over_the_search_seeds(tmp_path: Path) -> None:
    grid = load_grid(_write(tmp_path, {"seeds": 3}), seeds=2)  # as --seeds 2
    assert grid.seed_list() == [0, 1] and grid.search is not None
    assert grid.search.seed_count() == 2
    assert load_grid(_write(tmp_path, {}, seeds=[4, 7])).seed_list() == [4, 7]


def test_batch_is_at_least_one_schedule(tmp_path: Path) -> None:
    grid = load_grid(_write(tmp_path, {"seeds": 5, "concurrent": 2}))
    assert grid.search is not None and grid.search.batch() == 1


@pytest.mark.parametrize(("search", "match"), [
    ({"space": {**SPACE, "method": ["data_step", "data_increment"]}},
     "method data_increment needs a range for s"),
    ({"space": {**SPACE, "s": [0.1, 0.5]}}, "s: no method listed"),
    ({"space": {**SPACE, "d": [0.9, 0.1]}}, r"low <= high, got \[0.9, 0.1\]"),
    ({"space": {**SPACE, "d": [0.0, 0.5]}}, "greater than 0"),
    ({"space": {**SPACE, "n": [2.5, 6]}}, "n"),
    ({"space": {**SPACE, "method": ["warp"]}}, "data_step"),
    ({"space": {**SPACE, "colour": [1, 2]}}, "colour"),
    ({"space": {**SPACE, "selection": ["smart"]}}, "selection"),
    ({"algorithm": "cmaes"}, "nsga2"),
    ({"objectives": ["max speed"]}, "max top1"),
    ({"objectives": ["max top1", "max top1"]}, "distinct"),
    ({"samples": 0}, "samples"),
    ({"constraint": {"margin": -1}}, "margin"),
    ({"constraint": {"equivalent_to": "E3", "margin": 1}}, "Benchmark"),
    ({"include": ["E99"]}, "E99"),
    ({"budget": 3}, "budget"),
])
def test_bad_search_blocks_are_refused(tmp_path: Path, search: dict[str, Any],
                                       match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_grid(_write(tmp_path, search))


def test_search_labels_are_reserved(tmp_path: Path) -> None:
    custom = [{"name": "S001", "experiment": "E3"}]
    with pytest.raises(ConfigError, match="S000, S001 ... are the search's"):
        load_grid(_write(tmp_path, {}, custom=custom))


def test_a_bad_block_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path, {"algorithm": "cmaes"})
    out = run_cli("submit", str(path), "--dry-run", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "search.algorithm" in out.stderr


@pytest.mark.parametrize(("params", "schedule"), [
    ({"method": "data_step", "d": 0.3, "e": 0.6}, DataStep(d=0.3, e=0.6)),
    ({"method": "data_increment", "s": 0.25}, DataIncrement(s=0.25)),
    ({"method": "data_cut", "n": 4}, DataCut(n=4)),
    ({"method": "piecewise2", "d": 0.2, "e": 0.3, "d2": 0.6, "e2": 0.8},
     Piecewise2(d=0.2, e=0.3, d2=0.6, e2=0.8)),
    # phase ends taken in order: every point of the space is a schedule
    ({"method": "piecewise2", "d": 0.2, "e": 0.8, "d2": 0.6, "e2": 0.3},
     Piecewise2(d=0.2, e=0.3, d2=0.6, e2=0.8)),
])
def test_parameters_become_a_schedule(params: dict[str, Any], schedule: Any) -> None:
    assert schedule_from_params(params) == (schedule, None)
    assert schedule_from_params({**params, "selection": "per_epoch"})[1] == "per_epoch"
    assert set(params) - {"method"} == set(METHOD_PARAMS[params["method"]])


def test_labels() -> None:
    assert [schedule_label(i) for i in (0, 7, 1234)] == ["S000", "S007", "S1234"]
    assert is_search_label("S012") and not is_search_label("S1")
    assert not is_search_label("Benchmark") and not is_search_label("E3")
