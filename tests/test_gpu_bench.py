"""bench/gpu.sh runs end to end on CPU with --smoke (the GPU figures need a GPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_gpu_bench_smoke_writes_every_row(tmp_path: Path) -> None:
    out_file = tmp_path / "gpu.md"
    out = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu.sh"), "--smoke", "--device", "cpu", "--out",
         str(out_file)],
        capture_output=True, text=True, timeout=600,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin",
             "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out_file.read_text()
    for row in ("images/s fp32", "images/s tf32", "images/s bf16", "one MNIST epoch",
                "digits top-1 after 1 epoch(s), fp32", "digits top-1, tf32",
                "digits top-1, bf16 |", "1 packed trial(s)", "2 packed trial(s)"):
        line = next(line for line in text.splitlines() if row in line)
        figure = line.split("|")[2].strip()
        assert figure[0].isdigit() or figure.startswith("skipped"), line
    assert text == out.stdout.strip() + "\n"
    # The fp32 reference runs after the TF32 throughput row, in fp32 all the same.
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in text.splitlines()
            if line.startswith("| digits top-1")}
    assert "matmul highest, cudnn tf32 off" in rows["digits top-1 after 1 epoch(s), fp32"]
    assert "matmul high, cudnn tf32 on" in rows["digits top-1, tf32"]
    assert "matmul highest, cudnn tf32 off" in rows["digits top-1, bf16"]
