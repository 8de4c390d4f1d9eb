"""The code stays ruff- and mypy-clean (STYLE.md)."""

from __future__ import annotations

import subprocess

from tests.conftest import BIN, REPO


def test_ruff_clean() -> None:
    out = subprocess.run([str(BIN / "ruff"), "check", "trainers", "orchestrator", "tests",
                          "bench"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]


def test_mypy_clean() -> None:
    out = subprocess.run([str(BIN / "mypy"), "trainers", "orchestrator"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
