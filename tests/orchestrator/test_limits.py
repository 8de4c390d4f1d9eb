"""Caps on the size of a grid (``orchestrator.limits``): past them a grid is refused in one
line naming the cap and ``--allow-large``, fast and in little memory; the flag lifts them,
and planning stays O(1) in the epochs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.exits import MAX_ERROR_LINE, error_line
from orchestrator.grid import load_grid
from orchestrator.limits import MAX_EPOCHS, MAX_SEEDS, MAX_TRIALS
from tests.conftest import run_cli_measured
from trainers.errors import ConfigError
from trainers.experiments import EXPERIMENTS

SMALL = {"name": "caps", "dataset": "digits", "epochs": 2, "seeds": 1,
         "experiments": ["Benchmark"], "model": {"width": 0.125},
         "training": {"train_subset": 100, "test_subset": 50}}
EVERY = list(EXPERIMENTS)  # Benchmark, E1 ... E20


def _grid(tmp: Path, **change: object) -> Path:
    path = tmp / "grid.yaml"
    path.write_text(yaml.safe_dump({**SMALL, **change}))
    return path


# name: (grid change, extra argv, text of the refusal)
BOMBS = {
    "a billion epochs with baselines": (
        {"epochs": 1_000_000_000, "experiments": ["Benchmark", "E1", "E12"],
         "baselines": ["uniform", "short"]}, [],
        "1,000,000,000 epochs (Benchmark) is over the cap of 10,000"),
    "100,000 seeds as a list": ({"seeds": list(range(100_000))}, [],
                                "100,000 seeds is over the cap of 1,000"),
    "1,000 seeds x 21 experiments with baselines": (
        {"seeds": 1000, "experiments": EVERY, "baselines": ["uniform", "short"]}, [],
        "61,000 trials (61 experiments x 1,000 seeds) is over the cap of 2,000 per grid"),
    "--seeds on the command line": ({}, ["--seeds", "5000"],
                                    "5,000 seeds is over the cap of 1,000"),
}


@pytest.mark.parametrize("case", list(BOMBS))
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "submit"])
def test_a_grid_past_a_cap_is_one_line_fast_in_little_memory(case: str, dry_run: bool,
                                                             tmp_path: Path) -> None:
    change, argv, needle = BOMBS[case]
    grid = _grid(tmp_path, **change)
    work = tmp_path / "work"
    work.mkdir()
    run = run_cli_measured("submit", str(grid), *argv, *(["--dry-run"] if dry_run else []),
                           cwd=work)
    out = run.out
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(lines) == 1 and needle in lines[0] and "pass --allow-large" in lines[0], lines
    assert out.stdout == "" and list(work.iterdir()) == []  # nothing connected or written
    assert run.cpu_s < 5.0 and run.wall_s < 30 and run.peak_mb < 500, run


def test_schedules_of_a_billion_epochs_answer_fast_in_little_memory(tmp_path: Path) -> None:
    run = run_cli_measured("schedules", "--epochs", "1000000000", cwd=tmp_path)
    out = run.out
    assert out.returncode == 0 and out.stderr == "", out.stderr[-2000:]
    assert "E1 " in out.stdout and "evaluations=" in out.stdout
    assert run.cpu_s < 5.0 and run.wall_s < 30 and run.peak_mb < 500, run


@pytest.mark.parametrize(("change", "field"), [
    ({"epochs": MAX_EPOCHS}, None), ({"epochs": MAX_EPOCHS + 1}, "epochs"),
    ({"seeds": MAX_SEEDS}, None), ({"seeds": MAX_SEEDS + 1}, "seeds"),
    ({"seeds": list(range(MAX_SEEDS + 1))}, "seeds"),
    ({"custom": [{"name": "long", "experiment": "E1", "epochs": MAX_EPOCHS + 1}]},
     "epochs (long)"),
    ({"seeds": MAX_TRIALS // 2, "experiments": ["Benchmark", "E1"]}, None),
    ({"seeds": MAX_TRIALS // 3 + 1, "experiments": ["Benchmark", "E1", "E2"]}, "trials"),
])
def test_caps_hold_at_the_boundary(change: dict, field: str | None, tmp_path: Path) -> None:
    path = _grid(tmp_path, **change)
    if field is None:
        load_grid(path)
        return
    with pytest.raises(ConfigError, match=re.escape(field) + ".* is over the cap"):
        load_grid(path)


def test_allow_large_plans_past_the_caps_in_constant_time(tmp_path: Path) -> None:
    """The flag lifts every cap; twins of a billion-epoch run are planned as fast as any."""
    path = _grid(tmp_path, epochs=1_000_000_000, seeds=[0, 5], baselines=["uniform", "short"],
                 experiments=["Benchmark", "E1", "E12", "E20"])
    start = time.perf_counter()
    grid = load_grid(path, allow_large=True)
    assert time.perf_counter() - start < 2.0
    assert grid.plans()["E1-short"].epochs < 1_000_000_000
    assert len(grid.trials()) == 2 * 10  # Benchmark, 3 experiments and their 2 twins each
    seeds = load_grid(_grid(tmp_path, seeds=MAX_SEEDS + 1), allow_large=True)
    assert len(seeds.trials()) == MAX_SEEDS + 1


def test_error_lines_are_capped_in_one_place(tmp_path: Path) -> None:
    """Whatever a message holds, the CLI prints one line of at most MAX_ERROR_LINE."""
    line = error_line("lessdata submit", ConfigError("x" * 1_000_000 + "\nsecond line"))
    assert "\n" not in line and len(line) == MAX_ERROR_LINE and line.endswith("…")
    assert error_line("lessdata submit", "short") == "lessdata submit: error: short"
    # Through the entry point: argparse's refusals quote the input too.
    out = run_cli_measured("train", "--selection", "s" * 100_000, cwd=tmp_path).out
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr[:300]
    assert "invalid choice" in out.stderr and len(out.stderr.strip()) <= MAX_ERROR_LINE
