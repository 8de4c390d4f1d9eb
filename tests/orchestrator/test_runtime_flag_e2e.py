"""End to end: a grid whose runtimes were made incomparable on purpose is flagged.

One experiment's trials are slowed in the Ray workers by a test hook
(``tests/orchestrator/worker_hooks``: a sleep in every training step of that experiment,
inside its training clock); the report must say the runtimes do not compare, name the
experiment, and mark the runtime, energy and CO2 changes. The unslowed case (the fields,
the clocks, the energy sources) is checked on the grid of ``test_submit_e2e``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import MlflowServer, run_cli
from tests.services import RayCluster, ray_cluster

pytestmark = pytest.mark.slow

HOOK = Path(__file__).resolve().parent / "worker_hooks"
REPO = Path(__file__).resolve().parents[2]
SLOWED = "E3"
GRID = {
    "name": "slowed",
    "dataset": "digits",
    "epochs": 3,
    "batch_size": 60,
    "seeds": 2,
    "experiments": ["Benchmark", "E1", SLOWED],
    "model": {"width": 0.125},
    "training": {"train_subset": 240, "test_subset": 120},
    "placement": {"threads": 1},
    "emissions": {"enabled": False},
    "checkpoint_every": 3,
}


@pytest.fixture(scope="module")
def slowed_ray() -> Iterator[RayCluster]:
    path = os.pathsep.join([str(HOOK), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {"PYTHONPATH": path, "LESSDATA_TEST_SLOW_EXPERIMENT": SLOWED,
           "LESSDATA_TEST_SLOW_S": "0.1"}
    with ray_cluster(nodes=1, cpus_per_node=2, env=env) as cluster:
        yield cluster


def test_report_flags_one_slowed_experiment(tmp_path: Path, mlflow_server: MlflowServer,
                                            slowed_ray: RayCluster) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(GRID))
    out = run_cli("submit", str(grid), "--tracking-uri", mlflow_server.uri, "--address",
                  slowed_ray.address, "--storage", str(tmp_path / "store"), "--json",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    out = run_cli("report", "slowed", "--tracking-uri", mlflow_server.uri, "--json",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["runtime_comparable"] is False, report["runtime_note"]
    assert SLOWED in report["runtime_note"], report["runtime_note"]
    rows = {r["experiment"]: r for r in report["experiments"]}
    # E3 trains on 50% of the Benchmark's images but, slowed, takes far more than 50%
    assert rows[SLOWED]["evaluation_ratio"] == pytest.approx(0.5)
    assert rows[SLOWED]["runtime_ratio"] > 0.8, rows[SLOWED]
    text = run_cli("report", "slowed", "--tracking-uri", mlflow_server.uri, cwd=tmp_path)
    assert text.returncode == 0, text.stderr[-3000:]
    lines = text.stdout.splitlines()
    assert lines[0].startswith("runtimes: ") and SLOWED in lines[0], text.stdout
    assert "†" in text.stdout and "runtimes do not compare" in text.stdout
