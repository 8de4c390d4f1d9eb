"""MLflow's users as the compose and KubeRay setups make them, against a real MLflow server.

deploy/mlflow/init_auth.py runs first (the one-shot `mlflow-init`) with the admin's and
the drivers' password files; then the server starts through deploy/mlflow/launch.py with
no admin password at all. The drivers' user `lessdata` can do what lessdata does (create
an experiment, runs, metrics) and nothing an admin can; the admin password is in no
process of the server.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.services import mlflow_server_at, write_auth_ini

pytestmark = pytest.mark.slow

MLFLOW_DIR = REPO / "deploy" / "mlflow"
ADMIN_PASSWORD = "admin-" + secrets.token_urlsafe(24)
DRIVER_PASSWORD = "driver-" + secrets.token_urlsafe(24)
@dataclass
class Stack:
    uri: str
    work: Path
    env: dict[str, str]  # what init_auth.py ran with
    server_pid: int


def _secret(work: Path, name: str, value: str) -> str:
    path = work / "secrets" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(value + "\n")
    return str(path)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_AUTH_")}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true"}


def run_init(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MLFLOW_DIR / "init_auth.py")], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("mlflow-users")
    ini = write_auth_ini(work, cache_ttl_s=0)
    env = {
        **_clean_env(),
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD_FILE": _secret(work, "admin", ADMIN_PASSWORD),
        "LESSDATA_MLFLOW_PASSWORD_FILE": _secret(work, "driver", DRIVER_PASSWORD),
    }
    out = run_init(env)
    assert out.returncode == 0, out.stderr
    assert "admin 'admin' created" in out.stderr and "user 'lessdata' created" in out.stderr

    server_env = {  # no admin password of any kind: only what the server's container has
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_FLASK_SERVER_SECRET_KEY_FILE": _secret(work, "flask", secrets.token_hex(32)),
    }
    launcher = (sys.executable, str(MLFLOW_DIR / "launch.py"))
    with mlflow_server_at(work / "mlflow", extra_env=server_env, app="basic-auth",
                          launcher=launcher) as server:
        assert server.proc is not None
        yield Stack(server.uri, work, env, server.proc.pid)


def _call(stack: Stack, method: str, path: str, body: dict | None = None,
          user: tuple[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{stack.uri}/api/2.0/mlflow/{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"})
    if user:
        token = b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


DRIVER = ("lessdata", DRIVER_PASSWORD)
ADMIN = ("admin", ADMIN_PASSWORD)


def test_the_drivers_user_does_what_lessdata_does(stack: Stack) -> None:
    status, body = _call(stack, "POST", "experiments/create", {"name": "grid-a"}, DRIVER)
    assert status == 200, status
    experiment = body["experiment_id"]
    status, body = _call(stack, "POST", "runs/create", {"experiment_id": experiment}, DRIVER)
    assert status == 200
    run = body["run"]["info"]["run_id"]
    metric = {"run_id": run, "key": "top1", "value": 0.9, "timestamp": 0, "step": 1}
    assert _call(stack, "POST", "runs/log-metric", metric, DRIVER)[0] == 200
    tag = {"run_id": run, "key": "lessdata.trial", "value": "E3-0"}
    assert _call(stack, "POST", "runs/set-tag", tag, DRIVER)[0] == 200
    search = {"experiment_ids": [experiment], "filter": "tags.`lessdata.trial` = 'E3-0'"}
    status, body = _call(stack, "POST", "runs/search", search, DRIVER)
    assert status == 200 and len(body["runs"]) == 1
    assert _call(stack, "POST", "runs/update", {"run_id": run, "status": "FINISHED"},
                 DRIVER)[0] == 200


def test_the_drivers_user_is_no_admin(stack: Stack) -> None:
    status, body = _call(stack, "GET", "users/get?username=lessdata", user=ADMIN)
    assert status == 200 and body["user"]["is_admin"] is False
    new_user = {"username": "intruder", "password": secrets.token_urlsafe(16)}
    assert _call(stack, "POST", "users/create", new_user, DRIVER)[0] == 403
    assert _call(stack, "POST", "users/create", new_user, ADMIN)[0] == 200
    # Someone else's experiment: readable (default_permission READ), not writable.
    status, body = _call(stack, "POST", "experiments/create", {"name": "not-lessdata"}, ADMIN)
    assert status == 200
    foreign = body["experiment_id"]
    assert _call(stack, "GET", f"experiments/get?experiment_id={foreign}", user=DRIVER)[0] == 200
    assert _call(stack, "POST", "runs/create", {"experiment_id": foreign}, DRIVER)[0] == 403
    assert _call(stack, "POST", "experiments/delete", {"experiment_id": foreign},
                 DRIVER)[0] == 403


def test_nobody_gets_in_without_a_password(stack: Stack) -> None:
    assert _call(stack, "POST", "experiments/search", {"max_results": 1})[0] == 401
    assert _call(stack, "POST", "experiments/search", {"max_results": 1},
                 ("lessdata", "wrong-" + DRIVER_PASSWORD))[0] == 401


def _session_environments(session_id: int) -> list[bytes]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session_id:
                continue
            found.append((entry / "environ").read_bytes())
        except (OSError, ProcessLookupError):
            continue
    return found


def test_the_admin_password_is_in_no_process_of_the_server(stack: Stack) -> None:
    environments = _session_environments(stack.server_pid)
    assert len(environments) >= 2  # the server and its worker(s)
    for environ in environments:
        assert ADMIN_PASSWORD.encode() not in environ
        assert b"MLFLOW_AUTH_ADMIN_PASSWORD" not in environ
        assert DRIVER_PASSWORD.encode() not in environ
        assert b"MLFLOW_FLASK_SERVER_SECRET_KEY_FILE" not in environ  # read, then dropped


def test_init_is_idempotent_and_needs_the_admin_password_only_once(stack: Stack) -> None:
    env = {k: v for k, v in stack.env.items() if k != "MLFLOW_AUTH_ADMIN_PASSWORD_FILE"}
    out = run_init(env)
    assert out.returncode == 0, out.stderr
    assert "admin 'admin' exists" in out.stderr and "user 'lessdata' unchanged" in out.stderr


def test_init_rotates_the_drivers_password(stack: Stack, tmp_path: Path) -> None:
    new_password = "rotated-" + secrets.token_urlsafe(24)
    env = {**stack.env, "LESSDATA_MLFLOW_PASSWORD_FILE": _secret(tmp_path, "new", new_password)}
    out = run_init(env)
    assert out.returncode == 0 and "user 'lessdata' password updated" in out.stderr, out.stderr
    search = {"max_results": 1}
    assert _call(stack, "POST", "experiments/search", search, ("lessdata", new_password))[0] == 200
    assert _call(stack, "POST", "experiments/search", search, DRIVER)[0] == 401
    out = run_init(stack.env)  # back, for the other tests
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"LESSDATA_MLFLOW_USERNAME": "admin"}, "drivers get a user of their own"),
        ({"LESSDATA_MLFLOW_PASSWORD_FILE": "/nonexistent/pw"}, "cannot be read"),
    ],
)
def test_init_refuses_in_one_line(stack: Stack, change: dict[str, str], expected: str) -> None:
    out = run_init({**stack.env, **change})
    assert out.returncode != 0
    assert expected in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_a_first_start_without_the_admin_password_is_refused(tmp_path: Path) -> None:
    ini = write_auth_ini(tmp_path, cache_ttl_s=0)
    env = {**_clean_env(), "MLFLOW_AUTH_CONFIG_PATH": str(ini),
           "LESSDATA_MLFLOW_PASSWORD_FILE": _secret(tmp_path, "driver", DRIVER_PASSWORD)}
    out = run_init(env)
    assert out.returncode != 0
    assert "set MLFLOW_AUTH_ADMIN_PASSWORD_FILE" in out.stderr, out.stderr


def test_launch_writes_a_passfile_and_drops_the_paths(tmp_path: Path) -> None:
    password = "pg:pass\\word-" + secrets.token_hex(8)  # ':' and '\' must be escaped
    env = {**_clean_env(), "TMPDIR": str(tmp_path),
           "POSTGRES_PASSWORD_FILE": _secret(tmp_path, "pg", password),
           "MLFLOW_FLASK_SERVER_SECRET_KEY_FILE": _secret(tmp_path, "flask", "key-123")}
    show = ("import os, json; print(json.dumps({k: os.environ.get(k) for k in ("
            "'PGPASSFILE', 'PGPASSWORD', 'POSTGRES_PASSWORD_FILE', "
            "'MLFLOW_FLASK_SERVER_SECRET_KEY', 'MLFLOW_FLASK_SERVER_SECRET_KEY_FILE')}))")
    out = subprocess.run([sys.executable, str(MLFLOW_DIR / "launch.py"), sys.executable, "-c",
                          show], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["PGPASSWORD"] is None and seen["POSTGRES_PASSWORD_FILE"] is None
    assert seen["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "key-123"
    assert seen["MLFLOW_FLASK_SERVER_SECRET_KEY_FILE"] is None
    passfile = Path(seen["PGPASSFILE"])
    assert passfile.parent == tmp_path and passfile.stat().st_mode & 0o777 == 0o600
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    assert passfile.read_text() == f"postgres:5432:mlflow:mlflow:{escaped}\n"
    env["POSTGRES_PASSWORD_FILE"] = str(tmp_path / "missing")
    out = subprocess.run([sys.executable, str(MLFLOW_DIR / "launch.py"), "true"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "POSTGRES_PASSWORD_FILE" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
