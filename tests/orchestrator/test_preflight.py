"""A Ray address where nothing, or something else, answers: one line, quickly."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.preflight import probe_gcs
from tests.conftest import RayCluster, run_cli
from trainers.errors import ClusterError


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_closed_port_is_refused_at_once() -> None:
    port = _closed_port()
    with pytest.raises(ClusterError, match=f"no Ray cluster answers at 127.0.0.1:{port} "
                                           r"\(connection refused"):
        probe_gcs(f"127.0.0.1:{port}", 5)


def test_a_web_server_is_not_ray(http_port: int) -> None:
    with pytest.raises(ClusterError, match="nothing there speaks Ray's protocol"):
        probe_gcs(f"127.0.0.1:{http_port}", 5)


def test_a_silent_port_times_out_within_the_bound() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.monotonic()
        with pytest.raises(ClusterError, match="no answer, checked for 1 s at most"):
            probe_gcs(f"127.0.0.1:{silent.getsockname()[1]}", 1.0)
        assert time.monotonic() - start < 1.0 + 1.0


def test_a_real_ray_head_answers(local_ray: RayCluster) -> None:
    probe_gcs(local_ray.address, 10)  # no error


@pytest.mark.parametrize("kind", ["closed", "http"])
def test_submit_to_a_dead_address_is_one_line(tmp_path: Path, http_port: int, kind: str) -> None:
    port = _closed_port() if kind == "closed" else http_port
    start = time.monotonic()
    out = run_cli("submit", "demo", "--address", f"127.0.0.1:{port}", "--tracking-uri",
                  f"sqlite:///{tmp_path}/m.db", "--storage", str(tmp_path / "s"),
                  cwd=tmp_path, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1, out.stderr[-2000:]
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in lines[0]
    assert time.monotonic() - start < 30
