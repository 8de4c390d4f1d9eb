"""``lessdata status`` in the report's order, ``--watch``, and ``lessdata list`` (a stored
plan whose trials have no run yet: every trial pending)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from orchestrator.plan import PlanOptions, resolve_plan, write_plan
from tests.conftest import BIN, run_cli


@pytest.fixture
def planned(tmp_path: Path) -> Path:
    """The demo grid's plan in ``tmp_path/store``, its MLflow store empty."""
    plan = resolve_plan(PlanOptions(grid="demo", storage=tmp_path / "store",
                                    tracking_uri=f"sqlite:///{tmp_path}/m.db"))
    write_plan(plan)
    (tmp_path / "m.db").touch()  # MLflow makes its tables in it on first use
    return tmp_path / "store"


def test_status_is_in_report_order(tmp_path: Path, planned: Path) -> None:
    """Benchmark, E1, E2, ..., E10, E20 (not E1, E10, E2, E20), seeds within."""
    out = run_cli("status", "demo", "--storage", str(planned), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    trials = json.loads(out.stdout)["trials"]
    assert [(t["experiment"], t["seed"]) for t in trials[:4]] == [
        ("Benchmark", 0), ("Benchmark", 1), ("E1", 0), ("E1", 1)]
    assert [t["experiment"] for t in trials][::2] == [
        "Benchmark", "E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9", "E10", "E20"]


def test_status_watch_prints_again_while_trials_are_pending(tmp_path: Path,
                                                            planned: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired) as stopped:
        subprocess.run([str(BIN / "lessdata"), "status", "demo", "--storage", str(planned),
                        "--watch", "0.2"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=20)
    printed = stopped.value.stdout
    text = printed.decode() if isinstance(printed, bytes) else (printed or "")
    assert text.count("grid demo: pending=24") >= 2, text[-2000:]


def test_list_shows_the_grids_of_a_storage(tmp_path: Path, planned: Path) -> None:
    out = run_cli("list", "--storage", str(planned), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (row,) = json.loads(out.stdout)
    assert row["name"] == "demo" and row["trials"] == 24
    assert (row["finished"], row["failed"]) == (0, 0)
    assert row["tracking_uri"] == f"sqlite:///{tmp_path}/m.db"
    empty = run_cli("list", "--storage", str(tmp_path / "nothing"), cwd=tmp_path)
    assert empty.returncode == 0 and "no grids submitted" in empty.stdout
