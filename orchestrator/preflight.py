"""Checks before any compute, on the driver: the tracking server and the Ray cluster.

Each refuses with one ``LessdataError`` line that says what is wrong and what to do.
"""

from __future__ import annotations

import base64
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


def check_tracking(uri: str, timeout_s: float = 20.0) -> None:
    """Refuse an unreachable or unauthorised tracking server before any compute."""
    if not uri.startswith(("http://", "https://")):
        return  # a local store: created on first use, after every other check passed
    base = uri.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout_s) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"tracking server {uri} is unreachable: {reason}") from None
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/experiments/search?max_results=1", headers=_auth_headers()
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            resp.read()
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
        raise TrackingError(f"tracking server {uri} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(f"tracking server {uri} is unreachable: {exc}") from None


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


def connect_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` / $RAY_ADDRESS, or start a local one."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
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
