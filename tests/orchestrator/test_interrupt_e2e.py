"""Ctrl-C and SIGTERM stop a real submit cleanly: the summary and the resume command are
printed, the exit code says which signal (130, 143), and ``lessdata resume`` finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import BIN, run_cli
from tests.orchestrator.checks import assert_complete, epochs_logged, wait_for
from tests.orchestrator.test_faults import TRAIN, _grid
from tests.services import RayCluster

pytestmark = pytest.mark.slow

EPOCHS = 8  # long enough that the signal lands mid-grid


def _submit_bg(grid: Path, *args: str, cwd: Path, json: bool = True) -> subprocess.Popen:
    flags = ["--json"] if json else []
    return subprocess.Popen([str(BIN / "lessdata"), "submit", str(grid), *flags, *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_submit_then_resume_finishes(tmp_path: Path, local_ray: RayCluster,
                                                  sig: signal.Signals, code: int) -> None:
    name = f"stopped-{sig.name.lower()}"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    store = tmp_path / "store"
    grid = _grid(tmp_path / "g.yaml", name, ["Benchmark", "E1"], epochs=EPOCHS)
    proc = _submit_bg(grid, "--tracking-uri", uri, "--address", local_ray.address,
                      "--storage", str(store), cwd=tmp_path)
    wait_for(lambda: any(v >= 1 for v in epochs_logged(client, name).values()),
             180, "a first epoch in MLflow")
    os.kill(proc.pid, sig)  # the driver only, as `kill` or `docker stop` would
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == code, (proc.returncode, err[-3000:])
    assert '"unfinished": [' in out and f"{name}/" in out, out[-2000:]
    assert "Traceback" not in err, err[-3000:]
    before = epochs_logged(client, name)
    assert any(v < EPOCHS for v in before.values()), before  # really stopped mid-grid
    out_resume = run_cli("resume", name, "--storage", str(store), "--address",
                         local_ray.address, cwd=tmp_path)
    assert out_resume.returncode == 0, out_resume.stderr[-3000:]
    assert_complete(client, name, ["Benchmark", "E1"], 1, TRAIN, EPOCHS)


def test_signal_summary_names_the_resume_command(tmp_path: Path,
                                                 local_ray: RayCluster) -> None:
    """Without --json: the people's summary says which trials are unfinished and how to
    finish them."""
    name = "stopped-text"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    grid = _grid(tmp_path / "g.yaml", name, ["Benchmark"], epochs=EPOCHS)
    proc = _submit_bg(grid, "--tracking-uri", uri, "--address", local_ray.address,
                      "--storage", str(tmp_path / "store"), cwd=tmp_path, json=False)
    wait_for(lambda: any(v >= 1 for v in epochs_logged(client, name).values()),
             180, "a first epoch in MLflow")
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err[-3000:]
    assert f"unfinished: {name}/Benchmark/seed=0 (lessdata resume {name})" in out, out[-2000:]
