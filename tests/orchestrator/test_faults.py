"""Faults survived with real components: nothing lost, nothing duplicated, nothing
trained twice (a trial cut off mid-way continues from its checkpoint)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from tests.conftest import BIN, run_cli
from tests.orchestrator.checks import assert_complete, epochs_logged, trial_runs, wait_for
from tests.services import RayCluster, mlflow_server_at, ray_cluster
from trainers.config import TrainConfig

pytestmark = pytest.mark.slow

TRAIN, EPOCHS = 360, 5
OUTAGE_TRAIN, OUTAGE_EPOCHS = 1200, 8


def _grid(path: Path, name: str, experiments: list[str], seeds: int = 1,
          epochs: int = EPOCHS, train: int = TRAIN, **extra: object) -> Path:
    grid = {
        "name": name, "dataset": "digits", "epochs": epochs, "batch_size": 60, "seeds": seeds,
        "experiments": experiments, "model": {"width": 0.125},
        "training": {"train_subset": train, "test_subset": 120, "threads": 1},
        "emissions": {"measure_power_secs": 1}, "checkpoint_every": 1, "max_failures": 2,
        **extra,
    }
    path.write_text(yaml.safe_dump(grid))
    return path


def _epoch_seconds(client: MlflowClient, grid: str) -> dict[str, dict[int, float]]:
    """Trial key -> {epoch: epoch_s} as MLflow holds it now."""
    return {
        run.data.tags["lessdata.trial_key"]: {
            m.step: m.value for m in client.get_metric_history(run.info.run_id, "epoch_s")}
        for run in trial_runs(client, grid)
    }


def _trained_epoch_seconds(store: Path, grid: str) -> dict[str, dict[int, float]]:
    """Trial key -> {epoch: epoch_s} from each trial's final checkpoint: the trainer's own
    record of the epochs it trained (a restored trainer keeps the record it restored)."""
    out = {}
    for path in store.rglob("trainer.pt"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        config = TrainConfig.model_validate_json(state["config"])
        key = f"{grid}/{config.experiment}/seed={config.seed}"
        out[key] = {row["epoch"]: row["epoch_s"] for row in state["history"]}
    return out


def assert_trained_once(client: MlflowClient, grid: str, store: Path,
                        before: dict[str, dict[int, float]], epochs: int) -> None:
    """Each epoch of each trial was trained once, and what was trained before the fault was
    kept: the epoch times MLflow holds are the ones in the trainer's final record, and the
    epochs logged before the fault keep the times they were logged with then. A trial that
    retrained from epoch 0 would have timed those epochs again (the driver skips steps
    MLflow already holds, so only the checkpoint shows it)."""
    trained = _trained_epoch_seconds(store, grid)
    logged = _epoch_seconds(client, grid)
    assert trained.keys() == logged.keys(), (trained.keys(), logged.keys())
    for key, seconds in trained.items():
        assert sorted(seconds) == list(range(1, epochs + 1)), (key, seconds)
        assert logged[key] == seconds, key
        kept = {step: seconds[step] for step in before.get(key, {})}
        assert kept == before.get(key, {}), (key, "retrained after the fault")


def _submit_bg(grid: Path, *args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "lessdata"), "submit", str(grid), "--json", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_mlflow_server_restarted_mid_grid(tmp_path: Path, local_ray: RayCluster) -> None:
    with mlflow_server_at(tmp_path / "mlflow") as server:
        client = MlflowClient(server.uri)
        # Epochs long enough that some finish while the server is away (a few seconds).
        grid = _grid(tmp_path / "g.yaml", "outage", ["Benchmark", "E3"], epochs=OUTAGE_EPOCHS,
                     train=OUTAGE_TRAIN)
        proc = _submit_bg(grid, "--tracking-uri", server.uri, "--address", local_ray.address,
                          "--storage", str(tmp_path / "store"), cwd=tmp_path)
        wait_for(lambda: any(v >= 1 for v in epochs_logged(client, "outage").values()),
                 180, "a first epoch in MLflow")
        server.stop()  # the tracking server goes away mid-grid ...
        down_ms = time.time() * 1000
        time.sleep(12)
        up_ms = time.time() * 1000
        server.start()  # ... and comes back on the same address and store
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err[-3000:]
        assert len(json.loads(out)["finished"]) == 2
        assert_complete(client, "outage", ["Benchmark", "E3"], 1, OUTAGE_TRAIN, OUTAGE_EPOCHS)
        # Epochs finished while the server was away were queued (a metric's timestamp is
        # when the driver logged it) and reached the server after it came back.
        logged_ms = [m.timestamp for run in trial_runs(client, "outage")
                     for m in client.get_metric_history(run.info.run_id, "evaluations")]
        queued = [t for t in logged_ms if down_ms <= t <= up_ms]
        assert queued, ("no epoch finished during the outage: nothing was queued",
                        [t - down_ms for t in sorted(logged_ms)], up_ms - down_ms)
        assert_trained_once(client, "outage", tmp_path / "store", {}, OUTAGE_EPOCHS)


def test_driver_sigkilled_then_resume(tmp_path: Path, local_ray: RayCluster) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    store = tmp_path / "store"
    grid = _grid(tmp_path / "g.yaml", "killed", ["Benchmark", "E1"], seeds=2)
    proc = _submit_bg(grid, "--tracking-uri", uri, "--address", local_ray.address,
                      "--storage", str(store), cwd=tmp_path)
    wait_for(lambda: any(v >= 2 for v in epochs_logged(client, "killed").values()),
             180, "two epochs of a trial in MLflow")
    os.killpg(proc.pid, signal.SIGKILL)  # no Ctrl-C, no cleanup
    proc.wait()
    before = epochs_logged(client, "killed")
    assert any(0 < v < EPOCHS for v in before.values()), before  # really mid-grid
    seconds_before = _epoch_seconds(client, "killed")
    out = run_cli("resume", "killed", "--storage", str(store), "--address", local_ray.address,
                  "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    done_before = {k for k, v in before.items() if v == EPOCHS}
    assert set(summary["skipped"]) <= done_before  # finished trials are not re-run
    assert_complete(client, "killed", ["Benchmark", "E1"], 2, TRAIN, EPOCHS)
    assert_trained_once(client, "killed", store, seconds_before, EPOCHS)


def _worker_node_id(address: str) -> str:
    script = ("import ray,sys,json; ray.init(address=sys.argv[1], logging_level='ERROR');"
              "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive'] "
              "and 'head-node' not in n['Resources']]))")
    out = subprocess.run([str(BIN / "python"), "-c", script, address], capture_output=True,
                         text=True, timeout=120)
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(ids) == 1, out
    return str(ids[0])


NODE_EPOCHS = 16


def test_worker_node_killed_mid_trial(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    with ray_cluster(nodes=2, cpus_per_node=1,
                     head_extra=['--resources={"head-node": 1}']) as cluster:
        worker_id = _worker_node_id(cluster.address)
        # Long enough (16 epochs of 1,200 images, ~0.4 s each) that the trial caught at most
        # half-way (its checkpoint) cannot finish on the worker before the kill lands.
        grid = _grid(tmp_path / "g.yaml", "nodeloss", ["Benchmark", "E5"], epochs=NODE_EPOCHS,
                     train=1200)
        proc = _submit_bg(grid, "--tracking-uri", uri, "--address", cluster.address,
                          "--storage", str(tmp_path / "store"), cwd=tmp_path)

        on_worker: list[str] = []  # the trial key caught mid-way on the worker

        def on_worker_mid_trial() -> bool:
            for run in trial_runs(client, "nodeloss"):
                if run.data.tags.get("lessdata.node_id") == worker_id:
                    key = run.data.tags["lessdata.trial_key"]
                    on_worker[:] = [key]
                    # The trainer's own progress (its checkpoint, every epoch), not MLflow's,
                    # which may lag the worker by several epochs.
                    try:
                        trained = _trained_epoch_seconds(tmp_path / "store", "nodeloss")
                    except (OSError, RuntimeError, EOFError):  # a file being replaced
                        return False
                    return 1 <= len(trained.get(key, {})) <= NODE_EPOCHS // 2
            return False

        wait_for(on_worker_mid_trial, 240, "a trial mid-way on the worker node", 0.2)
        os.killpg(cluster.procs[1].pid, signal.SIGKILL)  # the node's raylet and children
        seconds_before = _epoch_seconds(client, "nodeloss")
        out, err = proc.communicate(timeout=500)
        assert proc.returncode == 0, err[-3000:]
        runs = assert_complete(client, "nodeloss", ["Benchmark", "E5"], 1, 1200, NODE_EPOCHS)
        # The trial lost with the node finished on the head, in the same MLflow run.
        nodes = {r.data.tags["lessdata.trial_key"]: r.data.tags["lessdata.node_id"] for r in runs}
        assert worker_id not in nodes.values(), (worker_id, nodes)
        # ... continued from its checkpoint: the epochs trained on the lost node were kept.
        assert seconds_before[on_worker[0]], (on_worker, seconds_before)
        assert_trained_once(client, "nodeloss", tmp_path / "store", seconds_before, NODE_EPOCHS)
