"""The real services that tests and benchmarks start (an MLflow server, a Ray cluster) and
the real MNIST they read.

One module for both (the tests import ``tests.services``; the benchmarks too, through
bench/harness.py putting the repo on ``sys.path``). Every server runs in its own
process group and is always stopped: the context managers below end the whole group.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MNIST_ROOT",
    "QUIET_ENV",
    "MlflowServer",
    "RayCluster",
    "S3Server",
    "free_port",
    "free_ports",
    "mlflow_server_at",
    "quiet_services",
    "ray_cluster",
    "ray_node_cmd",
    "s3_server",
    "stop_group",
    "wait_http",
    "wait_nodes",
]

BIN = Path(sys.executable).parent

MNIST_ROOT = Path(
    os.environ.get("LESSDATA_MNIST") or os.environ.get("LESSDATA_BENCH_MNIST")
    or Path(__file__).resolve().parents[2] / "shared" / "datasets"
)
"""A torchvision root holding MNIST/raw/ (plain or .gz): ``$LESSDATA_MNIST`` (or the
benchmarks' older ``$LESSDATA_BENCH_MNIST``) if set, else ``shared/datasets`` beside the
repo."""

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_AUTH_MODE": "disabled",
}
"""Services started here do not phone home, and a local Ray needs no token."""


def quiet_services() -> None:
    """Set ``QUIET_ENV`` in this process (where not set already), for what it starts."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None,
              timeout_s: float = 90.0) -> None:
    """Until ``url`` answers 200; fails at once if ``proc`` (the server) exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def _terminate_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)


def _reap_group(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def stop_group(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it if it does not end in time."""
    _terminate_group(proc)
    _reap_group(proc, timeout_s)


@dataclass
class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite store under ``root``; it can be
    stopped and started again on the same address and store (an outage)."""

    uri: str
    port: int
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    workers: int = 1
    launcher: tuple[str, ...] = ()
    """A command the server is started through (deploy/mlflow/launch.py, as the images do)."""

    def start(self, extra_env: dict[str, str] | None = None, app: str | None = None) -> None:
        cmd = [
            *self.launcher, str(BIN / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
            "--artifacts-destination", str(self.root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
        ]
        if app:
            cmd += ["--app-name", app]
        # The server's job runner (MLflow 3's huey consumers: eight more processes) is off:
        # lessdata runs no MLflow jobs, and on 2 cores they would only add load.
        env = {**QUIET_ENV, **os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
               **(extra_env or {})}
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        # Each worker imports MLflow on its own: on a busy machine that takes a while.
        wait_http(f"{self.uri}/health", self.proc, timeout_s=90.0 * self.workers)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
        self.proc = None


@contextmanager
def mlflow_server_at(root: Path, extra_env: dict[str, str] | None = None,
                     app: str | None = None, launcher: tuple[str, ...] = (),
                     workers: int = 1) -> Iterator[MlflowServer]:
    """A started ``MlflowServer`` with its store in ``root`` (``workers`` server
    processes), always stopped."""
    port = free_port()
    server = MlflowServer(f"http://127.0.0.1:{port}", port, root, workers=workers,
                          launcher=launcher)
    root.mkdir(parents=True, exist_ok=True)
    try:
        server.start(extra_env, app)
        yield server
    finally:
        server.stop()


AUTH_INI = """\
[mlflow]
default_permission = READ
database_uri = sqlite:///{db}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = {ttl_s}
"""


def write_auth_ini(folder: Path, cache_ttl_s: int) -> Path:
    """MLflow's basic-auth config (its users in ``folder``/basic_auth.db), as deploy/ has it."""
    ini = folder / "basic_auth.ini"
    ini.write_text(AUTH_INI.format(db=folder / "basic_auth.db", ttl_s=cache_ttl_s))
    return ini


@dataclass
class RayCluster:
    address: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1 (all held open until every one is chosen,
    so the system cannot hand out one twice)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def ray_node_cmd(head: bool, port: int, num_cpus: int, index: int,
                 extra: list[str] | None = None) -> list[str]:
    """`ray start --block` for one node; every node of a machine needs its own ports. The
    worker ports sit below the system's ephemeral range (32768 and up), a range per node."""
    ports = [p for p in free_ports(7) if p != port][:6]
    workers = 10000 + ((port % 37) * 3 + index % 3) * 200
    cmd = [
        str(BIN / "ray"), "start", "--block", f"--num-cpus={num_cpus}", "--num-gpus=0",
        f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
        f"--min-worker-port={workers}", f"--max-worker-port={workers + 199}",
        f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
        f"--runtime-env-agent-port={ports[4]}", f"--metrics-export-port={ports[5]}",
        "--disable-usage-stats",
    ]
    if head:
        cmd += ["--head", f"--port={port}", "--include-dashboard=false"]
    else:
        cmd += [f"--address=127.0.0.1:{port}"]
    return cmd + (extra or [])


def _port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def wait_nodes(address: str, count: int, env: dict[str, str], timeout_s: float = 120.0,
               procs: list[subprocess.Popen[bytes]] | None = None) -> None:
    """Until ``count`` nodes of the cluster at ``address`` are alive; fails at once if one of
    ``procs`` (the nodes' `ray start --block`) exits."""
    script = (
        "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
        "print(len([n for n in ray.nodes() if n['Alive']]))"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in procs or []:
            if proc.poll() is not None:
                raise RuntimeError(f"a node of the Ray cluster at {address} exited with code "
                                   f"{proc.returncode}")
        if not _port_open(address):  # the head's GCS not listening yet: no client to hang
            time.sleep(0.5)
            continue
        left = max(5.0, deadline - time.monotonic())
        try:
            out = subprocess.run([sys.executable, "-c", script, address], env=env,
                                 capture_output=True, text=True, timeout=min(60.0, left))
        except subprocess.TimeoutExpired:
            continue
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    raise TimeoutError(f"Ray cluster at {address} did not reach {count} nodes in {timeout_s} s")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def ray_cluster(nodes: int = 1, cpus_per_node: int = 2, env: dict[str, str] | None = None,
                head_extra: list[str] | None = None,
                worker_extra: list[str] | None = None,
                attempts: int = 2) -> Iterator[RayCluster]:
    """A real Ray cluster of ``nodes`` nodes on this machine (`ray start --block` each, no
    GPU), always stopped; yields once every node answers. A cluster that does not come up
    (a busy machine, a port taken meanwhile) is stopped and started again on fresh ports, up
    to ``attempts`` times; the error then carries the nodes' own output."""
    env = {**QUIET_ENV, **os.environ, **(env or {})}
    with tempfile.TemporaryDirectory(prefix="lessdata-ray-") as tmp:
        yield from _start_cluster(Path(tmp), nodes, cpus_per_node, env, head_extra,
                                  worker_extra, attempts)


def _start_cluster(logs: Path, nodes: int, cpus_per_node: int, env: dict[str, str],
                   head_extra: list[str] | None, worker_extra: list[str] | None,
                   attempts: int) -> Iterator[RayCluster]:
    for attempt in range(1, attempts + 1):
        port = free_port()
        cluster = RayCluster(f"127.0.0.1:{port}")
        node_logs = [logs / f"try{attempt}-node{index}.log" for index in range(nodes)]
        try:
            try:
                for index in range(nodes):
                    if index:
                        time.sleep(1)  # the head first
                    cmd = ray_node_cmd(index == 0, port, cpus_per_node, index,
                                       head_extra if index == 0 else worker_extra)
                    with open(node_logs[index], "wb") as log:
                        cluster.procs.append(subprocess.Popen(
                            cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True))
                wait_nodes(cluster.address, nodes, env, procs=cluster.procs)
            except (TimeoutError, RuntimeError) as exc:
                if attempt == attempts:
                    told = "\n".join(f"--- {log.name}\n{_tail(log)}" for log in node_logs)
                    raise RuntimeError(f"{exc} (attempt {attempt} of {attempts})\n{told}") from exc
                continue
            yield cluster
            return
        finally:
            for proc in reversed(cluster.procs):  # every node told first, then waited for
                _terminate_group(proc)
            for proc in cluster.procs:
                _reap_group(proc, timeout_s=20)


@dataclass
class S3Server:
    """moto's S3 API on 127.0.0.1: ``env`` is what a client (the CLI, a Ray node) needs."""

    endpoint: str
    env: dict[str, str]

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name``; its URI."""
        from pyarrow import fs

        s3 = fs.S3FileSystem(endpoint_override=self.endpoint.split("//", 1)[1], scheme="http",
                             access_key=self.env["AWS_ACCESS_KEY_ID"],
                             secret_key=self.env["AWS_SECRET_ACCESS_KEY"],
                             region=self.env["AWS_DEFAULT_REGION"], allow_bucket_creation=True)
        s3.create_dir(name)
        return f"s3://{name}"


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """A real S3 API (moto's server mode, its in-memory store) on a free port, always
    stopped; yields once it answers."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            env={**QUIET_ENV, **os.environ}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"{endpoint}/", proc)
        yield S3Server(endpoint, {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "LESSDATA_S3_ENDPOINT": endpoint})
    finally:
        stop_group(proc)
