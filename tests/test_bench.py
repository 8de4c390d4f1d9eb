"""Smoke test of the benchmarks: ``bench/run_all.py --quick`` runs and prints its table.

Only that the scripts work and report numeric ratios: timings on a shared CI machine are
noise, so the goals are not asserted here (docs/benchmarks.md records a full run).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^(?P<name>\S.*?)\s{2,}(?P<ratio>\S+)\s{2,}(?P<goal>\S.*?)\s{2,}(?P<met>yes|no)$")


def _table(stdout: str) -> dict[str, float]:
    """Row name -> ratio, from the table run_all prints (header and rule skipped)."""
    rows = {}
    for line in stdout.splitlines():
        match = ROW.match(line)
        if match and match["name"] != "row":
            rows[match["name"]] = float(match["ratio"])
    return rows


def test_quick_run_prints_numeric_ratios_for_the_chosen_rows() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--quick",
         "--rows", "selection,throughput"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _table(out.stdout)
    assert "trainer throughput / bare loop" in rows, out.stdout
    selection = [name for name in rows if name.startswith("selection ")]
    assert any("N=60,000" in name for name in selection), out.stdout
    assert any("N=1,200,000" in name for name in selection), out.stdout
    assert all(math.isfinite(ratio) and ratio > 0 for ratio in rows.values()), out.stdout


def test_unknown_row_is_a_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--rows", "nope"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "unknown rows ['nope']" in out.stderr and "throughput" in out.stderr
