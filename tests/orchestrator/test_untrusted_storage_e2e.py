"""End to end, with a real Ray cluster and MLflow server: what workers write cannot run code
on the driver, and a trial failing the same way every time stops retrying.

Trials fail on purpose through a test hook in the Ray workers
(``tests/orchestrator/worker_hooks``): per experiment, an error no retry can fix, the same
error every time, a different one every time, or one transient failure. Each attempt
leaves a line in ``<fail dir>/<experiment>.attempts``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import MlflowServer, run_cli
from tests.services import RayCluster, ray_cluster

pytestmark = pytest.mark.slow

HOOK = Path(__file__).resolve().parent / "worker_hooks"
REPO = Path(__file__).resolve().parents[2]
FAIL_DIR_ENV = "LESSDATA_TEST_FAIL_DIR"


@pytest.fixture(scope="module")
def fail_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fail")


@pytest.fixture(scope="module")
def failing_ray(fail_dir: Path) -> Iterator[RayCluster]:
    path = os.pathsep.join([str(HOOK), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {"PYTHONPATH": path, FAIL_DIR_ENV: str(fail_dir)}
    with ray_cluster(nodes=1, cpus_per_node=2, env=env) as cluster:
        yield cluster


def _grid(path: Path, name: str, experiments: list[str], max_failures: int) -> Path:
    """4 epochs: at 1 epoch E2 and E3 would train alike (one trial for both)."""
    path.write_text(yaml.safe_dump({
        "name": name, "dataset": "digits", "epochs": 4, "batch_size": 60, "seeds": 1,
        "experiments": experiments, "model": {"width": 0.125},
        "training": {"train_subset": 120, "test_subset": 60}, "placement": {"threads": 1},
        "emissions": {"enabled": False}, "checkpoint_every": 1,
        "max_failures": max_failures,
    }))
    return path


def _attempts(fail_dir: Path, experiment: str) -> int:
    path = fail_dir / f"{experiment}.attempts"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _runs(client: MlflowClient, grid: str) -> dict[str, Any]:
    exp = client.get_experiment_by_name(grid)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], "tags.`lessdata.kind` = 'trial'")
    return {r.data.tags["lessdata.experiment"]: r for r in runs}


# -- failures no retry can fix --------------------------------------------------------------


def test_a_trial_failing_the_same_way_stops_retrying(
        tmp_path: Path, mlflow_server: MlflowServer, failing_ray: RayCluster,
        fail_dir: Path) -> None:
    (fail_dir / "E1").write_text("config")  # no retry can fix it: one attempt
    (fail_dir / "E2").write_text("same")  # its retry fails the same way: two attempts
    (fail_dir / "E3").write_text("once")  # transient: retried, then finishes
    grid = _grid(tmp_path / "g.yaml", "retries", ["E1", "E2", "E3"], max_failures=5)
    store = tmp_path / "store"
    out = run_cli("submit", str(grid), "--tracking-uri", mlflow_server.uri, "--address",
                  failing_ray.address, "--storage", str(store), cwd=tmp_path,
                  env={"LESSDATA_DRIVER_STATE": str(tmp_path / "state")})
    assert out.returncode == 1, (out.stdout[-3000:], out.stderr[-3000:])
    assert {e: _attempts(fail_dir, e) for e in ("E1", "E2", "E3")} == {
        "E1": 1, "E2": 2, "E3": 2}
    assert "grid retries: 1 finished, 2 failed" in out.stdout
    assert ("failed: retries/E1/seed=0: ConfigError: training.widget: E1 has no widget "
            "(test hook) (not retried: no retry can fix it)") in out.stdout
    assert ("failed: retries/E2/seed=0: RuntimeError: mat1 and mat2 shapes cannot be "
            "multiplied (60x10 and 12x10) (not retried again: its retry failed the same "
            "way)") in out.stdout
    runs = _runs(MlflowClient(mlflow_server.uri), "retries")
    assert {e: (r.info.status, r.data.tags.get("lessdata.state"),
                r.data.tags.get("lessdata.stop")) for e, r in runs.items()} == {
        "E1": ("FAILED", "failed", "not_retryable"),
        "E2": ("FAILED", "failed", "same_error"),
        "E3": ("FINISHED", "finished", None)}
    assert runs["E2"].data.tags["lessdata.error"].startswith("RuntimeError: mat1 and mat2")
    # The finished trial forgot its failure; the failed ones keep theirs for `resume`.
    records = {p.parent.name.split("-")[0]: p for p in store.rglob("last_failure.json")}
    assert len(records) == 2, records


# -- a storage written by someone hostile ----------------------------------------------------


class _Plant:
    """Unpickled, it creates the marker file: proof that code from the storage ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "a"))


# Ray Tune's names: what a Tune experiment and its trial folders hold.
PICKLE_NAMES = ["error.pkl", "tuner.pkl", "trainable.pkl", "params.pkl", ".metadata.pkl",
                "checkpoint.pkl", "search_gen_state-2099-01-01_00-00-00.pkl"]
STATE_NAMES = ["experiment_state-2099-01-01_00-00-00.json",
               "basic-variant-state-2099-01-01_00-00-00.json", "result.json"]


def _plant_everywhere(folder: Path, marker: Path) -> None:
    """A malicious pickle under each of Tune's names in every folder below ``folder``, and
    Tune's JSON state files with a pickle inside (as Tune encodes objects in them)."""
    from ray.tune.utils.serialization import TuneFunctionEncoder

    blob = pickle.dumps(_Plant(marker))
    state = json.dumps({"runner_data": _Plant(marker), "trial_data": [], "stats": {}},
                       cls=TuneFunctionEncoder)
    for here in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        for name in PICKLE_NAMES:
            (here / name).write_bytes(blob)
        for name in STATE_NAMES:
            (here / name).write_text(state)


class _Attacker(threading.Thread):
    """Keeps writing ``error.pkl`` into every folder of the storage while a driver runs:
    a worker racing the driver's own writes."""

    def __init__(self, folder: Path, marker: Path) -> None:
        super().__init__(daemon=True)
        self.folder, self.blob = folder, pickle.dumps(_Plant(marker))
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.005):
            for here, _, _ in os.walk(self.folder):
                with contextlib.suppress(OSError):
                    Path(here, "error.pkl").write_bytes(self.blob)


def test_pickles_planted_in_the_storage_never_run_on_the_driver(
        tmp_path: Path, mlflow_server: MlflowServer, failing_ray: RayCluster,
        fail_dir: Path) -> None:
    (fail_dir / "E5").write_text("varying")  # fails for Tune: Tune writes its error.pkl
    grid = _grid(tmp_path / "g.yaml", "planted", ["E4", "E5"], max_failures=0)
    store, state, marker = tmp_path / "store", tmp_path / "state", tmp_path / "PWNED"
    env = {"LESSDATA_DRIVER_STATE": str(state)}
    common = ["--tracking-uri", mlflow_server.uri, "--storage", str(store)]

    def cli(*args: str) -> tuple[int, str, str]:
        out = run_cli(*args, cwd=tmp_path, env=env)
        assert not marker.exists(), (args, out.stdout[-2000:], out.stderr[-2000:])
        return out.returncode, out.stdout, out.stderr

    code, stdout, stderr = cli("submit", str(grid), "--address", failing_ray.address, *common)
    assert code == 1, (stdout[-2000:], stderr[-2000:])
    # Tune's own state went to the driver's folder; the storage has lessdata's files only.
    assert list(state.glob("tune/planted-*/experiment_state-*.json"))
    assert {p.name for p in store.iterdir()} == {"checkpoints", "grids", "leases"}

    # Pickles under every name Tune uses, in every folder of the storage and at the
    # folders Tune would use there (the driver's experiment and trial folders, mirrored).
    for folder in [p for p in state.rglob("*") if p.is_dir()]:
        (store / folder.relative_to(state)).mkdir(parents=True, exist_ok=True)
        (store / "tune" / "planted" / folder.name).mkdir(parents=True, exist_ok=True)
    _plant_everywhere(store, marker)
    attacker = _Attacker(store, marker)
    attacker.start()
    try:
        code, stdout, stderr = cli("resume", "planted", "--address", failing_ray.address,
                                   "--storage", str(store))
        assert code == 1, (stdout[-2000:], stderr[-2000:])
        assert "failed: planted/E5/seed=0: RuntimeError: attempt" in stdout
        assert "retries exhausted" in stdout
        code, stdout, stderr = cli("submit", str(grid), "--address", failing_ray.address,
                                   *common)
        assert code == 1, (stdout[-2000:], stderr[-2000:])
        assert "1 already finished before (skipped)" in stdout
    finally:
        attacker.stop.set()
        attacker.join()
    code, stdout, stderr = cli("status", "planted", *common)
    assert code == 0, stderr[-2000:]
    code, stdout, stderr = cli("report", "planted", *common, "--out", str(tmp_path / "rep"))
    assert code == 0, stderr[-2000:]

    # Every file of the storage replaced by the pickle: one line, nothing run.
    blob = pickle.dumps(_Plant(marker))
    for path in [p for p in store.rglob("*") if p.is_file()]:
        path.write_bytes(blob)
    for args in (("resume", "planted", "--address", failing_ray.address, "--storage",
                  str(store)), ("status", "planted", *common), ("report", "planted", *common)):
        code, stdout, stderr = cli(*args)
        assert code == 2, (args, stdout[-2000:], stderr[-2000:])
        assert len(stderr.strip().splitlines()) == 1, (args, stderr[-2000:])
        assert "is damaged" in stderr, (args, stderr)
