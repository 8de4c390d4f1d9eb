"""A full disk under a real grid: one line naming the folder and the space needed, exit 3,
no partial files left, and ``lessdata resume`` finishes every trial once space is freed.

The storage is a real tmpfs (``mount -t tmpfs``, root only: skipped otherwise) of 4 MB,
filled up by a file of ours to leave room for the grid's record, Tune's own small files
and about one checkpoint (some 580 kB for this model at epoch 1): the disk fills up
mid-grid, the first checkpoint written is kept and resumed from.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import run_cli
from tests.orchestrator.checks import assert_complete, trial_runs
from tests.orchestrator.test_faults import TRAIN, _grid
from tests.services import RayCluster

pytestmark = pytest.mark.slow

EPOCHS = 3
SIZE_KB = 4096
LEFT_KB = 900  # free after the filler: the record, Tune's files and one checkpoint at most


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "store"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_KB}k", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _partials(store: Path) -> list[Path]:
    return [p for p in store.rglob("*") if "partial-" in p.name]


def test_full_storage_is_one_line_then_resume_finishes(tmp_path: Path, small_tmpfs: Path,
                                                       local_ray: RayCluster) -> None:
    name = "full-disk"
    store = small_tmpfs
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    filler = store / "filler.bin"
    filler.write_bytes(b"\0" * ((SIZE_KB - LEFT_KB) * 1024))
    grid = _grid(tmp_path / "g.yaml", name, ["Benchmark", "E1"], epochs=EPOCHS)
    out = run_cli("submit", str(grid), "--tracking-uri", uri, "--address", local_ray.address,
                  "--storage", str(store), cwd=tmp_path, timeout=600)
    # Tune logs each failed attempt with the worker's traceback; the driver's last word is
    # the one error line.
    errors = [line for line in out.stderr.splitlines() if ": error: " in line]
    assert out.returncode == 3, (out.returncode, out.stderr[-3000:])
    assert len(errors) == 1 and errors[-1] == out.stderr.strip().splitlines()[-1], errors
    line = errors[0]
    assert line.startswith("lessdata submit: error: no space left in ") and (
        f"{store}/checkpoints/" in line), line
    assert re.search(r" to write a checkpoint: it needs \d+\.\d kB, \d+\.\d kB is free there; "
                     r"free space there, then run `lessdata resume full-disk`$", line), line
    assert _partials(store) == [], _partials(store)
    assert len(list(store.rglob("trainer.pt"))) <= 1  # complete, or none at all

    filler.unlink()  # space is freed
    resumed = run_cli("resume", name, "--storage", str(store), "--address", local_ray.address,
                      cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    client = MlflowClient(uri)
    runs = assert_complete(client, name, ["Benchmark", "E1"], 1, TRAIN, EPOCHS)
    assert len(runs) == len(trial_runs(client, name)) == 2  # one MLflow run per trial
    assert _partials(store) == []
