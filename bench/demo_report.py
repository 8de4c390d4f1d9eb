"""Row 6: the demo grid's report, runtime ratio vs evaluation ratio.

A real ``lessdata submit demo`` (the Benchmark, E1-E9, E10 and E20, 2 seeds each, on
digits, as ``make demo`` runs it: a local Ray started by the CLI, one CPU per trial) into
a fresh SQLite store, then ``lessdata report demo --json``. Per experiment the report
gives ``runtime_ratio`` (mean training time ``train_s`` over the Benchmark's: the batches'
forward, backward and optimizer steps only, the test pass and selection timed apart, the
worker warmed up before its first trial, the trials interleaved seed-major) and
``evaluation_ratio`` (images trained on, over the Benchmark's). The paper's claim is that
the two are equal; the row is the largest |runtime_ratio - evaluation_ratio| over the
experiments, the detail the report's verdict (``runtime_comparable`` and its note) and the
worst experiment. ``--quick`` runs 2 epochs instead of 4.

    python bench/demo_report.py [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Goal, Options, Row, main

GOAL = Goal("<=", 0.05)
LESSDATA = Path(sys.executable).parent / "lessdata"


def _cli(*args: str, cwd: Path) -> str:
    out = subprocess.run([str(LESSDATA), *args], cwd=cwd, capture_output=True, text=True,
                         timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"lessdata {args[0]} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout


def demo_report(quick: bool) -> dict:
    """Submit the demo grid into a fresh store; its report as ``--json`` gives it."""
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-demo-") as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        submit = ["submit", "demo", "--tracking-uri", uri, "--storage", str(root / "store"),
                  "--json"]
        _cli(*submit, *(["--epochs", "2"] if quick else []), cwd=root)
        report = ["report", "demo", "--tracking-uri", uri, "--storage", str(root / "store")]
        print(_cli(*report, cwd=root), file=sys.stderr)  # the text report, for the record
        return dict(json.loads(_cli(*report, "--json", cwd=root)))


def measure(options: Options) -> list[Row]:
    report = demo_report(options.quick)
    gaps = {row["experiment"]: abs(row["runtime_ratio"] - row["evaluation_ratio"])
            for row in report["experiments"]
            if row["runtime_ratio"] is not None and row["evaluation_ratio"] is not None}
    worst = max(gaps, key=lambda name: gaps[name])
    rows = {row["experiment"]: row for row in report["experiments"]}
    detail = (f"worst {worst}: runtime ratio {rows[worst]['runtime_ratio']:.3f}, evaluation "
              f"ratio {rows[worst]['evaluation_ratio']:.3f}; CPU-time ratio "
              f"{rows[worst]['cpu_ratio']:.3f}; report: runtime_comparable "
              f"{report['runtime_comparable']} ({report['runtime_note']}); on CPU time: "
              f"{report['runtime_cpu_note']}; every gap "
              f"{ {k: round(v, 3) for k, v in gaps.items()} }")
    return [Row.judged("demo report: runtime ratio vs evaluation ratio", gaps[worst], GOAL,
                       detail)]


if __name__ == "__main__":
    sys.exit(main(measure, __doc__ or ""))
