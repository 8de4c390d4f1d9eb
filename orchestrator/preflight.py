"""Checks before any compute, on the driver: the tracking server and the Ray cluster.

Each refuses with one ``LessdataError`` line that says what is wrong and what to do.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainers.errors import ClusterError, ConfigError, DeviceError, TrackingError

if TYPE_CHECKING:
    from orchestrator.grid import Resources

__all__ = ["DEVICE_CHOICES", "check_device_name", "check_grid_device", "check_local_device",
           "check_resources", "check_tracking", "connect_ray", "require_store"]

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"


# Database schemes MLflow's SQLAlchemy store takes, and the driver each needs (its extra).
_DB_DRIVERS = {"postgresql": ("psycopg2", "pip install 'lessdata[postgres]'"),
               "mysql": ("pymysql", "pip install pymysql"),
               "mssql": ("pyodbc", "pip install pyodbc")}


def check_tracking(uri: str, timeout_s: float = 20.0) -> None:
    """Refuse an unreachable, unauthorised or unusable tracking store before any compute."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite":
        _check_sqlite(uri)
        return  # created on first use, after every other check passed
    if scheme in _DB_DRIVERS:
        module, hint = _DB_DRIVERS[scheme]
        import importlib.util

        if "+" not in uri.split("://", 1)[0] and importlib.util.find_spec(module) is None:
            raise TrackingError(f"a {scheme}:// tracking store needs the {module} driver, "
                                f"which is not installed: {hint}")
        return
    if scheme not in ("http", "https"):
        raise TrackingError(
            f"tracking URI {uri[:120]!r}: unknown scheme {scheme or '(none)'!r}; use "
            "http(s)://HOST:PORT (an MLflow server), sqlite:///PATH or postgresql://...")
    base = uri.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout_s) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        what = " (a proxy in front of MLflow, or MLflow itself, failed)" if exc.code >= 500 else ""
        raise TrackingError(f"tracking server {uri} answered HTTP {exc.code} on /health{what}"
                            ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"tracking server {uri} is unreachable: {reason}") from None
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/experiments/search?max_results=1", headers=_auth_headers()
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            body = resp.read(65536)
        json.loads(body)
    except json.JSONDecodeError:
        raise TrackingError(f"tracking server {uri} answered with a page that is not MLflow's "
                            "API (another service, or a proxy's page, at that address?)"
                            ) from None
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            hint = (
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                if "MLFLOW_TRACKING_USERNAME" not in os.environ
                else "check MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
            )
            raise TrackingError(
                f"tracking server {uri} refused the credentials (HTTP {exc.code}): {hint}"
            ) from None
        what = " (a proxy in front of MLflow, or MLflow itself, failed)" if exc.code >= 500 else ""
        raise TrackingError(f"tracking server {uri} answered HTTP {exc.code}{what}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(f"tracking server {uri} is unreachable: {exc}") from None


def _check_sqlite(uri: str) -> None:
    """An SQLite store's path must be a database file, or nothing yet (made on first use)."""
    path = Path(uri.split(":///", 1)[-1]) if ":///" in uri else None
    if path is None or not path.exists():
        return
    if path.is_dir():
        raise TrackingError(f"tracking store {uri}: {path} is a folder, not an SQLite file")
    try:
        with path.open("rb") as handle:
            header = handle.read(16)
    except OSError as exc:
        raise TrackingError(f"tracking store {uri}: cannot read {path}: {exc.strerror}"
                            ) from None
    if header and header != b"SQLite format 3\x00":
        raise TrackingError(f"tracking store {uri}: {path} is not an SQLite database")


def require_store(uri: str) -> None:
    """For reading commands: a local SQLite store must exist (never create an empty one)."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise TrackingError(f"no MLflow store at {uri} (nothing was submitted there)")
    check_tracking(uri)


def _auth_headers() -> dict[str, str]:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if not user:
        return {}
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def connect_ray(address: str | None, num_cpus: int | None = None,
                runtime_env: dict[str, Any] | None = None) -> None:
    """Join the cluster at ``address`` / $RAY_ADDRESS, or start a local one; ``runtime_env``
    is the job's (a grid's ``code:`` folders as ``py_modules``)."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    if address:
        probe_gcs(address)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
    except Exception as exc:  # noqa: BLE001 - ray raises many kinds; all mean "no cluster"
        if _refused_token(exc):
            raise ClusterError(
                f"Ray at {address or 'local'} refused this driver's authentication token: set "
                "RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, "
                "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot connect to Ray at {address or 'local'}: {first}") from None
    from orchestrator.exits import reclaim_sigterm

    reclaim_sigterm()  # ray.init took SIGTERM over: the CLI stops Tune on it, as on Ctrl-C


_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
GCS_PROBE_S = 15.0
"""How long a Ray address may take to answer as Ray before the driver gives up."""


def probe_gcs(address: str, timeout_s: float = GCS_PROBE_S) -> None:
    """Refuse, within ``timeout_s``, an address where nothing (or something else) answers.

    Ray's own client retries a dead GCS for minutes, then exits the process. Ray's head
    speaks gRPC, i.e. HTTP/2: it answers the HTTP/2 connection preface with a SETTINGS
    frame. A closed port, a silent one or a server of another protocol does not.
    ``ray://`` (Ray Client) and ``auto`` addresses are left to Ray.
    """
    if "://" in address or ":" not in address:
        return
    import socket

    host, _, port = address.rpartition(":")
    why = "nothing there speaks Ray's protocol"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            # the HTTP/2 client preface, then an empty SETTINGS frame
            sock.sendall(_H2_PREFACE)
            header = sock.recv(9)
        if len(header) == 9 and header[3] == 0x04:  # a SETTINGS frame: an HTTP/2 server
            return
    except ValueError:
        why = "not HOST:PORT"
    except TimeoutError:
        why = "no answer"
    except OSError as exc:
        why = f"{exc.strerror or type(exc).__name__}".lower()
    raise ClusterError(f"no Ray cluster answers at {address} ({why}, checked for "
                       f"{timeout_s:.0f} s at most): check --address / $RAY_ADDRESS and that "
                       "the head is up")


def _refused_token(exc: BaseException) -> bool:
    """Whether Ray's error, or one in its chain, is about the auth token.

    Ray raises AuthenticationError, or wraps it (ConnectionError from RuntimeError) and
    keeps the cause only in the message text ("InvalidAuthToken").
    """
    from ray.exceptions import AuthenticationError

    seen: BaseException | None = exc
    for _ in range(10):  # a chain, not a cycle
        if seen is None:
            return False
        if isinstance(seen, AuthenticationError) or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def check_resources(want: Resources) -> None:
    """Fail at once when no node could ever run one trial (instead of waiting forever)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    for node in nodes:
        res = node.get("Resources", {})
        if (res.get("CPU", 0) >= want.cpu and res.get("GPU", 0) >= want.gpu
                and (not want.node_type or res.get(want.node_type, 0) > 0)):
            return
    have = "; ".join(
        f"{n.get('NodeManagerAddress')}: cpu={n['Resources'].get('CPU', 0):g} "
        f"gpu={n['Resources'].get('GPU', 0):g}" for n in nodes
    ) or "no alive nodes"
    node_type = f" node_type={want.node_type}" if want.node_type else ""
    raise ClusterError(
        f"no node of the cluster can run one trial: it asks cpu={want.cpu:g} gpu={want.gpu:g}"
        f"{node_type}; nodes have {have}"
    )


def check_device_name(device: str) -> None:
    """auto, cpu, cuda or cuda:N; ConfigError naming the choices otherwise."""
    if device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", device):
        raise ConfigError(f"invalid device {device!r} (choose from {DEVICE_CHOICES})")


def check_grid_device(device: str | None, gpu: float) -> None:
    """A grid's device must be a known name, and ``cuda`` needs GPUs asked of Ray (a
    trial sees only the GPUs it asks for)."""
    if device is None:
        return
    check_device_name(device)
    if device.startswith("cuda") and gpu <= 0:
        raise ConfigError(f"placement.device {device!r} needs resources.gpu > 0: a trial sees "
                          "only the GPUs it asks Ray for")


def check_local_device(device: str) -> None:
    """``cuda`` / ``cuda:N`` must exist on this machine (checked before any data is read)."""
    check_device_name(device)
    if not device.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        have = f"{count} GPU(s) (cuda:0 .. cuda:{count - 1})" if count else "no GPU"
        raise DeviceError(f"--device {device}: this machine has {have}; use --device cpu "
                          "or auto")
