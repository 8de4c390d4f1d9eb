"""The Ray token as a file, the way the compose and KubeRay setups give it, on real Ray.

Every Ray process of a token-auth cluster here reads the token from the file named by
RAY_AUTH_TOKEN_PATH (no RAY_AUTH_TOKEN anywhere): the nodes, `ray health-check` and a
driver. A driver with another token's file is refused, and no Ray process of the
cluster holds the token in its environment.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BIN, ray_cluster

pytestmark = pytest.mark.slow

DRIVER = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
          "print('nodes', len([n for n in ray.nodes() if n['Alive']]))")


def _token_env(path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}


def test_nodes_drivers_and_health_checks_read_the_token_file(tmp_path: Path) -> None:
    token = secrets.token_hex(32)
    token_file = tmp_path / "ray_auth_token"
    token_file.write_text(token)  # make-secrets.sh writes no newline
    env = _token_env(token_file)
    with ray_cluster(nodes=2, cpus_per_node=1, env=env) as cluster:
        out = subprocess.run([sys.executable, "-c", DRIVER, cluster.address], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "nodes 2" in out.stdout, out.stderr[-2000:]
        health = subprocess.run([str(BIN / "ray"), "health-check", f"--address={cluster.address}"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert health.returncode == 0, health.stderr[-2000:]

        wrong = tmp_path / "wrong_token"
        wrong.write_text(secrets.token_hex(32))
        out = subprocess.run([sys.executable, "-c", DRIVER, cluster.address],
                             env={**_token_env(wrong), "RAY_NUM_REDIS_GET_RETRIES": "3"},
                             capture_output=True, text=True, timeout=180)
        assert out.returncode != 0 and "nodes" not in out.stdout

        # The token is in a file, not in the environment of any process of the cluster.
        session_ids = {proc.pid for proc in cluster.procs}
        checked = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getsid(int(entry.name)) not in session_ids:
                    continue
                environ = (entry / "environ").read_bytes()
            except (OSError, ProcessLookupError):
                continue
            assert token.encode() not in environ, entry.name
            # Workers retitle themselves over their environment block (setproctitle):
            # count those whose environment still shows the path.
            checked += b"RAY_AUTH_TOKEN_PATH=" in environ
        assert checked >= 4  # GCS, raylets, agents
