"""End to end: a grid through a real local Ray cluster into a real MLflow server."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import MlflowServer, RayCluster, free_port, run_cli
from tests.orchestrator.checks import trial_runs
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
    "training": {"train_subset": TRAIN, "test_subset": 120},
    "placement": {"threads": 1},
    "emissions": {"measure_power_secs": 1},
    "checkpoint_every": 1,
}
# Its 6 trials as two Tune runs in turn (3 + 3), experiments' seeds split between them.
TRIALS_PER_RUN = 3


def _write(path: Path, grid: dict) -> Path:
    path.write_text(yaml.safe_dump(grid))
    return path


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer,
              local_ray: RayCluster) -> dict:
    work = tmp_path_factory.mktemp("e2e")
    grid = _write(work / "grid.yaml", GRID)
    out = run_cli("submit", str(grid), "--tracking-uri", mlflow_server.uri, "--address",
                  local_ray.address, "--storage", str(work / "store"), "--json", cwd=work,
                  env={"LESSDATA_TRIALS_PER_RUN": str(TRIALS_PER_RUN)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.lstrip().startswith("{"), (out.stdout[-2000:], out.stderr[-2000:])
    return {"work": work, "grid": grid, "summary": json.loads(out.stdout)}


def test_a_grid_past_the_trials_per_run_runs_as_tune_runs_in_turn(
        submitted: dict, mlflow_server: MlflowServer) -> None:
    """Tune names a run's trials ``<run prefix>_<n>``: two prefixes, two Tune runs; the
    experiments whose seeds span both still have one parent holding both seeds (the
    parents' test: a mean and std over 2 seeds, each epoch of the seed band once)."""
    runs = trial_runs(MlflowClient(mlflow_server.uri), "e2e")
    by_run: dict[str, set[str]] = {}
    for run in runs:
        prefix = run.data.tags["lessdata.tune_trial_id"].rsplit("_", 1)[0]
        by_run.setdefault(prefix, set()).add(run.data.tags["lessdata.trial_key"])
    assert sorted(map(len, by_run.values())) == [TRIALS_PER_RUN, TRIALS_PER_RUN], by_run
    spanning = [e for e in ("Benchmark", "E3", "half-first")
                if len({p for p, keys in by_run.items()
                        if any(k.startswith(f"e2e/{e}/") for k in keys)}) == 2]
    assert spanning, by_run


def test_one_run_per_trial_with_tags_and_history(submitted: dict,
                                                 mlflow_server: MlflowServer) -> None:
    assert len(submitted["summary"]["finished"]) == 6
    client = MlflowClient(mlflow_server.uri)
    runs = trial_runs(client, "e2e")
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
        assert tags["mlflow.source.git.commit"] == run.data.params["git_sha"]
        assert tags["mlflow.user"] and tags["lessdata.kind"] == "trial"
        assert "None" not in run.data.params.values(), run.data.params
        assert run.data.params["emissions.share"] == str(metrics["emissions_share"])
        assert run.inputs.dataset_inputs[0].dataset.name == "digits"
        # The run lasts as long as its trial: made when it starts, ended when it ends.
        duration_s = (run.info.end_time - run.info.start_time) / 1000
        assert abs(duration_s - metrics["trial_s"]) < 10, (duration_s, metrics["trial_s"])
        history = client.get_metric_history(run.info.run_id, "evaluations")
        assert sorted(m.step for m in history) == [1, 2, 3]  # no step twice
        for name in ("top1", "fraction", "samples", "train_loss", "lr", "epoch_s"):
            assert len(client.get_metric_history(run.info.run_id, name)) == EPOCHS
        for name in ("best_top1", "trial_s", "tracked_s", "epochs_trained"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [EPOCHS]
        assert "total_evaluations" not in metrics  # one name per fact: the series' last value
        schedule = schedules[exp] or EXPERIMENTS[exp]
        assert metrics["evaluations"] == evaluations(schedule, TRAIN, EPOCHS)
        assert max(m.value for m in history) == metrics["evaluations"]
        assert metrics["emissions_kg"] > 0 and metrics["energy_kwh"] > 0
        assert metrics["emissions_estimate_kg"] > 0
        # the clocks apart: training work, test passes, selection; warm-up outside them
        for name in ("train_s", "eval_s", "select_s", "train_cpu_s", "warmup_s"):
            assert metrics[name] >= 0, name
        assert metrics["train_s"] + metrics["eval_s"] < metrics["trial_s"]
        assert metrics["train_gpu_s"] == 0.0  # on CPU
        parts = sum(metrics[f"{p}_energy_kwh"] for p in ("cpu", "gpu", "ram"))
        assert parts == pytest.approx(metrics["energy_kwh"], rel=1e-6)
        assert tags["lessdata.energy_source.ram"].startswith("estimate")
        assert tags["lessdata.energy_source.cpu"].split(":")[0] in ("sensor", "estimate")
        assert tags["lessdata.energy_source.gpu"] == "none"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "epochs.csv" in artifacts and "codecarbon" in artifacts
    # Each worker process warms up before its first trial only (Tune reuses it after).
    warmups = [r.data.metrics["warmup_s"] for r in runs]
    assert any(w > 0 for w in warmups) and any(w == 0 for w in warmups), warmups


def test_parent_runs_hold_mean_and_std_of_children(submitted: dict,
                                                   mlflow_server: MlflowServer) -> None:
    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("e2e")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parents = client.search_runs([exp.experiment_id], "tags.`lessdata.kind` = 'experiment'")
    assert len(parents) == 3
    for parent in parents:
        children = client.search_runs(
            [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert len(children) == 2
        # The same keys as the children: the mean under the child's name, the std beside.
        for metric in ("best_top1", "train_s", "emissions_kg", "trial_s"):
            values = [c.data.metrics[metric] for c in children]
            assert parent.data.metrics[metric] == pytest.approx(statistics.fmean(values))
            assert parent.data.metrics[f"{metric}_std"] == pytest.approx(statistics.stdev(values))
        assert parent.data.metrics["n_seeds"] == 2
        for name in ("top1", "top1_std", "evaluations"):  # the UI's seed band
            series = client.get_metric_history(parent.info.run_id, name)
            assert sorted(m.step for m in series) == list(range(1, EPOCHS + 1)), name
        per_epoch = {m.step: m.value for m in client.get_metric_history(parent.info.run_id,
                                                                         "top1")}
        child_top1 = [{m.step: m.value for m in client.get_metric_history(c.info.run_id,
                                                                          "top1")}
                      for c in children]
        for step, mean in per_epoch.items():
            assert mean == pytest.approx(statistics.fmean(c[step] for c in child_top1))
        tags, params = parent.data.tags, parent.data.params
        assert "lessdata.experiment" not in tags and tags["lessdata.parent_of"]
        assert params["epochs"] == str(EPOCHS) and "seed" not in params
        assert "None" not in params.values() and tags["mlflow.source.git.commit"]
        assert parent.info.status == "FINISHED"


def test_report_json_agrees_with_mlflow(submitted: dict, mlflow_server: MlflowServer) -> None:
    out = run_cli("report", "e2e", "--tracking-uri", mlflow_server.uri, "--json",
                  cwd=submitted["work"])
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert isinstance(report["runtime_comparable"], bool) and report["runtime_note"]
    assert report["runtime_cpu_note"] and report["margin"] == 0.1
    rows = {r["experiment"]: r for r in report["experiments"]}
    assert list(rows) == ["Benchmark", "E3", "half-first"]
    e3 = rows["E3"]
    from trainers.experiments import EXPERIMENTS

    full = evaluations(EXPERIMENTS["Benchmark"], TRAIN, EPOCHS)
    assert e3["evaluation_ratio"] == pytest.approx(evaluations(EXPERIMENTS["E3"], TRAIN,
                                                               EPOCHS) / full)
    assert e3["runtime_ratio"] > 0 and e3["cpu_ratio"] > 0 and e3["train_s_mean"] > 0
    for key in ("p_paired", "p_holm", "tost_p", "equivalent", "ci95_low", "ci95_high", "n"):
        assert key in e3
    client = MlflowClient(mlflow_server.uri)
    for run_exp, row in rows.items():
        runs = [r for r in trial_runs(client, "e2e")
                if r.data.tags["lessdata.experiment"] == run_exp]
        top1 = [r.data.metrics["best_top1"] for r in runs]
        assert row["n"] == 2
        assert row["top1_mean"] == pytest.approx(statistics.fmean(top1))
        assert row["top1_std"] == pytest.approx(statistics.stdev(top1))
        assert row["evaluations"] == runs[0].data.metrics["evaluations"]


def test_resubmitting_a_finished_grid_reruns_nothing(submitted: dict,
                                                     mlflow_server: MlflowServer,
                                                     local_ray: RayCluster) -> None:
    out = run_cli("submit", str(submitted["grid"]), "--tracking-uri", mlflow_server.uri,
                  "--address", local_ray.address, "--storage",
                  str(submitted["work"] / "store"), "--json", cwd=submitted["work"])
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert len(summary["skipped"]) == 6 and summary["finished"] == []
    assert len(trial_runs(MlflowClient(mlflow_server.uri), "e2e")) == 6


def test_status_and_report_from_another_folder_read_the_plan(
        submitted: dict, tmp_path: Path) -> None:
    store = str(submitted["work"] / "store")
    out = run_cli("status", "e2e", "--storage", store, "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    status = json.loads(out.stdout)
    assert status["counts"]["finished"] == 6 and len(status["trials"]) == 6
    out = run_cli("report", "e2e", "--storage", store, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "half-first" in out.stdout and "#/experiments/" in out.stdout
    assert not (tmp_path / "runs").exists()  # no empty store made in the other folder


def test_resume_runs_the_plan_not_the_edited_grid_file(submitted: dict,
                                                       mlflow_server: MlflowServer,
                                                       local_ray: RayCluster,
                                                       tmp_path: Path) -> None:
    _write(submitted["grid"], {**GRID, "epochs": EPOCHS + 2, "seeds": 3})
    try:
        out = run_cli("resume", "e2e", "--storage", str(submitted["work"] / "store"),
                      "--address", local_ray.address, "--json", cwd=tmp_path)
    finally:
        _write(submitted["grid"], GRID)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert len(summary["skipped"]) == 6 and summary["finished"] == [], summary
    assert len(trial_runs(MlflowClient(mlflow_server.uri), "e2e")) == 6


@pytest.mark.parametrize(
    ("change", "needle", "code"),
    [
        ({"experiments": ["Benchmark", "E42"]}, "unknown experiment 'E42'", 2),
        ({"epochs": 0}, "epochs", 2),
        ({"unknown_key": 1}, "unknown_key", 2),
        # The cluster cannot run it: the environment, exit 3.
        ({"resources": {"cpu": 1, "gpu": 1}}, "no node of the cluster can run one trial", 3),
        ({"resources": {"cpu": 1, "gpu": 1}, "placement": {"device": "cuda"}},
         "no node of the cluster can run one trial", 3),
        ({"resources": {"cpu": 64}}, "no node of the cluster can run one trial", 3),
    ],
)
def test_bad_grids_refused_before_any_run(tmp_path: Path, mlflow_server: MlflowServer,
                                          local_ray: RayCluster, change: dict,
                                          needle: str, code: int) -> None:
    name = f"bad-{free_port()}"
    grid = _write(tmp_path / "g.yaml", {**GRID, "name": name, **change})
    out = run_cli("submit", str(grid), "--tracking-uri", mlflow_server.uri, "--address",
                  local_ray.address, "--storage", str(tmp_path / "store"), cwd=tmp_path)
    assert out.returncode == code, out.stderr[-2000:]
    error_lines = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and needle in error_lines[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert trial_runs(MlflowClient(mlflow_server.uri), name) == []
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
    assert out.returncode == 3 and "unreachable" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pt"))
