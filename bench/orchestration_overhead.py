"""Row 4: a grid through the real ``submit`` over the same trials run by hand.

Two workloads, each 20 trials (Benchmark and E1-E9 x 2 seeds; digits, width 0.125,
2 epochs, one CPU thread, codecarbon on, a checkpoint every epoch):

- *tiny*: 300 training images, about 0.6 s of work per trial: the worst case for a
  per-trial cost;
- *small*: all 1,437 training images, about 2 s per trial;
- *medium*: the same at width 0.25, about 5 s per trial.

A, the ideal: what a researcher does without lessdata on the same 2 slots: 2 fresh
Python processes side by side, each running its half of the trials one after the
other with ``trainers.run.run_training``. Wall time from their start to the end of the
last, so A pays what any fresh process pays (importing torch, the first passes).

B: the same grid as a user submits it: ``lessdata submit GRID --address ...
--tracking-uri ...`` (a fresh process: the CLI's start, imports and connection count)
against a running Ray cluster of 2 CPUs (``ray start --head``) and a running ``mlflow
server`` on 127.0.0.1, one CPU per trial; every trial a Ray Tune trial, every epoch
reported, checkpointed and logged to MLflow, runs and their parents made, the codecarbon
CSV logged. The cluster and the server exist before B starts, as they do for a service
(their start-up is timed and printed, not counted); each repetition submits a new grid
name.

The ratio is B / A, median over interleaved repetitions (A, B, A, B, ...).

    python bench/orchestration_overhead.py [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import Goal, Options, Row, interleave, main, median, median_ratio
from orchestrator.grid import load_grid
from trainers.run import run_training
from workloads import mlflow_server, ray_head

GOAL = Goal("<=", 1.15)
SLOTS = 2
EXPERIMENTS_FULL = ["Benchmark", "E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9"]
EXPERIMENTS_QUICK = ["Benchmark"]
WORKLOADS: dict[str, tuple[int | None, float]] = {  # name -> (train_subset, model width)
    "tiny": (300, 0.125),
    "small": (None, 0.125),
    "medium": (None, 0.25),
}


def grid_yaml(name: str, experiments: list[str], workload: str) -> dict[str, Any]:
    """The benchmark grid: len(experiments) x 2 seeds trials on digits, one thread each."""
    train_subset, width = WORKLOADS[workload]
    training: dict[str, Any] = {"threads": 1}
    if train_subset is not None:
        training["train_subset"] = train_subset
    return {
        "name": name,
        "dataset": "digits",
        "epochs": 2,
        "seeds": 2,
        "experiments": experiments,
        "model": {"width": width},
        "training": training,
        "resources": {"cpu": 1, "gpu": 0},
        "checkpoint_every": 1,
    }


def run_slot(grid_path: Path, slot: int, out: Path) -> None:
    """One slot of A (in its own process): every SLOTS-th trial, one after the other."""
    for spec in load_grid(grid_path).trials()[slot::SLOTS]:
        run_training(spec.config, out / spec.key.replace("/", "_"))


def by_hand_s(grid_path: Path) -> float:
    """A: SLOTS fresh processes side by side, each running its share (seconds)."""
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-byhand-") as tmp:
        start = time.perf_counter()
        procs = [
            subprocess.Popen([sys.executable, __file__, "--slot", str(slot), str(grid_path), tmp],
                             stdout=subprocess.DEVNULL)
            for slot in range(SLOTS)
        ]
        codes = [p.wait() for p in procs]
        wall_s = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"a by-hand slot failed: exit codes {codes}")
    return wall_s


def submitted_s(grid_path: Path, setting: Setting) -> float:
    """B: ``lessdata submit`` in a fresh process against the running services (seconds)."""
    cmd = [str(Path(sys.executable).parent / "lessdata"), "submit", str(grid_path),
           "--address", setting.address, "--tracking-uri", setting.uri,
           "--storage", str(setting.root / "store"), "--json"]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    wall_s = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"lessdata submit failed ({out.returncode}): {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    if result["failed"] or len(result["finished"]) != result["trials"]:
        raise RuntimeError(f"submit did not finish every trial: {result}")
    return wall_s


@dataclass
class Setting:
    """What every workload of one run shares: the services, fresh grid names."""

    root: Path
    address: str
    uri: str
    services_s: float
    names: Iterator[int] = field(default_factory=lambda: iter(range(1_000)))

    def grid(self, workload: str, experiments: list[str]) -> Path:
        path = self.root / f"grid-{workload}-{next(self.names)}.yaml"
        path.write_text(yaml.safe_dump(grid_yaml(f"bench-orch-{path.stem}", experiments, workload)))
        return path


def workload_row(setting: Setting, workload: str, experiments: list[str], reps: int) -> Row:
    """A and B interleaved ``reps`` times on one workload."""
    grid_path = setting.grid(workload, experiments)
    trials = len(load_grid(grid_path).trials())
    hand_s, wall_s = interleave(
        [lambda: by_hand_s(grid_path),
         lambda: submitted_s(setting.grid(workload, experiments), setting)], reps)
    return Row.judged(f"orchestration {workload} trials / by hand",
                      median_ratio(wall_s, hand_s), GOAL,
                      _explain(trials, wall_s, hand_s, setting))


def measure(options: Options) -> list[Row]:
    plan = [("tiny", EXPERIMENTS_QUICK, 1)] if options.quick else [
        ("tiny", EXPERIMENTS_FULL, 3), ("small", EXPERIMENTS_FULL, 2),
        ("medium", EXPERIMENTS_FULL, 2)]
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-orch-") as tmp, ExitStack() as stack:
        start = time.perf_counter()
        address = stack.enter_context(ray_head(SLOTS))
        uri = stack.enter_context(mlflow_server())
        setting = Setting(Path(tmp), address, uri, time.perf_counter() - start)
        return [workload_row(setting, *step) for step in plan]


def _explain(trials: int, wall_s: list[float], hand_s: list[float], setting: Setting) -> str:
    per_trial = [(w - h) * SLOTS / trials for w, h in zip(wall_s, hand_s, strict=True)]
    return (
        f"{trials} trials, {SLOTS} slots, {len(wall_s)} interleaved pairs; median wall "
        f"through `lessdata submit` {median(wall_s):.1f} s vs by hand {median(hand_s):.1f} s: "
        f"{median(wall_s) - median(hand_s):.1f} s more in all, "
        f"{median(per_trial):.2f} slot-s per trial; not counted: starting the Ray head "
        f"and the MLflow server, {setting.services_s:.1f} s"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--slot":
        run_slot(Path(sys.argv[3]), int(sys.argv[2]), Path(sys.argv[4]))
        sys.exit(0)
    sys.exit(main(measure, __doc__ or ""))
