"""Real services for the tests: an MLflow server on 127.0.0.1 and a local Ray cluster.

Both are started by the fixtures and always stopped (context managers), so the suite
needs nothing running beforehand.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_ROOT = REPO.parent / "shared" / "datasets"
BIN = Path(sys.executable).parent

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@dataclass
class MlflowServer:
    uri: str
    port: int
    root: Path
    proc: subprocess.Popen | None = None

    def start(self, extra_env: dict[str, str] | None = None, app: str | None = None) -> None:
        cmd = [
            str(BIN / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
            "--artifacts-destination", str(self.root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]
        if app:
            cmd += ["--app-name", app]
        # lessdata runs no MLflow jobs: their runner would only load the 2 cores.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(extra_env or {})}
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_http(f"{self.uri}/health")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None


@contextmanager
def mlflow_server_at(root: Path, **start_kwargs: object) -> Iterator[MlflowServer]:
    port = free_port()
    server = MlflowServer(f"http://127.0.0.1:{port}", port, root)
    root.mkdir(parents=True, exist_ok=True)
    server.start(**start_kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real MLflow tracking server on 127.0.0.1 with a SQLite store."""
    with mlflow_server_at(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@dataclass
class RayCluster:
    address: str
    procs: list[subprocess.Popen]


def ray_node_cmd(head: bool, port: int, num_cpus: int, index: int,
                 extra: list[str] | None = None) -> list[str]:
    """`ray start --block` for one node; every node of a machine needs its own ports."""
    ports = [free_port() for _ in range(7)]
    workers = 20000 + (port % 40) * 1000 + index * 200  # a worker-port range per node
    cmd = [
        str(BIN / "ray"), "start", "--block", f"--num-cpus={num_cpus}", "--num-gpus=0",
        f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
        f"--min-worker-port={workers}", f"--max-worker-port={workers + 199}",
        f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
        f"--runtime-env-agent-port={ports[4]}", f"--metrics-export-port={ports[5]}",
    ]
    if head:
        cmd += ["--head", f"--port={port}", "--include-dashboard=false"]
    else:
        cmd += [f"--address=127.0.0.1:{port}"]
    return cmd + (extra or [])


def wait_nodes(address: str, count: int, env: dict[str, str], timeout_s: float = 90.0) -> None:
    script = (
        "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
        "print(len([n for n in ray.nodes() if n['Alive']]))"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", script, address], env=env,
                             capture_output=True, text=True, timeout=60)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    raise TimeoutError(f"Ray cluster at {address} did not reach {count} nodes")


@contextmanager
def ray_cluster(nodes: int = 1, cpus_per_node: int = 2, env: dict[str, str] | None = None,
                head_extra: list[str] | None = None,
                worker_extra: list[str] | None = None) -> Iterator[RayCluster]:
    """A real Ray cluster of ``nodes`` nodes on this machine (`ray start --block` each)."""
    port = free_port()
    env = {**os.environ, **(env or {})}
    procs = [subprocess.Popen(ray_node_cmd(True, port, cpus_per_node, 0, head_extra), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    address = f"127.0.0.1:{port}"
    try:
        for index in range(1, nodes):
            time.sleep(1)
            procs.append(subprocess.Popen(
                ray_node_cmd(False, port, cpus_per_node, index, worker_extra), env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_nodes(address, nodes, env)
        yield RayCluster(address, procs)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


@pytest.fixture(scope="session")
def local_ray() -> Iterator[RayCluster]:
    """A one-node local Ray cluster with 2 CPUs."""
    with ray_cluster(nodes=1, cpus_per_node=2) as cluster:
        yield cluster


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """The real ``lessdata`` entry point in a subprocess."""
    return subprocess.run([str(BIN / "lessdata"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


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
        pytest.fail(f"real MNIST expected at {MNIST_ROOT}/MNIST/raw (../shared/datasets)")
    return MNIST_ROOT
