"""End to end: a grid through a real local Ray cluster into a real MLflow server."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import MlflowServer, RayCluster, free_port, run_cli
from trainers.schedule import Piecewise, evaluations

pytestmark = pytest.mark.slow

TRAIN, EPOCHS = 240, 3
STEP = {"method": "piecewise", "breakpoints": [{"at": 0.0, "fraction": 0.5},
                                               {"at": 0.5, "fraction": 1.0}]}
GRID = {
    "name": "e2e",
    "dataset": "digits",
    "epochs": EPOCHS,
    "batch_size": 60,
    "seeds": 2,
    "experiments": ["Benchmark", "E3"],
    "custom": [{"name": "half-first", "schedule": STEP}],
    "model": {"width": 0.125},
    "training": {"train_subset": TRAIN, "test_subset": 120, "threads": 1},
    "emissions": {"measure_power_secs": 1},
    "checkpoint_every": 1,
}


def _write(path: Path, grid: dict) -> Path:
    path.write_text(yaml.safe_dump(grid))
    return path


def _trial_runs(client: MlflowClient, name: str) -> list:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], "tags.`lessdata.kind` = 'trial'")


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer,
              local_ray: RayCluster) -> dict:
    work = tmp_path_factory.mktemp("e2e")
    grid = _write(work / "grid.yaml", GRID)
    out = run_cli("submit", str(grid), "--tracking-uri", mlflow_server.uri, "--address",
                  local_ray.address, "--storage", str(work / "store"), "--json", cwd=work)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.lstrip().startswith("{"), (out.stdout[-2000:], out.stderr[-2000:])
    return {"work": work, "grid": grid, "summary": json.loads(out.stdout)}


def test_one_run_per_trial_with_tags_and_history(submitted: dict,
                                                 mlflow_server: MlflowServer) -> None:
    assert len(submitted["summary"]["finished"]) == 6
    client = MlflowClient(mlflow_server.uri)
    runs = _trial_runs(client, "e2e")
    assert len(runs) == 6
    keys = sorted(r.data.tags["lessdata.trial_key"] for r in runs)
    assert keys == sorted(f"e2e/{e}/seed={s}" for e in ("Benchmark", "E3", "half-first")
                          for s in (0, 1))
    schedules = {"Benchmark": None, "E3": None, "half-first": Piecewise.model_validate(STEP)}
    from trainers.experiments import EXPERIMENTS

    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        exp = tags["lessdata.experiment"]
        assert tags["lessdata.grid"] == "e2e" and tags["lessdata.dataset"] == "digits"
        assert tags["lessdata.seed"] in ("0", "1") and tags["lessdata.selection"] == "fixed"
        assert tags["lessdata.state"] == "finished" and run.info.status == "FINISHED"
        assert tags["lessdata.method"] in ("benchmark", "data_step", "piecewise")
        assert tags["lessdata.node"] and tags["lessdata.hardware"]
        assert run.data.params["epochs"] == str(EPOCHS) and run.data.params["git_sha"]
        history = client.get_metric_history(run.info.run_id, "evaluations")
        assert sorted(m.step for m in history) == [1, 2, 3]  # no step twice
        for name in ("test_top1", "fraction", "samples", "train_loss", "lr", "epoch_s"):
            assert len(client.get_metric_history(run.info.run_id, name)) == EPOCHS
        schedule = schedules[exp] or EXPERIMENTS[exp]
        assert metrics["total_evaluations"] == evaluations(schedule, TRAIN, EPOCHS)
        assert max(m.value for m in history) == metrics["total_evaluations"]
        assert metrics["emissions_kg"] > 0 and metrics["energy_kwh"] > 0
        assert metrics["emissions_estimate_kg"] > 0
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "epochs.csv" in artifacts and "codecarbon" in artifacts


def test_parent_runs_hold_mean_and_std_of_children(submitted: dict,
                                                   mlflow_server: MlflowServer) -> None:
    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("e2e")
    parents = client.search_runs([exp.experiment_id], "tags.`lessdata.kind` = 'experiment'")
    assert len(parents) == 3
    for parent in parents:
        children = client.search_runs(
            [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert len(children) == 2
        for metric in ("best_top1", "train_s", "emissions_kg", "total_evaluations"):
            values = [c.data.metrics[metric] for c in children]
            assert parent.data.metrics[f"{metric}_mean"] == pytest.approx(statistics.fmean(values))
            assert parent.data.metrics[f"{metric}_std"] == pytest.approx(statistics.stdev(values))


def test_report_json_agrees_with_mlflow(submitted: dict, mlflow_server: MlflowServer) -> None:
    out = run_cli("report", "e2e", "--tracking-uri", mlflow_server.uri, "--json",
                  cwd=submitted["work"])
    assert out.returncode == 0, out.stderr
    rows = {r["experiment"]: r for r in json.loads(out.stdout)}
    assert list(rows) == ["Benchmark", "E3", "half-first"]
    client = MlflowClient(mlflow_server.uri)
    for run_exp, row in rows.items():
        runs = [r for r in _trial_runs(client, "e2e")
                if r.data.tags["lessdata.experiment"] == run_exp]
        top1 = [r.data.metrics["best_top1"] for r in runs]
        assert row["n"] == 2
        assert row["top1_mean"] == pytest.approx(statistics.fmean(top1))
        assert row["top1_std"] == pytest.approx(statistics.stdev(top1))
        assert row["evaluations"] == runs[0].data.metrics["total_evaluations"]


def test_resubmitting_a_finished_grid_reruns_nothing(submitted: dict,
                                                     mlflow_server: MlflowServer,
                                                     local_ray: RayCluster) -> None:
    out = run_cli("submit", str(submitted["grid"]), "--tracking-uri", mlflow_server.uri,
                  "--address", local_ray.address, "--storage",
                  str(submitted["work"] / "store"), "--json", cwd=submitted["work"])
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert len(summary["skipped"]) == 6 and summary["finished"] == []
    assert len(_trial_runs(MlflowClient(mlflow_server.uri), "e2e")) == 6


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"experiments": ["Benchmark", "E42"]}, "unknown experiment 'E42'"),
        ({"epochs": 0}, "epochs"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"resources": {"cpu": 1, "gpu": 1}}, "no node of the cluster can run one trial"),
        ({"resources": {"cpu": 64}}, "no node of the cluster can run one trial"),
    ],
)
def test_bad_grids_exit_2_before_any_run(tmp_path: Path, mlflow_server: MlflowServer,
                                         local_ray: RayCluster, change: dict,
                                         needle: str) -> None:
    name = f"bad-{free_port()}"
    grid = _write(tmp_path / "g.yaml", {**GRID, "name": name, **change})
    out = run_cli("submit", str(grid), "--tracking-uri", mlflow_server.uri, "--address",
                  local_ray.address, "--storage", str(tmp_path / "store"), cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    error_lines = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and needle in error_lines[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert _trial_runs(MlflowClient(mlflow_server.uri), name) == []
    assert not (tmp_path / "store" / "checkpoints").exists()


def test_malformed_yaml_and_unreachable_server(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nexperiments: [E1, E2\n")
    out = run_cli("submit", str(bad), cwd=tmp_path)
    assert out.returncode == 2 and "malformed YAML at line" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    good = _write(tmp_path / "g.yaml", GRID)
    dead = f"http://127.0.0.1:{free_port()}"
    out = run_cli("submit", str(good), "--tracking-uri", dead, cwd=tmp_path)
    assert out.returncode == 2 and "unreachable" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pt"))
