"""Every environment failure of a submit is one line, before any compute (real CLI)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli


class _Fake(http.server.BaseHTTPRequestHandler):
    """What sits where MLflow should be: a web page, or a proxy that fails."""

    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html><body>Welcome to nginx!</body></html>")

    def log_message(self, *args: object) -> None:
        pass


class _Proxy500(_Fake):
    status = 502


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def html_page() -> Iterator[str]:
    yield from _serve(_Fake)


@pytest.fixture
def failing_proxy() -> Iterator[str]:
    yield from _serve(_Proxy500)


def _submit(tmp: Path, uri: str, storage: Path | None = None) -> list[str]:
    out = run_cli("submit", "demo", "--tracking-uri", uri, "--storage",
                  str(storage or tmp / "s"), cwd=tmp, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1, out.stderr[-3000:]
    assert not (tmp / "s" / "tune").exists()  # nothing ran
    return lines


def test_unknown_scheme(tmp_path: Path) -> None:
    line = _submit(tmp_path, "bogus://somewhere")[0]
    assert "tracking URI 'bogus://somewhere': unknown scheme 'bogus'; use http(s)://" in line


def test_database_scheme_without_its_driver(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("psycopg2") is not None:
        pytest.skip("psycopg2 is installed here (lessdata[postgres]): nothing to refuse")
    line = _submit(tmp_path, "postgresql://u:p@127.0.0.1:5432/mlflow")[0]
    assert ("a postgresql:// tracking store needs the psycopg2 driver, which is not "
            "installed: pip install 'lessdata[postgres]'") in line
    line = _submit(tmp_path, "mysql://u:p@127.0.0.1/mlflow")[0]
    assert "needs the pymysql driver" in line


def test_sqlite_path_that_is_a_folder_or_not_a_database(tmp_path: Path) -> None:
    folder = tmp_path / "store.db"
    folder.mkdir()
    assert f"{folder} is a folder, not an SQLite file" in _submit(tmp_path,
                                                                  f"sqlite:///{folder}")[0]
    text = tmp_path / "notes.db"
    text.write_text("hello, not a database\n")
    assert f"{text} is not an SQLite database" in _submit(tmp_path, f"sqlite:///{text}")[0]


def test_a_web_page_where_mlflow_should_be(tmp_path: Path, html_page: str) -> None:
    line = _submit(tmp_path, html_page)[0]
    assert f"tracking server {html_page} answered with a page that is not MLflow's API" in line


def test_a_failing_proxy(tmp_path: Path, failing_proxy: str) -> None:
    line = _submit(tmp_path, failing_proxy)[0]
    assert f"tracking server {failing_proxy} answered HTTP 502 on /health (a proxy" in line


@pytest.mark.slow
def test_storage_that_cannot_be_written(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the storage folder should be")
    line = _submit(tmp_path, f"sqlite:///{tmp_path}/m.db", storage=blocked)[0]
    assert f"cannot write the grid's storage at {blocked}" in line


@pytest.mark.slow
def test_an_experiment_deleted_in_the_ui(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/m.db"
    client = MlflowClient(uri)
    client.delete_experiment(client.create_experiment("demo"))
    line = _submit(tmp_path, uri)[0]
    assert "the MLflow experiment of grid 'demo' was deleted (it is in MLflow's trash" in line
