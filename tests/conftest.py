"""Real services for the tests: an MLflow server on 127.0.0.1 and a local Ray cluster
(started by the fixtures from ``tests.services`` and always stopped, so the suite needs
nothing running beforehand), the CLI in a subprocess, and the real MNIST."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Re-exported: tests import the services from here too.
from tests.services import (  # noqa: F401
    MNIST_ROOT,
    MlflowServer,
    RayCluster,
    S3Server,
    free_port,
    mlflow_server_at,
    quiet_services,
    ray_cluster,
    s3_server,
)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

quiet_services()


@pytest.fixture(scope="session", autouse=True)
def driver_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ray Tune's own state of every driver the tests start (``orchestrator.driver_state``)
    goes to the session's temporary folder, not to ~/.local/state (unless set already)."""
    os.environ.setdefault("LESSDATA_DRIVER_STATE", str(tmp_path_factory.mktemp("driver-state")))
    return Path(os.environ["LESSDATA_DRIVER_STATE"])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real MLflow tracking server on 127.0.0.1 with a SQLite store."""
    with mlflow_server_at(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture(scope="session")
def local_ray() -> Iterator[RayCluster]:
    """A one-node local Ray cluster with 2 CPUs."""
    with ray_cluster(nodes=1, cpus_per_node=2) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A real S3 API (moto's server mode) on 127.0.0.1."""
    with s3_server() as server:
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """This process talks to moto; a fresh bucket's URI."""
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    return s3.make_bucket(f"b-{uuid.uuid4().hex[:12]}")


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """The real ``lessdata`` entry point in a subprocess."""
    return subprocess.run([str(BIN / "lessdata"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


# The CLI's main in a fresh process that writes its own peak RSS (VmHWM; ru_maxrss would
# carry the forking parent's over) to the file in argv[1] as it exits.
_MEASURED = ("import atexit, re, sys\n"
             "from pathlib import Path\n"
             "peak = Path(sys.argv.pop(1))\n"
             "def _write() -> None:\n"
             "    status = Path('/proc/self/status').read_text()\n"
             "    peak.write_text(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
             "atexit.register(_write)\n"
             "from orchestrator.cli import main\n"
             "sys.exit(main(sys.argv[1:]))\n")


@dataclass(frozen=True)
class Measured:
    """A CLI run in a fresh process and what it cost."""

    out: subprocess.CompletedProcess
    cpu_s: float
    """User + system seconds of the process: what it costs on an idle machine (the wall
    time of a shared, busy test machine says more about the neighbours)."""
    wall_s: float
    peak_mb: float
    """Peak resident memory (VmHWM)."""


def run_cli_measured(*args: str, cwd: Path, timeout: float = 60,
                     memory_limit_mb: int = 4096) -> Measured:
    """``lessdata ARGS`` in a fresh process under an address-space limit and a timeout, for
    input that must not exhaust the machine: a regression fails the test instead of filling
    the machine's memory or hanging it."""

    def limit() -> None:
        cap = memory_limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    peak = cwd / ".peak-kb"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _MEASURED, str(peak), *args], cwd=cwd,
                         capture_output=True, text=True, timeout=timeout, preexec_fn=limit)
    wall_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_mb = int(peak.read_text()) / 1024 if peak.exists() else float("inf")
    peak.unlink(missing_ok=True)
    return Measured(out, cpu_s, wall_s, peak_mb)


@pytest.fixture(autouse=True)
def torch_flags_unchanged() -> Iterator[None]:
    """Every test leaves torch's process-wide switches as it found them (a leaked
    ``use_deterministic_algorithms`` or TF32 would change every later test). Checked only
    where torch is already imported: importing it is not this fixture's business."""
    if "torch" not in sys.modules:
        yield
        return
    from trainers.flags import TorchFlags

    before = TorchFlags.current()
    yield
    assert TorchFlags.current() == before, "a test changed torch's process-wide flags"


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    if not (MNIST_ROOT / "MNIST" / "raw").is_dir():
        pytest.fail(f"real MNIST expected at {MNIST_ROOT}/MNIST/raw "
                    "(../shared/datasets, or set LESSDATA_MNIST)")
    return MNIST_ROOT
