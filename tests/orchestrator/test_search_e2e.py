"""A schedule search through the real CLI on a real local Ray and MLflow: the driver is
SIGKILLed after its first schedule finished, ``lessdata resume`` finishes the search, and
then every trial ran once, every schedule has its parent, the searcher was told each
schedule once, and the report's front is exactly the non-dominated schedules. And a search
whose storage is a bucket (a real S3 API: moto on 127.0.0.1): its study is there, and a
re-submission finds it and runs nothing."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from pydantic import TypeAdapter

from orchestrator.plan import read_plan
from orchestrator.search import journal_prefix, open_journal
from orchestrator.storage import open_store
from tests.conftest import run_cli
from tests.orchestrator.checks import trial_runs, wait_for
from tests.orchestrator.test_faults import _submit_bg, assert_trained_once
from tests.services import RayCluster, ray_cluster
from trainers.schedule import Schedule, evaluations

pytestmark = pytest.mark.slow

NAME, SAMPLES, SEEDS, EPOCHS, TRAIN = "searched", 4, 2, 2, 360


def _grid(path: Path, samples: int = SAMPLES) -> Path:
    path.write_text(yaml.safe_dump({
        "name": NAME, "dataset": "digits", "epochs": EPOCHS, "batch_size": 60,
        "model": {"width": 0.125},
        "training": {"train_subset": TRAIN, "test_subset": 120, "threads": 1},
        "emissions": {"measure_power_secs": 1}, "checkpoint_every": 1, "max_failures": 2,
        "search": {"space": {"method": ["data_step", "data_cut", "piecewise2"],
                             "d": [0.1, 0.9], "e": [0.1, 0.9], "d2": [0.1, 0.9],
                             "e2": [0.1, 0.9], "n": [2, 6]},
                   "samples": samples, "seeds": SEEDS, "concurrent": 4,  # 2 schedules a round
                   "algorithm": "random", "constraint": {"margin": 1.0}},
    }))
    return path


def _finished(client: MlflowClient, label: str) -> int:
    return sum(1 for r in trial_runs(client, NAME)
               if r.data.tags["lessdata.experiment"] == label
               and r.data.tags["lessdata.state"] == "finished")


def _told(store: str | Path) -> dict[int, int]:
    """Optuna trial id -> times the journal holds it told COMPLETE."""
    counts: dict[int, int] = {}
    for op in open_journal(read_plan(NAME, store)).read_logs(0):
        if op["op_code"] == 6 and op["state"] == 1:  # SET_TRIAL_STATE_VALUES, COMPLETE
            counts[op["trial_id"]] = counts.get(op["trial_id"], 0) + 1
    return counts


def test_search_killed_then_resumed_runs_each_trial_once(tmp_path: Path,
                                                         local_ray: RayCluster) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    store = tmp_path / "store"
    proc = _submit_bg(_grid(tmp_path / "s.yaml"), "--tracking-uri", uri, "--address",
                      local_ray.address, "--storage", str(store), cwd=tmp_path)
    wait_for(lambda: _finished(client, "S000") == SEEDS, 600, "the first schedule finished")
    os.killpg(proc.pid, signal.SIGKILL)  # no Ctrl-C, no cleanup
    proc.wait()
    assert _finished(client, f"S{SAMPLES - 1:03d}") == 0  # really mid-search
    out = run_cli("resume", NAME, "--storage", str(store), "--address", local_ray.address,
                  "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["trials"] == SEEDS * (SAMPLES + 1)

    runs = trial_runs(client, NAME)
    labels = ["Benchmark"] + [f"S{i:03d}" for i in range(SAMPLES)]
    keys = sorted(r.data.tags["lessdata.trial_key"] for r in runs)
    assert keys == sorted(f"{NAME}/{e}/seed={s}" for e in labels for s in range(SEEDS))
    adapter = TypeAdapter(Schedule)
    for run in runs:
        assert run.data.tags["lessdata.state"] == "finished", run.data.tags
        schedule = adapter.validate_json(run.data.tags["lessdata.schedule"])
        assert run.data.metrics["evaluations"] == evaluations(schedule, TRAIN, EPOCHS)
    assert_trained_once(client, NAME, store, {}, EPOCHS)
    exp = client.get_experiment_by_name(NAME)
    assert exp is not None
    parents = client.search_runs([exp.experiment_id], "tags.`lessdata.kind` = 'experiment'")
    assert sorted(p.data.tags["lessdata.parent_of"] for p in parents) == labels
    # mean and std over every seed, also for a schedule whose last seed finished just
    # before the kill (its parent is aggregated again on resume)
    seen = {p.data.tags["lessdata.parent_of"]: p.data.metrics for p in parents}
    assert all(m.get("n_seeds") == SEEDS and "best_top1_std" in m for m in seen.values()), seen
    assert _told(store) == dict.fromkeys(range(SAMPLES), 1)  # each schedule told once

    out = run_cli("report", NAME, "--storage", str(store), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    # The front, checked from the runs themselves: mean top-1 and evaluations per schedule.
    mean: dict[str, tuple[float, float]] = {}
    for label in labels:
        mine = [r for r in runs if r.data.tags["lessdata.experiment"] == label]
        mean[label] = (sum(r.data.metrics["evaluations"] for r in mine) / len(mine),
                       sum(r.data.metrics["best_top1"] for r in mine) / len(mine))
    searched = labels[1:]
    expected = {a for a in searched if not any(
        mean[b][0] <= mean[a][0] and mean[b][1] >= mean[a][1] and mean[b] != mean[a]
        for b in searched)}
    front = report["pareto"]
    assert {p["experiment"] for p in front} == expected
    for p in front:
        cost, top1 = mean[p["experiment"]]
        assert p["evaluation_ratio"] == pytest.approx(cost / mean["Benchmark"][0])
        assert p["top1_mean"] == pytest.approx(top1) and p["n"] == SEEDS
        assert p["schedule"] and p["top1_std"] is not None
    assert report["best_constrained"] is None  # 2 seeds: no equivalence claim
    assert report["seeds_needed"] is not None and len(report["points"]) == SAMPLES


def test_a_search_in_a_bucket(tmp_path: Path, s3_env: str) -> None:
    storage, samples = s3_env + "/lessdata", 2
    # Tune's own state stays on the driver's disk; the nodes reach the bucket through the
    # AWS_* variables that ``s3_env`` set here (on KubeRay: the pods' environment).
    env = {"LESSDATA_DRIVER_STATE": str(tmp_path / "driver")}
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    grid = _grid(tmp_path / "s.yaml", samples)
    with ray_cluster(nodes=1, cpus_per_node=2, env=env) as cluster:
        common = ["--tracking-uri", uri, "--address", cluster.address, "--storage", storage,
                  "--json"]
        out = run_cli("submit", str(grid), *common, cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads(out.stdout)["trials"] == SEEDS * (samples + 1)
        assert _told(storage) == dict.fromkeys(range(samples), 1)
        plan = read_plan(NAME, storage)
        # One object for the study's creation, then one per round's asks and one per
        # round's tells (2 schedules a round): not one per Optuna operation.
        batches = open_store(storage).list(journal_prefix(plan))
        assert 2 < len(batches) <= 3 + 2 * samples, batches
        assert not (tmp_path / "runs").exists()  # nothing of the grid on the driver's disk

        again = run_cli("submit", str(grid), *common, cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        summary = json.loads(again.stdout)
        assert summary["finished"] == [] and len(summary["skipped"]) == SEEDS * (samples + 1)
    assert _told(storage) == dict.fromkeys(range(samples), 1)  # nobody told twice
    assert open_store(storage).list(journal_prefix(plan)) == batches  # nothing asked anew
    client = MlflowClient(uri)
    runs = trial_runs(client, NAME)
    assert len(runs) == SEEDS * (samples + 1)
    assert all(r.data.tags["lessdata.state"] == "finished" for r in runs)
