"""A grid whose storage is a bucket (a real S3 API: moto on 127.0.0.1), through the real
CLI on a real local Ray cluster with real MLflow: the plan and every checkpoint are in the
bucket, a driver killed mid-grid resumes each trial from its checkpoint there (nothing
trained twice), and a re-submission finds every trial finished and runs nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from orchestrator.plan import plan_key, storage_name
from orchestrator.storage import open_store
from orchestrator.trainable import STATE_FILE
from tests.conftest import BIN, MlflowServer, run_cli
from tests.orchestrator.checks import assert_complete, epochs_logged, trial_runs, wait_for
from tests.services import S3Server, ray_cluster
from trainers.config import TrainConfig

pytestmark = pytest.mark.slow

GRID, TRAIN, EPOCHS = "bucketed", 360, 5
EXPERIMENTS = ["Benchmark", "E1"]


def _grid(path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "name": GRID, "dataset": "digits", "epochs": EPOCHS, "batch_size": 60, "seeds": 2,
        "experiments": EXPERIMENTS, "model": {"width": 0.125},
        "training": {"train_subset": TRAIN, "test_subset": 120, "threads": 1},
        "emissions": {"measure_power_secs": 1}, "checkpoint_every": 1, "max_failures": 2,
    }))
    return path


def _epoch_seconds(client: MlflowClient) -> dict[str, dict[int, float]]:
    return {run.data.tags["lessdata.trial_key"]: {
        m.step: m.value for m in client.get_metric_history(run.info.run_id, "epoch_s")}
        for run in trial_runs(client, GRID)}


def _checkpointed_seconds(storage: str) -> dict[str, dict[int, float]]:
    """Trial key -> {epoch: epoch_s} from each trial's checkpoint in the bucket."""
    out = {}
    for experiment in EXPERIMENTS:
        for seed in range(2):
            key = f"{GRID}/{experiment}/seed={seed}"
            store = open_store(f"{storage}/checkpoints/{storage_name(key)}")
            data = store.read_published(STATE_FILE)
            assert data is not None, f"no checkpoint of {key} in the bucket"
            state = torch.load(__import__("io").BytesIO(data), map_location="cpu",
                               weights_only=True)
            config = TrainConfig.model_validate_json(state["config"])
            assert (config.experiment, config.seed) == (experiment, seed)
            out[key] = {row["epoch"]: row["epoch_s"] for row in state["history"]}
    return out


def test_a_grid_in_a_bucket_resumes_from_its_checkpoints(
        tmp_path: Path, s3: S3Server, mlflow_server: MlflowServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    storage = s3.make_bucket(f"grids-{uuid.uuid4().hex[:8]}") + "/lessdata"
    # The driver and the Ray nodes reach the bucket through the usual AWS_* variables
    # (on KubeRay: the pods' environment); Tune's own state stays on the driver's disk.
    env = {**s3.env, "LESSDATA_DRIVER_STATE": str(tmp_path / "driver")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(mlflow_server.uri)
    grid = _grid(tmp_path / "g.yaml")
    with ray_cluster(nodes=1, cpus_per_node=2, env=env) as cluster:
        common = ["--tracking-uri", mlflow_server.uri, "--address", cluster.address,
                  "--storage", storage, "--json"]
        proc = subprocess.Popen([str(BIN / "lessdata"), "submit", str(grid), *common],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        wait_for(lambda: any(v >= 2 for v in epochs_logged(client, GRID).values()),
                 300, "two epochs of a trial in MLflow")
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its trials, mid-grid
        proc.wait()
        before = epochs_logged(client, GRID)
        assert any(0 < v < EPOCHS for v in before.values()), before
        seconds_before = _epoch_seconds(client)

        out = run_cli("resume", GRID, "--storage", storage, "--address", cluster.address,
                      "--json", cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        done_before = {k for k, v in before.items() if v == EPOCHS}
        assert set(json.loads(out.stdout)["skipped"]) <= done_before

        runs = assert_complete(client, GRID, EXPERIMENTS, 2, TRAIN, EPOCHS)
        assert len(runs) == 4  # one run per trial, the resumed ones continued
        # Every trial's checkpoint is in the bucket, holding every epoch once; the epochs
        # trained before the kill kept their times: restored, not trained again.
        trained = _checkpointed_seconds(storage)
        logged = _epoch_seconds(client)
        for key, seconds in trained.items():
            assert sorted(seconds) == list(range(1, EPOCHS + 1)), (key, seconds)
            assert logged[key] == seconds, key
            kept = {step: seconds[step] for step in seconds_before.get(key, {})}
            assert kept == seconds_before.get(key, {}), (key, "retrained after the kill")
        assert any(0 < len(s) < EPOCHS for s in seconds_before.values())

        bucket = open_store(storage)
        assert bucket.exists(plan_key(GRID))
        assert bucket.list("leases") == []  # released
        assert not (tmp_path / "runs").exists()  # nothing of the grid on the driver's disk

        again = run_cli("submit", str(grid), *common, cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        summary = json.loads(again.stdout)
        assert sorted(summary["skipped"]) == sorted(trained) and summary["finished"] == []
        status = run_cli("status", GRID, "--storage", storage, "--json", cwd=tmp_path)
        assert status.returncode == 0, status.stderr[-3000:]
        assert json.loads(status.stdout)["counts"]["finished"] == 4
