"""The driver never imports torch: it plans, checks data files and tracks; trials import
it on the workers (a fresh `lessdata submit` starts ~1.5 s sooner)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_driver_side_modules_do_not_import_torch(tmp_path: Path) -> None:
    script = f"""
import sys
from pathlib import Path
import orchestrator.cli, orchestrator.commands, orchestrator.submit
import orchestrator.callbacks, orchestrator.entry, orchestrator.tracking
from orchestrator.grid import load_grid
from trainers.data import check_dataset
trials = load_grid("demo").trials()
check_dataset("mnist", Path({str(REPO.parent / "shared" / "datasets")!r}))
assert trials and "torch" not in sys.modules, sorted(m for m in sys.modules if "torch" in m)
import orchestrator.trainable
assert "torch" in sys.modules
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
