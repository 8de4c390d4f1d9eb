"""End to end: identical schedules run once (real CLI, local Ray, real MLflow server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import MlflowServer, RayCluster, run_cli

pytestmark = pytest.mark.slow

GRID = {
    "name": "same-schedule",
    "dataset": "digits",
    "epochs": 2,
    "batch_size": 60,
    "seeds": 1,
    "experiments": ["E5", "E13"],
    "model": {"width": 0.125},
    "training": {"train_subset": 120, "test_subset": 60},
    "placement": {"threads": 1},
    "emissions": {"enabled": False},
}
NOTE = "E13: same schedule as E5 at E = 2"


def test_e5_and_e13_run_one_trial_reported_under_both_names(
        tmp_path: Path, mlflow_server: MlflowServer, local_ray: RayCluster) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(GRID))
    store = str(tmp_path / "store")
    out = run_cli("submit", str(grid), "--tracking-uri", mlflow_server.uri, "--address",
                  local_ray.address, "--storage", store, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert NOTE in out.stdout and "1 trials in all" in out.stdout, out.stdout

    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("same-schedule")
    runs = client.search_runs([exp.experiment_id], "tags.`lessdata.kind` = 'trial'")
    assert [r.data.tags["lessdata.experiment"] for r in runs] == ["E5"]  # no compute twice
    assert runs[0].data.tags["lessdata.source"] == "paper"
    parents = client.search_runs([exp.experiment_id], "tags.`lessdata.kind` = 'experiment'")
    assert [p.data.tags["lessdata.parent_of"] for p in parents] == ["E5"]
    assert parents[0].data.tags["lessdata.source"] == "paper"

    out = run_cli("report", "same-schedule", "--storage", store, "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r["experiment"]: r for r in json.loads(out.stdout)["experiments"]}
    assert list(rows) == ["E5", "E13"]
    assert rows["E13"]["same_as"] == "E5" and rows["E13"]["note"] == NOTE
    assert rows["E13"]["top1_mean"] == rows["E5"]["top1_mean"]
    assert rows["E13"]["source"] == "ours" and rows["E5"]["source"] == "paper"
    out = run_cli("report", "same-schedule", "--storage", store, cwd=tmp_path)
    assert "E13 = E5" in out.stdout and NOTE in out.stdout and "n=2 (ours)" in out.stdout

    out = run_cli("status", "same-schedule", "--storage", store, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "finished=1" in out.stdout
    alias = [line for line in out.stdout.splitlines() if "same-schedule/E13/seed=0" in line]
    assert len(alias) == 1 and "same schedule: same-schedule/E5/seed=0" in alias[0]
