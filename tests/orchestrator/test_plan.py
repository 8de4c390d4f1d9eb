"""The plan is the record: written by submit, read by resume, status and report."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from orchestrator.plan import Plan, PlanOptions, make_plan, plan_path, read_plan, write_plan
from tests.conftest import run_cli

GRID = {"name": "planned", "dataset": "digits", "epochs": 2, "seeds": 2,
        "experiments": ["Benchmark", "E3"], "training": {"train_subset": 100_000, "lr_min": 0.01},
        "placement": {"threads": 1}}


def _plan(tmp_path: Path) -> Plan:
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(GRID))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return make_plan(PlanOptions(grid=str(grid), tracking_uri=uri, storage=tmp_path / "store"))


def test_the_plan_round_trips_and_ignores_a_later_edit(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    path = Path(write_plan(plan))
    assert path == Path(plan_path("planned", tmp_path / "store"))
    assert not list(path.parent.glob(".*partial-*"))  # written then renamed
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump({**GRID, "epochs": 9}))
    again = read_plan("planned", tmp_path / "store")
    assert again == plan
    assert {t.config.epochs for t in again.trials} == {2}
    assert again.trials[0].config.lr_min == 0.01  # every recipe field settable from a grid
    # train_subset beyond the data set: the whole set (as every trial trains on)
    assert again.grid.train_size() < 100_000


def test_status_lists_pending_trials_from_the_plan_from_another_folder(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    write_plan(plan)
    # the store must exist for a reading command (it never makes an empty one)
    from orchestrator import record

    record.experiment_id(record.client(plan.tracking_uri), "planned", create=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run_cli("status", "planned", "--storage", str(tmp_path / "store"), "--json",
                  cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["counts"]["pending"] == 4 and len(status["trials"]) == 4
    assert {t["epochs"] for t in status["trials"]} == {2}


def test_resume_of_an_unknown_grid_names_the_storage(tmp_path: Path) -> None:
    out = run_cli("resume", "nothing-here", "--storage", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "--storage" in out.stderr, out.stderr


SAME = {"name": "same", "dataset": "digits", "epochs": 4, "seeds": 2,
        "experiments": ["Benchmark", "E5", "E13"],
        "custom": [{"name": "mine", "schedule": {"method": "data_step", "d": 0.5, "e": 0.5}},
                   {"name": "E5-per-epoch", "experiment": "E5", "selection": "per_epoch"},
                   {"name": "E5-longer", "experiment": "E5", "epochs": 6}],
        "training": {"train_subset": 100}, "placement": {"threads": 1}}


def test_identical_schedules_are_one_trial_per_seed_and_the_plan_keeps_the_aliases(
        tmp_path: Path) -> None:
    grid = tmp_path / "same.yaml"
    grid.write_text(yaml.safe_dump(SAME))
    plan = make_plan(PlanOptions(grid=str(grid), tracking_uri=f"sqlite:///{tmp_path}/m.db",
                                 storage=tmp_path / "store"))
    # E13 (Data Cut n = 2) and a custom Data Step 50%/50% are E5; another selection or
    # other epochs are not.
    assert [(c.representative, c.others) for c in plan.identical] == [("E5", ("E13", "mine"))]
    assert plan.aliases()["mine"].notes() == ["E13: same schedule as E5 at E = 4",
                                              "mine: same schedule as E5 at E = 4"]
    ran = sorted({t.experiment for t in plan.trials})
    assert ran == ["Benchmark", "E5", "E5-longer", "E5-per-epoch"]
    assert len(plan.trials) == 4 * 2
    write_plan(plan)
    assert read_plan("same", tmp_path / "store") == plan


def test_one_recipe_per_grid_so_e13_stays_e5_whatever_the_recipe() -> None:
    from orchestrator.grid import Grid
    from orchestrator.plan import identical_schedules

    grid = Grid.model_validate({**SAME, "custom": []})
    assert [c.names for c in identical_schedules(grid)] == [("E5", "E13")]
    # anneal is part of the recipe; with one value for the whole grid it still coincides
    annealed = Grid.model_validate({**SAME, "custom": [], "training": {"anneal": 0.5}})
    assert [c.names for c in identical_schedules(annealed)] == [("E5", "E13")]

def test_the_plan_runs_trials_interleaved_from_the_grid_order_seed(tmp_path: Path) -> None:
    grid = {**GRID, "experiments": ["Benchmark", "E1", "E2", "E3", "E4", "E5"], "seeds": 3}
    plans = {}
    for order_seed in (0, 0, 5):
        path = tmp_path / f"grid-{order_seed}.yaml"
        path.write_text(yaml.safe_dump({**grid, "order_seed": order_seed}))
        plans.setdefault(order_seed, []).append(make_plan(PlanOptions(
            grid=str(path), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
            storage=tmp_path / "store")))
    (a, again), (other,) = plans[0], plans[5]
    order = [(t.seed, t.experiment) for t in a.trials]
    assert order == [(t.seed, t.experiment) for t in again.trials]  # reproducible
    assert order != [(t.seed, t.experiment) for t in other.trials]  # from the grid's seed
    assert [seed for seed, _ in order] == sorted(seed for seed, _ in order)  # seed-major
    blocks = [[e for s, e in order if s == seed] for seed in range(3)]
    ran = sorted({e for _, e in order})  # identical schedules (at E = 2) run once
    assert all(sorted(b) == ran for b in blocks) and len(ran) >= 3
    assert blocks != [[e for e in grid["experiments"] if e in ran]] * 3  # shuffled per seed
    assert a.grid.order_seed == 0 and other.grid.order_seed == 5  # recorded in the plan
    write_plan(other)
    assert read_plan("planned", tmp_path / "store").trials == other.trials
