"""Identities that cannot collide or be injected, configs that cannot drift, one driver per
grid (real CLI, real local Ray, real MLflow server)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.plan import PlanOptions, make_plan, plan_path, read_plan, storage_name
from tests.conftest import BIN, MlflowServer, run_cli
from trainers.errors import ConfigError

TINY = {"dataset": "digits", "epochs": 1, "seeds": 1, "batch_size": 64,
        "model": {"width": 0.125}, "training": {"train_subset": 200, "test_subset": 100},
        "placement": {"threads": 1}, "emissions": {"enabled": False}}


def _grid(tmp: Path, name: str, **change: object) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "experiments": ["Benchmark"], **TINY,
                                    **change}))
    return path


def test_storage_names_never_collide() -> None:
    # a slug alone maps these pairs onto one folder
    pairs = [("abc/x_y/seed=0", "abc_x/y/seed=0"), ("é/E1/seed=0", "ü/E1/seed=0"),
             ("grid a/E1", "grid_a/E1")]
    for a, b in pairs:
        assert storage_name(a) != storage_name(b)
    assert storage_name("demo/E1/seed=0") == storage_name("demo/E1/seed=0")
    assert storage_name("x" * 500).startswith("x" * 60 + "-") and len(storage_name("x" * 500)) < 80


def test_trials_of_two_grids_with_sliding_names_get_their_own_folders(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/m.db"
    custom = lambda name: [{"name": name, "experiment": "E1"}]  # noqa: E731
    a = make_plan(PlanOptions(grid=str(_grid(tmp_path, "abc", custom=custom("x_y"))),
                              tracking_uri=uri, storage=tmp_path / "s"))
    b = make_plan(PlanOptions(grid=str(_grid(tmp_path, "abc_x", custom=custom("y"))),
                              tracking_uri=uri, storage=tmp_path / "s"))
    folders_a = {t.checkpoint_dir for t in a.trials}
    folders_b = {t.checkpoint_dir for t in b.trials}
    assert not folders_a & folders_b
    assert plan_path("abc", tmp_path / "s") != plan_path("abc_x", tmp_path / "s")


@pytest.mark.parametrize("name", ["x' OR tags.a = 'b", "trailing\\", "a" * 300, "../etc",
                                  "spaced name", ""])
def test_hostile_names_are_refused_in_one_line(tmp_path: Path, name: str) -> None:
    out = run_cli("submit", str(_grid(tmp_path, "ok")), "--name", name,
                  "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--storage",
                  str(tmp_path / "s"), cwd=tmp_path, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-2000:]
    assert "a grid name is 1-64 letters, digits" in lines[0] and len(lines[0]) < 300
    assert not (tmp_path / "m.db").exists()  # refused before any store was made


def test_a_damaged_grid_record_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "s"
    path = Path(plan_path("broken", store))
    path.parent.mkdir(parents=True)
    for damage in (b'{"name": "broken"}', b"\x00\xff\xfe binary", b'{"name": 3, "grid": []}'):
        path.write_bytes(damage)
        with pytest.raises(ConfigError, match="the record of grid 'broken' at .* is damaged"):
            read_plan("broken", store)
    path.unlink()
    path.mkdir()  # a folder where the record should be
    with pytest.raises(ConfigError, match="is damaged"):
        read_plan("broken", store)


@pytest.mark.slow
def test_changed_settings_are_refused_and_two_drivers_never_run_one_grid(
        tmp_path: Path, mlflow_server: MlflowServer) -> None:
    grid = _grid(tmp_path, "driven", experiments=["Benchmark", "E3"], seeds=2, epochs=2)
    args = ["--tracking-uri", mlflow_server.uri, "--storage", str(tmp_path / "s"), "--json"]
    cmd = [str(BIN / "lessdata"), "submit", str(grid), *args]
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    lease_dir = tmp_path / "s" / "leases"
    deadline = time.monotonic() + 120
    while not (lease_dir.exists() and list(lease_dir.glob("*.json"))):
        assert time.monotonic() < deadline and first.poll() is None, "no lease taken"
        time.sleep(0.1)
    second = run_cli("submit", str(grid), *args, cwd=tmp_path, timeout=300)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    lines = second.stderr.strip().splitlines()
    assert second.returncode != 0 and len(lines) == 1, second.stderr[-2000:]
    assert "is being run by another driver (host " in lines[0] and f"pid {first.pid}" in lines[0]
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("driven")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`lessdata.kind` = 'trial'")
    assert len(runs) == 4  # 2 experiments x 2 seeds, each trained once
    assert json.loads(out)["finished"] and not list(lease_dir.glob("*.json"))  # released

    # the same name with other settings: refused, naming what changed; nothing re-run
    again = run_cli("submit", str(grid), *args, "--epochs", "3", cwd=tmp_path, timeout=300)
    assert again.returncode == 2, again.stderr[-2000:]
    assert ("grid 'driven' was submitted before with other settings (epochs)"
            in again.stderr), again.stderr
    same = run_cli("submit", str(grid), *args, cwd=tmp_path, timeout=300)
    assert same.returncode == 0 and len(json.loads(same.stdout)["skipped"]) == 4, same.stderr
