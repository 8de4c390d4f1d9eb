"""Grids: per-experiment overrides and budget-matched baselines (twins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.baselines import planned_evaluations, short_epochs, uniform_schedule
from orchestrator.grid import Grid, load_grid, shipped_grids
from trainers.errors import ConfigError
from trainers.experiments import EXPERIMENTS
from trainers.schedule import Benchmark, Piecewise, evaluations
from trainers.train import lr_at


def _grid(tmp_path: Path, **kw: Any) -> Grid:
    raw = {"name": "g", "dataset": "mnist", "epochs": 8, "seeds": 2,
           "experiments": ["Benchmark", "E3"]}
    raw.update(kw)
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_grid(path)


@pytest.mark.parametrize("name", sorted(shipped_grids()))
def test_every_shipped_grid_validates(name: str) -> None:
    grid = load_grid(name)
    assert grid.trials()


def test_a_grid_without_the_new_keys_is_unchanged(tmp_path: Path) -> None:
    grid = _grid(tmp_path, custom=[{"name": "ramp", "schedule": {
        "method": "piecewise", "breakpoints": [{"at": 0.0, "fraction": 0.5}]}}])
    assert grid.baselines == [] and list(grid.plans()) == ["Benchmark", "E3", "ramp"]
    assert all(t.config.epochs == 8 and t.config.selection == "fixed" for t in grid.trials())
    assert len(grid.trials()) == 6


def test_custom_experiment_overrides_selection_and_epochs(tmp_path: Path) -> None:
    grid = _grid(tmp_path, custom=[
        {"name": "E3-loss_soft", "experiment": "e3", "selection": "loss_soft"},
        {"name": "long", "schedule": {"method": "benchmark"}, "epochs": 12},
    ])
    configs = {t.experiment: t.config for t in grid.trials() if t.seed == 0}
    assert configs["E3-loss_soft"].schedule == EXPERIMENTS["E3"]
    assert configs["E3-loss_soft"].selection == "loss_soft"
    assert configs["E3"].selection == "fixed"
    assert configs["long"].epochs == 12 and configs["E3"].epochs == 8


@pytest.mark.parametrize("custom, match", [
    ({"name": "x"}, "exactly one of 'schedule' and 'experiment'"),
    ({"name": "x", "experiment": "E3", "schedule": {"method": "benchmark"}}, "exactly one"),
    ({"name": "x", "experiment": "E99"}, "unknown experiment 'E99'"),
    ({"name": "x", "experiment": "E3", "selection": "smart"}, "selection"),
    ({"name": "x", "experiment": "E3", "epochs": 0}, "epochs"),
])
def test_bad_custom_experiments(tmp_path: Path, custom: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _grid(tmp_path, custom=[custom])


def test_baselines_add_twins_of_every_reduced_experiment(tmp_path: Path) -> None:
    grid = _grid(tmp_path, experiments=["Benchmark", "E1", "E3"], baselines=["uniform", "short"],
                 training={"train_subset": 6000})
    plans = grid.plans()
    assert list(plans) == ["Benchmark", "E1", "E3", "E1-uniform", "E1-short",
                           "E3-uniform", "E3-short"]  # none for the Benchmark (all data)
    assert plans["E3-uniform"].twin_of == "E3" and plans["E3"].twin_of is None
    # E3 on 8 epochs: 6 x 1500 + 2 x 6000 = 21000 = 0.4375 x 8 x 6000 images.
    assert plans["E3-uniform"].schedule == Piecewise(breakpoints=[{"at": 0.0,
                                                                   "fraction": 0.4375}])
    assert plans["E3-short"].schedule == Benchmark() and plans["E3-short"].epochs == 4  # 3.5
    assert plans["E3-uniform"].epochs == 8
    assert len(grid.trials()) == 7 * 2


def test_only_the_requested_baselines(tmp_path: Path) -> None:
    grid = _grid(tmp_path, baselines=["short"])
    assert list(grid.plans()) == ["Benchmark", "E3", "E3-short"]


def test_short_twin_keeps_the_per_epoch_learning_rate(tmp_path: Path) -> None:
    grid = _grid(tmp_path, baselines=["short"])
    short, e3 = grid.train_config("E3-short", 0), grid.train_config("E3", 0)
    assert short.epochs < e3.epochs
    assert [lr_at(short, t) for t in range(short.epochs)] == [lr_at(e3, t)
                                                              for t in range(short.epochs)]
    assert short.model_dump(exclude={"epochs", "schedule", "experiment"}) == e3.model_dump(
        exclude={"epochs", "schedule", "experiment"})


@pytest.mark.parametrize("n", [1437, 6000, 50_000, 60_000])
@pytest.mark.parametrize("epochs", [1, 3, 4, 7, 300])
def test_twins_train_on_as_many_images_within_rounding(n: int, epochs: int) -> None:
    for name, schedule in EXPERIMENTS.items():
        total = evaluations(schedule, n, epochs)
        uniform = evaluations(uniform_schedule(total, n, epochs, "fixed", 0.875), n, epochs)
        assert abs(uniform - total) <= epochs / 2, (name, uniform, total)
        short = short_epochs(total, n) * n
        assert abs(short - total) <= n / 2 or (short == n and total < n / 2), name


def test_twins_of_an_annealed_strategy_keep_its_full_epochs() -> None:
    n, epochs = 1000, 8  # loss_soft with anneal 0.75: epochs 6 and 7 train on all the data
    schedule = EXPERIMENTS["E1"]  # d=25% for the first 2 epochs
    total = planned_evaluations(schedule, "loss_soft", 0.75, n, epochs)
    assert total == 2 * 250 + 6 * 1000
    twin = uniform_schedule(total, n, epochs, "loss_soft", 0.75)
    assert abs(planned_evaluations(twin, "loss_soft", 0.75, n, epochs) - total) <= epochs / 2


def test_twins_use_the_training_set_after_train_subset(tmp_path: Path) -> None:
    small = _grid(tmp_path, baselines=["short"], epochs=300, training={"train_subset": 6000})
    full = _grid(tmp_path, baselines=["short"], epochs=300)
    assert small.train_size() == 6000 and full.train_size() == 60_000
    assert small.plans()["E3-short"].epochs == full.plans()["E3-short"].epochs == 131
    huge = _grid(tmp_path, baselines=["short"], training={"train_subset": 10**9})
    assert huge.train_size() == 60_000


def test_a_twin_name_that_is_taken_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'E3-short', which the grid already uses"):
        _grid(tmp_path, baselines=["short"],
              custom=[{"name": "E3-short", "schedule": {"method": "benchmark"}}])
    with pytest.raises(ConfigError, match="baselines"):
        _grid(tmp_path, baselines=["uniform", "uniform"])
    with pytest.raises(ConfigError, match="baselines"):
        _grid(tmp_path, baselines=["longer"])


def test_budget_matched_grid_has_both_twins_of_e1_to_e9() -> None:
    grid = load_grid("budget-matched")
    names = list(grid.plans())
    for k in range(1, 10):
        assert f"E{k}-uniform" in names and f"E{k}-short" in names
    assert len(names) == 10 + 18 and len(grid.trials()) == 28 * 5


def test_informed_grid_compares_random_with_loss_soft() -> None:
    grid = load_grid("informed")
    selections = {name: plan.selection for name, plan in grid.plans().items()}
    assert selections == {"Benchmark": "fixed", "E3": "fixed", "E6": "fixed",
                          "E3-loss_soft": "loss_soft", "E6-loss_soft": "loss_soft"}


def test_results_mnist_grid_writes_out_the_generated_twins_of_e3() -> None:
    grid = load_grid(Path(__file__).resolve().parents[2] / "docs" / "results-mnist.yaml")
    generated = grid.model_copy(update={"baselines": ["uniform", "short"],
                                        "custom": grid.custom[:1]}).plans()
    plans = grid.plans()
    for twin in ("E3-uniform", "E3-short"):
        assert plans[twin].schedule == generated[twin].schedule
        assert plans[twin].epochs == generated[twin].epochs
        assert plans[twin].selection == generated[twin].selection == "fixed"


BASE = {"name": "g", "dataset": "digits", "epochs": 2, "experiments": ["Benchmark"]}


def test_training_is_a_partial_train_config() -> None:
    from orchestrator.recipe import GRID_FIELDS, PLACEMENT_FIELDS, Training
    from trainers.config import TrainConfig

    recipe = set(TrainConfig.model_fields) - set(GRID_FIELDS) - set(PLACEMENT_FIELDS)
    assert set(Training.model_fields) == recipe and {"lr_min", "ema_warmup"} <= recipe
    grid = Grid.model_validate({**BASE, "training": {"lr_min": 0.01, "ema_warmup": False}})
    config = grid.trials()[0].config
    assert config.lr_min == 0.01 and config.ema_warmup is False
    with pytest.raises(ValueError, match="greater than 0"):
        Grid.model_validate({**BASE, "training": {"lr": 0}})


def test_placement_is_its_own_section_and_the_shorthand_moves_there() -> None:
    grid = Grid.model_validate({**BASE, "data_dir": "/d", "training": {"threads": 2}})
    assert grid.placement.threads == 2 and str(grid.placement.data_dir) == "/d"
    assert grid.trials()[0].config.threads == 2
    explicit = Grid.model_validate({**BASE, "training": {"threads": 2},
                                    "placement": {"threads": 3}})
    assert explicit.placement.threads == 3


def test_source_is_paper_only_for_the_papers_experiments_with_fixed_selection(
        tmp_path: Path) -> None:
    grid = _grid(tmp_path, experiments=["Benchmark", "E3", "E13"], baselines=["uniform"],
                 custom=[{"name": "E3-again", "experiment": "E3"}])
    sources = {t.experiment: t.source for t in grid.trials() if t.seed == 0}
    assert sources == {"Benchmark": "paper", "E3": "paper", "E13": "ours", "E3-again": "ours",
                       "E3-uniform": "ours", "E13-uniform": "ours", "E3-again-uniform": "ours"}
    other = _grid(tmp_path, selection="per_epoch")
    assert {t.source for t in other.trials()} == {"ours"}
