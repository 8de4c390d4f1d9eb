"""The images install only what the hashed lock files pin, and those pin what pyproject pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.deploy.secrets_scan import REPO

DOCKERFILE = REPO / "deploy" / "Dockerfile"
LOCKS = {"lessdata": REPO / "deploy" / "requirements.lock",
         "mlflow": REPO / "deploy" / "mlflow" / "requirements.lock"}
_PIN = re.compile(r"^([A-Za-z0-9][\w.-]*)(?:\[[\w,.-]+\])?==([\w.+!-]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every requirement in a pip-compile lock."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if match := _PIN.match(line):
            current = _name(match.group(1))
            assert current not in entries, f"{path.name}: {current} twice"
            entries[current] = (match.group(2), [])
        elif stripped.startswith("--hash=sha256:"):
            assert current is not None, line
            digest = stripped.removeprefix("--hash=sha256:").rstrip(" \\")
            assert re.fullmatch(r"[0-9a-f]{64}", digest), line
            entries[current][1].append(digest)
        else:
            pytest.fail(f"{path.name}: unexpected line {line!r} (only pins and hashes)")
    return entries


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = _PIN.match(requirement.strip())
        if match:
            pins[_name(match.group(1))] = match.group(2)
    return pins


@pytest.mark.parametrize("image", sorted(LOCKS))
def test_every_locked_package_is_pinned_with_hashes(image: str) -> None:
    entries = read_lock(LOCKS[image])
    assert len(entries) > 20
    for name, (version, hashes) in entries.items():
        assert hashes, f"{name}=={version} has no hash"


def test_the_lessdata_lock_pins_what_pyproject_pins() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = _pins(project["dependencies"])
    assert len(wanted) == len(project["dependencies"])  # every dependency is pinned
    wanted.update(_pins((REPO / "deploy" / "requirements.in").read_text().splitlines()))
    locked = read_lock(LOCKS["lessdata"])
    for name, version in wanted.items():
        assert name in locked, name
        assert locked[name][0] == version, (name, locked[name][0], version)
    for tool in ("setuptools", "wheel"):  # lessdata's build backend, installed offline
        assert tool in locked


def test_the_mlflow_lock_pins_the_server_and_driver_of_the_image() -> None:
    wanted = _pins((REPO / "deploy" / "mlflow" / "requirements.in").read_text().splitlines())
    assert set(wanted) == {"mlflow", "psycopg", "boto3"}  # boto3: MLflow's S3 artifact client
    locked = read_lock(LOCKS["mlflow"])
    for name, version in wanted.items():
        assert locked[name][0] == version, name
    assert locked["psycopg-binary"][0] == wanted["psycopg"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert _pins(project["dependencies"])["mlflow"] == wanted["mlflow"]  # client == server


def test_every_pip_install_in_the_dockerfile_is_hashed_or_offline() -> None:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    installs = re.findall(r"pip install [^&\n]*", text)
    assert len(installs) == 3
    for command in installs:
        hashed = "--require-hashes" in command and "--no-deps" in command
        offline = "--no-index" in command and "--no-deps" in command
        assert hashed or offline, command
    copied = re.findall(r"^COPY (\S+requirements\.lock) ", DOCKERFILE.read_text(), re.MULTILINE)
    assert {REPO / c for c in copied} == set(LOCKS.values())


def test_the_lock_script_regenerates_both_locks() -> None:
    script = (REPO / "deploy" / "lock.sh").read_text()
    assert "--generate-hashes" in script
    for lock in LOCKS.values():
        assert f"--output-file {lock.relative_to(REPO)}" in script
