"""Row 4: a grid through the real ``submit`` over the same trials run by hand.

Two workloads, each 20 trials (Benchmark and E1-E9 x 2 seeds; digits, width 0.125,
2 epochs, one CPU thread, codecarbon on, a checkpoint every epoch):

- *tiny*: 300 training images, about 0.6 s of work per trial: the worst case for a
  per-trial cost;
- *small*: all 1,437 training images, about 2 s per trial.

A, the ideal: what a researcher does without lessdata on the same 2 slots: 2 fresh
Python processes side by side, each running its half of the trials one after the
other with ``trainers.run.run_training``. Wall time from their start to the end of the
last, so A pays what any fresh process pays (importing torch, the first passes).

B: the same grid through ``orchestrator.submit.submit``: every trial a Ray Tune trial on
a local Ray cluster of 2 CPUs, one CPU per trial; every epoch reported, checkpointed and
logged to MLflow (SQLite store), runs and their parents made, the final report with
the codecarbon CSV. The cluster and the MLflow store exist before B starts, as they do
for a service (their start-up is timed and printed, not counted); each repetition
submits a new grid name.

The ratio is B / A, median over interleaved repetitions (A, B, A, B, ...).

    python bench/orchestration_overhead.py [--quick]
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import Goal, Options, Row, interleave, main, median, median_ratio, timed
from orchestrator.grid import load_grid
from orchestrator.submit import SubmitOptions, connect_ray, submit
from orchestrator.tracking import Tracker
from trainers.run import run_training

GOAL = Goal("<=", 1.15)
SLOTS = 2
EXPERIMENTS_FULL = ["Benchmark", "E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9"]
EXPERIMENTS_QUICK = ["Benchmark"]
WORKLOADS: dict[str, dict[str, Any]] = {  # name -> the grid's training section
    "tiny": {"train_subset": 300, "threads": 1},
    "small": {"threads": 1},
}


def grid_yaml(name: str, experiments: list[str], training: dict[str, Any]) -> dict[str, Any]:
    """The benchmark grid: len(experiments) x 2 seeds trials on digits."""
    return {
        "name": name,
        "dataset": "digits",
        "epochs": 2,
        "seeds": 2,
        "experiments": experiments,
        "model": {"width": 0.125},
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


@dataclass
class Breakdown:
    """Where B's time went, one entry per repetition."""

    before_tune_s: list[float] = field(default_factory=list)
    """From ``submit``'s call to Tune's start: plan, checks, MLflow runs and params."""


def submitted_s(grid_path: Path, uri: str, storage: Path, breakdown: Breakdown) -> float:
    """B: the grid through the real ``submit`` on the running cluster (seconds)."""
    import orchestrator.submit as submit_module

    options = SubmitOptions(grid=str(grid_path), tracking_uri=uri, address=None,
                            storage=storage, quiet=True)
    run_tune = submit_module._run_tune
    start = time.perf_counter()

    def timed_run_tune(*args: Any, **kwargs: Any) -> None:
        breakdown.before_tune_s.append(time.perf_counter() - start)
        run_tune(*args, **kwargs)

    submit_module._run_tune = timed_run_tune
    try:
        result = submit(options)
    finally:
        submit_module._run_tune = run_tune
    wall_s = time.perf_counter() - start
    if result.failed or len(result.finished) != result.trials:
        raise RuntimeError(f"submit did not finish every trial: {result.as_dict()}")
    return wall_s


@dataclass
class Setting:
    """What every workload of one run shares: the cluster, the store, fresh grid names."""

    root: Path
    uri: str
    ray_s: float
    store_s: float
    names: Iterator[int] = field(default_factory=lambda: iter(range(1_000)))

    def grid(self, workload: str, experiments: list[str]) -> Path:
        path = self.root / f"grid-{workload}-{next(self.names)}.yaml"
        path.write_text(yaml.safe_dump(
            grid_yaml(f"bench-orch-{path.stem}", experiments, WORKLOADS[workload])))
        return path


def workload_row(setting: Setting, workload: str, experiments: list[str], reps: int) -> Row:
    """A and B interleaved ``reps`` times on one workload."""
    grid_path = setting.grid(workload, experiments)
    trials = len(load_grid(grid_path).trials())
    breakdown = Breakdown()

    def through_lessdata() -> float:
        return submitted_s(setting.grid(workload, experiments), setting.uri,
                           setting.root / "store", breakdown)

    hand_s, wall_s = interleave([lambda: by_hand_s(grid_path), through_lessdata], reps)
    return Row.judged(f"orchestration {workload} trials / by hand",
                      median_ratio(wall_s, hand_s), GOAL,
                      _explain(trials, wall_s, hand_s, breakdown, setting))


def measure(options: Options) -> list[Row]:
    import ray

    logging.getLogger("ray").setLevel(logging.ERROR)
    plan = [("tiny", EXPERIMENTS_QUICK, 1)] if options.quick else [
        ("tiny", EXPERIMENTS_FULL, 3), ("small", EXPERIMENTS_FULL, 2)]
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-orch-") as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root}/mlflow.db"
        store_s = timed(lambda: Tracker(uri, "bench-orch-store"))
        ray_s = timed(lambda: connect_ray(None, num_cpus=SLOTS))
        setting = Setting(root, uri, ray_s, store_s)
        try:
            return [workload_row(setting, *step) for step in plan]
        finally:
            ray.shutdown()


def _explain(trials: int, wall_s: list[float], hand_s: list[float], breakdown: Breakdown,
             setting: Setting) -> str:
    overhead = [(w - h) * SLOTS / trials for w, h in zip(wall_s, hand_s, strict=True)]
    return (
        f"{trials} trials, {SLOTS} slots, {len(wall_s)} interleaved pairs; median wall "
        f"through lessdata {median(wall_s):.1f} s vs by hand {median(hand_s):.1f} s; "
        f"overhead {median(overhead):.2f} slot-s per trial, of which before Tune starts "
        f"(plan, checks, MLflow runs and params) {median(breakdown.before_tune_s):.2f} s "
        f"in all; not counted: starting the Ray cluster {setting.ray_s:.1f} s and a new "
        f"MLflow store {setting.store_s:.1f} s"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--slot":
        run_slot(Path(sys.argv[3]), int(sys.argv[2]), Path(sys.argv[4]))
        sys.exit(0)
    sys.exit(main(measure, __doc__ or ""))
