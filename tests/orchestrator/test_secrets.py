"""Secrets as files: NAME_FILE -> NAME for the driver, one line for every bad file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.secrets import MAX_SECRET_BYTES, apply_secret_files, read_secret_files
from tests.conftest import REPO
from trainers.errors import ConfigError

PASSWORD = "s3cr3t-Pa55w0rd-Xq"


def _secret(tmp_path: Path, content: bytes | str, name: str = "pw") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize("content", [PASSWORD, PASSWORD + "\n", PASSWORD + "\r\n"])
def test_a_secret_file_becomes_its_variable(tmp_path: Path, content: str) -> None:
    env = {"MLFLOW_TRACKING_PASSWORD_FILE": str(_secret(tmp_path, content))}
    assert read_secret_files(env) == {"MLFLOW_TRACKING_PASSWORD": PASSWORD}


def test_apply_sets_the_variable_once_and_drops_the_path(tmp_path: Path) -> None:
    env = {"MLFLOW_TRACKING_PASSWORD_FILE": str(_secret(tmp_path, PASSWORD)),
           "MLFLOW_TRACKING_USERNAME_FILE": str(_secret(tmp_path, "lessdata\n", "user")),
           "OTHER": "kept"}
    assert apply_secret_files(env) == ["MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME"]
    assert env == {"MLFLOW_TRACKING_PASSWORD": PASSWORD, "MLFLOW_TRACKING_USERNAME": "lessdata",
                   "OTHER": "kept"}
    assert apply_secret_files(env) == []  # a second call changes nothing


def test_nothing_to_do_without_file_variables() -> None:
    env = {"MLFLOW_TRACKING_PASSWORD": "plain", "SOME_FILE": "/etc/passwd"}
    assert read_secret_files(env) == {}
    assert apply_secret_files(dict(env)) == []


def test_a_kubernetes_style_link_is_followed(tmp_path: Path) -> None:
    # A mounted Secret: pw -> ..data/pw, ..data -> ..2026_12_02/ (atomic updates).
    real = tmp_path / "..2026_12_02"
    real.mkdir()
    _secret(real, PASSWORD)
    (tmp_path / "..data").symlink_to(real.name)
    (tmp_path / "pw").symlink_to("..data/pw")
    assert read_secret_files({"MLFLOW_TRACKING_PASSWORD_FILE": str(tmp_path / "pw")}) == {
        "MLFLOW_TRACKING_PASSWORD": PASSWORD}


def _error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        read_secret_files(env)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    assert PASSWORD not in message  # an error line never shows the secret
    return message


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing", "no such file"),
        (lambda d: d, "is a folder"),
        (lambda d: _secret(d, ""), "the file is empty"),
        (lambda d: _secret(d, "  \n"), "the file is empty"),
        (lambda d: _secret(d, b"\xff\xfe" + PASSWORD.encode()), "not UTF-8"),
        (lambda d: _secret(d, PASSWORD + "\n" + PASSWORD + "\n"), "more than one line"),
        (lambda d: _secret(d, "x" * (MAX_SECRET_BYTES + 1)), "larger than"),
    ],
    ids=["missing", "folder", "empty", "blank", "binary", "two-lines", "too-large"],
)
def test_a_bad_file_is_one_line_naming_variable_and_path(tmp_path: Path, make, expected: str
                                                         ) -> None:
    path = make(tmp_path)
    message = _error({"MLFLOW_TRACKING_PASSWORD_FILE": str(path)})
    assert expected in message and "MLFLOW_TRACKING_PASSWORD_FILE" in message, message
    assert str(path) in message, message


@pytest.mark.skipif(os.getuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    path = _secret(tmp_path, PASSWORD)
    path.chmod(0)
    assert "not readable" in _error({"MLFLOW_TRACKING_PASSWORD_FILE": str(path)})


def test_an_unreadable_file_is_one_line_as_another_user(tmp_path: Path) -> None:
    # As root (the CI here), drop to nobody in a child process to see a real EACCES.
    if os.getuid() != 0:
        pytest.skip("covered by the test above")
    path = _secret(tmp_path, PASSWORD)
    path.chmod(0o600)
    tmp_path.chmod(0o755)
    # Import first: the interpreter's own files may not be readable by nobody.
    code = ("import os; from orchestrator.secrets import read_secret_files;"
            "os.setgid(65534); os.setuid(65534);"
            f"read_secret_files({{'MLFLOW_TRACKING_PASSWORD_FILE': {str(path)!r}}})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert out.returncode != 0
    assert "ConfigError" in out.stderr and "not readable by this user (uid 65534)" in out.stderr


def test_empty_path_and_both_set_are_refused(tmp_path: Path) -> None:
    assert "is empty" in _error({"MLFLOW_TRACKING_PASSWORD_FILE": ""})
    both = {"MLFLOW_TRACKING_PASSWORD": PASSWORD,
            "MLFLOW_TRACKING_PASSWORD_FILE": str(_secret(tmp_path, PASSWORD))}
    assert "both MLFLOW_TRACKING_PASSWORD and MLFLOW_TRACKING_PASSWORD_FILE" in _error(both)


def test_apply_leaves_the_environment_unchanged_on_error(tmp_path: Path) -> None:
    env = {"MLFLOW_TRACKING_USERNAME_FILE": str(_secret(tmp_path, "lessdata")),
           "MLFLOW_TRACKING_PASSWORD_FILE": str(tmp_path / "missing")}
    before = dict(env)
    with pytest.raises(ConfigError):
        apply_secret_files(env)
    assert env == before
