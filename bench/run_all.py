"""Run every benchmark, one after the other, and print one table: row, ratio, goal, met.

Each benchmark runs alone in its own process (its own torch threads, Ray, MLflow server),
never two at once, so they do not disturb each other's timings. The exit code is 0 when
every benchmark ran, whether or not its goals were met, and 1 when one failed.

    python bench/run_all.py [--quick] [--rows throughput,selection,...] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from harness import Row, format_table

BENCH = Path(__file__).resolve().parent
SCRIPTS = {
    "throughput": "trainer_throughput.py",
    "evaluations": "runtime_vs_evaluations.py",
    "selection": "selection_overhead.py",
    "orchestration": "orchestration_overhead.py",
    "mlflow": "mlflow_logging.py",
    "writer": "writer_throughput.py",
    "scale": "scale.py",
    "trial": "trial_overhead.py",
    "journal": "search_journal.py",
    "demo": "demo_report.py",
}
TIMEOUT_S = 1800


def run_script(key: str, quick: bool, device: str) -> tuple[list[Row], float]:
    """One benchmark in a subprocess: its rows (an error row if it failed) and its seconds."""
    script = BENCH / SCRIPTS[key]
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(script), "--json", str(out), "--device", device]
        if quick:
            cmd.append("--quick")
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
            failure = "" if proc.returncode == 0 and out.exists() else (
                f"exit code {proc.returncode}\n{proc.stderr[-3000:]}")
        except subprocess.TimeoutExpired:
            failure = f"timed out after {TIMEOUT_S} s"
        elapsed = time.perf_counter() - start
        if failure:
            print(f"{SCRIPTS[key]} failed: {failure}", file=sys.stderr)
            return [Row(f"{key} (failed)", math.nan, "-", False, failure.splitlines()[0])], elapsed
        return [Row(**r) for r in json.loads(out.read_text())], elapsed


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    parser.add_argument("--rows", default=",".join(SCRIPTS),
                        help=f"comma-separated benchmarks among: {', '.join(SCRIPTS)}")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.rows.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SCRIPTS]
    if unknown or not keys:
        parser.error(f"unknown rows {unknown}; expected a comma-separated list of: "
                     f"{', '.join(SCRIPTS)}")
    args.keys = keys
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    rows: list[Row] = []
    for key in args.keys:
        print(f"running {SCRIPTS[key]} ...", file=sys.stderr, flush=True)
        script_rows, elapsed = run_script(key, args.quick, args.device)
        print(f"  done in {elapsed:.0f} s", file=sys.stderr, flush=True)
        rows.extend(script_rows)
    print(format_table(rows))
    print()
    for r in rows:
        print(f"- {r.name}: {r.detail}")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 1 if any(math.isnan(r.ratio) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
