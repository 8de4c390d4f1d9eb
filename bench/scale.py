"""Row 8: what a submit costs beyond its trials as the grid grows, and reading it back.

Grids of N tiny trials (digits, 300 training images, width 0.125, 1 epoch, one thread,
codecarbon on, a checkpoint per epoch; the Benchmark x N seeds) go through the real
CLI, ``lessdata submit GRID --address ... --tracking-uri ... --storage ... --json`` (a
fresh process), against a running Ray cluster of 2 CPUs and a running ``mlflow server``
(both started once, before the first grid, not counted), for N = 20, 200 and 1,000
(``--quick``: 20 and 100; ``$LESSDATA_SCALE_N="20,200"`` picks others). For each N:

- orchestration per trial: (submit's wall time - the trials' own ``trial_s``, summed
  over the grid from MLflow, / 2 slots) / N: what the CLI, Ray Tune, the driver's
  callbacks and the tracking cost each trial beyond the trial itself;
- the driver's peak memory: the submit process's resident set (``/proc``), sampled every 0.2 s;
- ``lessdata report NAME --json`` and ``lessdata status NAME --json`` wall time over the
  N runs (fresh processes).

Rows: the growth of the per-trial cost from the second largest N to the largest (goal
<= 1.2: no part that grows with N per trial); the driver's peak memory at the largest N
over that at the second largest (goal <= 1.1: flat, at most a tenth more for five times
the trials; the detail gives the KB each added trial cost); ``report`` and ``status`` at
the largest N over 10 s (goal <= 1).

    python bench/scale.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness import Goal, Options, Row, main
from orchestration_overhead import SLOTS, grid_yaml
from orchestrator import record
from orchestrator.record import Kind, Tag
from workloads import mlflow_server, ray_head

GROWTH_GOAL = Goal("<=", 1.2)
MEMORY_GOAL = Goal("<=", 1.1)
READ_GOAL = Goal("<=", 1.0)
READ_BUDGET_S = 10.0
SIZES_FULL = (20, 200, 1_000)
SIZES_QUICK = (20, 100)
LESSDATA = Path(sys.executable).parent / "lessdata"


@dataclass(frozen=True)
class Point:
    """One grid size's figures."""

    trials: int
    wall_s: float
    trial_s: float
    """The trials' own seconds, summed."""
    peak_rss_mb: float
    report_s: float
    status_s: float

    @property
    def per_trial_s(self) -> float:
        return (self.wall_s - self.trial_s / SLOTS) / self.trials


def sizes(quick: bool) -> tuple[int, ...]:
    chosen = os.environ.get("LESSDATA_SCALE_N")
    if chosen:
        return tuple(int(n) for n in chosen.split(","))
    return SIZES_QUICK if quick else SIZES_FULL


def scale_grid(name: str, trials: int) -> dict[str, Any]:
    """``trials`` tiny one-epoch trials: the Benchmark x ``trials`` seeds (at one epoch
    most schedules coincide with the Benchmark's, and coinciding trials run once)."""
    grid = grid_yaml(name, ["Benchmark"], "tiny")
    grid.update(epochs=1, seeds=trials, checkpoint_every=1)
    return grid


def rss_bytes(pid: int) -> int:
    """A process's resident set now (Linux ``/proc``; 0 once it is gone)."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # kB
    return 0


def timed_cli(args: list[str], timeout_s: float = 7200) -> tuple[float, float, str]:
    """Wall seconds, peak resident MB and stdout of ``lessdata ARGS`` (must exit 0)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([str(LESSDATA), *args], stdout=out, stderr=err, text=True)
        peak = 0
        while proc.poll() is None and time.perf_counter() - start < timeout_s:
            peak = max(peak, rss_bytes(proc.pid))
            time.sleep(0.2)
        code = proc.wait(timeout=60)
        wall_s = time.perf_counter() - start
        out.seek(0), err.seek(0)
        if code != 0:
            raise RuntimeError(f"lessdata {args[0]} failed ({code}): {err.read()[-2000:]}")
        return wall_s, peak / 2**20, out.read()


def trials_seconds(uri: str, name: str) -> float:
    """Sum of the grid's trials' own ``trial_s`` (one paginated search)."""
    client = record.client(uri)
    experiment = record.experiment_id(client, name)
    assert experiment is not None, f"no experiment {name}"
    runs = record.search(client, experiment, {Tag.GRID: name, Tag.KIND: Kind.TRIAL})
    return sum(r.data.metrics.get("trial_s", 0.0) for r in runs)


def measure_point(root: Path, address: str, uri: str, trials: int) -> Point:
    name = f"bench-scale-{trials}"
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(scale_grid(name, trials)))
    storage = str(root / "store")
    wall_s, peak_mb, out = timed_cli(["submit", str(path), "--address", address,
                                      "--tracking-uri", uri, "--storage", storage, "--json"])
    result = json.loads(out)
    if result["failed"] or len(result["finished"]) != trials:
        raise RuntimeError(f"submit did not finish every trial: {result}"[:3000])
    report_s, _, _ = timed_cli(["report", name, "--storage", storage, "--json"])
    status_s, _, _ = timed_cli(["status", name, "--storage", storage, "--json"])
    point = Point(trials, wall_s, trials_seconds(uri, name), peak_mb, report_s, status_s)
    print(f"N={trials}: {point}, per trial {point.per_trial_s:.3f} s", file=sys.stderr,
          flush=True)
    return point


def rows(points: list[Point]) -> list[Row]:
    """The growth and memory rows (second largest N to largest) and the read rows at the
    largest N."""
    small, large = points[-2], points[-1]
    growth = large.per_trial_s / small.per_trial_s
    added_kb = ((large.peak_rss_mb - small.peak_rss_mb) * 1024
                / (large.trials - small.trials))
    marginal = ((large.per_trial_s * large.trials - small.per_trial_s * small.trials)
                / (large.trials - small.trials))
    each = f"each trial from N={small.trials:,} to {large.trials:,} added " \
        f"{marginal * 1e3:.0f} ms of orchestration; " + "; ".join(
        f"N={p.trials:,}: wall {p.wall_s:.1f} s, trials {p.trial_s:.1f} s / {SLOTS} slots, "
        f"orchestration {p.per_trial_s * 1e3:.0f} ms per trial, driver peak "
        f"{p.peak_rss_mb:.0f} MB, report {p.report_s:.1f} s, status {p.status_s:.1f} s"
        for p in points)
    return [
        Row.judged(f"scale orchestration per trial N={small.trials:,} -> {large.trials:,}",
                   growth, GROWTH_GOAL, each),
        Row.judged(f"scale driver peak memory N={small.trials:,} -> {large.trials:,}",
                   large.peak_rss_mb / small.peak_rss_mb, MEMORY_GOAL,
                   f"{small.peak_rss_mb:.0f} -> {large.peak_rss_mb:.0f} MB, "
                   f"{added_kb:.0f} KB per added trial"),
        Row.judged(f"scale report over {large.trials:,} runs / {READ_BUDGET_S:g} s",
                   large.report_s / READ_BUDGET_S, READ_GOAL,
                   f"`lessdata report NAME --json`, {large.report_s:.1f} s"),
        Row.judged(f"scale status over {large.trials:,} runs / {READ_BUDGET_S:g} s",
                   large.status_s / READ_BUDGET_S, READ_GOAL,
                   f"`lessdata status NAME --json`, {large.status_s:.1f} s"),
    ]


def measure(options: Options) -> list[Row]:
    chosen = sizes(options.quick)
    if len(chosen) < 2:
        raise ValueError(f"at least two grid sizes are needed for a growth ratio: {chosen}")
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-scale-") as tmp, \
            ExitStack() as stack:
        address = stack.enter_context(ray_head(SLOTS))
        uri = stack.enter_context(mlflow_server())
        return rows([measure_point(Path(tmp), address, uri, n) for n in chosen])


if __name__ == "__main__":
    sys.exit(main(measure, __doc__ or ""))
