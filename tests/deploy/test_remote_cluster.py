"""Remote submission to a secured cluster, the way docs/deploy.md says.

A two-node Ray cluster on this machine with token authentication in every process, and
an MLflow server with basic auth. The driver joins with ``--address`` (or $RAY_ADDRESS),
RAY_AUTH_MODE=token and the token in $RAY_AUTH_TOKEN, and reaches MLflow with
MLFLOW_TRACKING_USERNAME/PASSWORD. A driver without either credential stops at once:
exit 2, one line naming what is missing, nothing created.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import MlflowServer, RayCluster, mlflow_server_at, ray_cluster, run_cli
from tests.services import write_auth_ini

pytestmark = pytest.mark.slow

TOKEN = secrets.token_hex(32)
ADMIN_PASSWORD = secrets.token_urlsafe(24)  # MLflow wants 12 characters or more
ADMIN = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
RAY_TOKEN = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
GRID = {
    "name": "remote",
    "dataset": "digits",
    "epochs": 2,
    "batch_size": 60,
    "seeds": 2,
    "experiments": ["Benchmark", "E3"],
    "model": {"width": 0.125},
    "training": {"train_subset": 240, "test_subset": 120, "threads": 1},
    "resources": {"cpu": 1},
    "emissions": {"measure_power_secs": 1},
}
@dataclass
class Secured:
    mlflow: MlflowServer
    ray: RayCluster
    work: Path
    grid: Path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """MLflow with basic auth and a 2-node Ray cluster with token auth, both on 127.0.0.1."""
    work = tmp_path_factory.mktemp("remote")
    ini = write_auth_ini(work, cache_ttl_s=900)
    mlflow_env = {
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
    }
    grid = work / "grid.yaml"
    grid.write_text(yaml.safe_dump(GRID))
    with mlflow_server_at(work / "mlflow", app="basic-auth", extra_env=mlflow_env) as server, \
            ray_cluster(nodes=2, cpus_per_node=1, env=RAY_TOKEN) as cluster:
        _warm_up(server.uri)
        yield Secured(server, cluster, work, grid)


def _warm_up(uri: str) -> None:
    """One signed-in request, so the server's credential cache holds the admin's check.

    A password check is a slow hash (seconds on a loaded 2-core machine), longer than the
    driver's 5 s pre-flight timeout; the deployment caches checks too (basic_auth.ini).
    """
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    request = urllib.request.Request(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1",
                                     headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=120) as resp:
        assert resp.status == 200


def _admin_client(uri: str) -> Iterator[MlflowClient]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in ADMIN.items():
            mp.setenv(key, value)
        yield MlflowClient(uri)


def _trial_runs(uri: str, name: str) -> list[Any]:
    for client in _admin_client(uri):
        exp = client.get_experiment_by_name(name)
        if exp is None:
            return []
        return client.search_runs([exp.experiment_id], "tags.`lessdata.kind` = 'trial'")
    raise AssertionError("unreachable")


# Ray's C++ core writes a warning line to stderr per failed connection attempt, e.g.
# "[2026-11-28 04:43:22,591 W 28348 28348] gcs_client.cc:210: Failed to get cluster ID ...".
RAY_CORE_LOG = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+ [DIWE] \d+ \d+\] \w+\.(cc|h):\d+: ")


def _one_error_line(stderr: str) -> str:
    """lessdata's own output on stderr: exactly one line, no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.strip().splitlines()
             if line.strip() and not RAY_CORE_LOG.match(line)]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def submitted(secured: Secured) -> dict[str, Any]:
    out = run_cli("submit", str(secured.grid), "--address", secured.ray.address,
                  "--tracking-uri", secured.mlflow.uri, "--storage", str(secured.work / "store"),
                  "--json", cwd=secured.work, env={**RAY_TOKEN, **ADMIN}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_a_grid_runs_across_both_nodes_with_auth_everywhere(submitted: dict[str, Any],
                                                            secured: Secured) -> None:
    assert len(submitted["finished"]) == 4 and submitted["failed"] == []
    runs = _trial_runs(secured.mlflow.uri, "remote")
    assert len(runs) == 4
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["lessdata.state"] == "finished"
        assert run.data.metrics["evaluations"] > 0
    node_ids = {run.data.tags["lessdata.node_id"] for run in runs}
    assert len(node_ids) == 2, node_ids  # 1 CPU per node, 2 trials at once: both nodes
    for client in _admin_client(secured.mlflow.uri):
        artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
        assert "epochs.csv" in artifacts  # uploaded through the server, with credentials
    assert (secured.work / "store" / "checkpoints").is_dir()


@pytest.mark.parametrize(
    ("credentials", "needle"),
    [
        ({}, "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"),
        ({"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "wrong-password"},
         "check MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"),
    ],
    ids=["none", "wrong"],
)
def test_a_client_without_mlflow_credentials_stops_at_once(
        secured: Secured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        credentials: dict[str, str], needle: str) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    out = run_cli("submit", str(secured.grid), "--name", "remote-no-mlflow", "--address",
                  secured.ray.address, "--tracking-uri", secured.mlflow.uri,
                  "--storage", str(tmp_path / "store"), cwd=tmp_path,
                  env={**RAY_TOKEN, **credentials}, timeout=120)
    assert out.returncode == 3, out.stderr[-3000:]  # the environment: exit 3
    line = _one_error_line(out.stderr)
    assert "HTTP 401" in line and needle in line, line
    assert _trial_runs(secured.mlflow.uri, "remote-no-mlflow") == []
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("mode", ["unset", "disabled"])
def test_a_driver_without_the_ray_token_stops_with_one_line(
        secured: Secured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    # Ray retries the GCS once a second, 20 times by default, before it gives up;
    # RAY_NUM_REDIS_GET_RETRIES makes a refused driver fail sooner (docs/deploy.md).
    env = {**ADMIN, "RAY_ADDRESS": secured.ray.address,  # the $RAY_ADDRESS way
           "RAY_NUM_REDIS_GET_RETRIES": "3"}
    if mode == "disabled":
        env["RAY_AUTH_MODE"] = "disabled"
    out = run_cli("submit", str(secured.grid), "--name", f"remote-no-token-{mode}",
                  "--tracking-uri", secured.mlflow.uri, "--storage", str(tmp_path / "store"),
                  cwd=tmp_path, env=env, timeout=180)
    assert out.returncode == 3, out.stderr[-3000:]  # the environment: exit 3
    line = _one_error_line(out.stderr)
    assert "refused this driver's authentication token" in line, line
    assert "RAY_AUTH_MODE=token" in line and "RAY_AUTH_TOKEN" in line, line
    assert _trial_runs(secured.mlflow.uri, f"remote-no-token-{mode}") == []


def test_token_mode_without_any_token_stops_at_once(
        secured: Secured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    # HOME without ~/.ray/auth_token: no token anywhere.
    env = {**ADMIN, "RAY_AUTH_MODE": "token", "HOME": str(tmp_path)}
    out = run_cli("submit", str(secured.grid), "--name", "remote-token-missing", "--address",
                  secured.ray.address, "--tracking-uri", secured.mlflow.uri,
                  "--storage", str(tmp_path / "store"), cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 3, out.stderr[-3000:]  # the environment: exit 3
    line = _one_error_line(out.stderr)
    assert "refused this driver's authentication token" in line, line
