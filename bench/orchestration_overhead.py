"""Row 4: a grid through the real ``submit`` over the ideal of its trials run in-process.

B: 20 tiny trials (digits, width 0.125, 300 training images, 2 epochs, codecarbon on,
a checkpoint every epoch) through ``orchestrator.submit.submit``: a local Ray started
with 2 CPUs (address None; its start is inside the wall time), one CPU per trial, a
SQLite MLflow store and the storage in a temp dir, the grid YAML in a temp file.

A: the same 20 trials run in-process with ``trainers.run.run_training``, one after the
other; the ideal wall time of B is their sum over the 2 concurrent slots.

The ratio is B / ideal. Everything B adds is overhead: Ray's start, Tune's scheduling,
worker processes (each imports torch and the trainer), checkpoints, MLflow runs, params
and per-epoch metrics, the final report. Its per-trial share is printed too. A and B
alternate (A, B, A, B) and the median ratio is taken.

    python bench/orchestration_overhead.py [--quick]
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import Goal, Options, Row, interleave, main, median, median_ratio, timed
from orchestrator.grid import load_grid
from orchestrator.submit import SubmitOptions, connect_ray, submit
from trainers.run import run_training

GOAL = Goal("<=", 1.15)
SLOTS = 2
EXPERIMENTS_FULL = ["Benchmark", "E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9"]
EXPERIMENTS_QUICK = ["Benchmark"]


def grid_yaml(experiments: list[str]) -> dict[str, Any]:
    """The benchmark grid: len(experiments) x 2 seeds tiny trials on digits."""
    return {
        "name": "bench-orchestration",
        "dataset": "digits",
        "epochs": 2,
        "seeds": 2,
        "experiments": experiments,
        "model": {"width": 0.125},
        "training": {"train_subset": 300, "threads": 1},
        "resources": {"cpu": 1, "gpu": 0},
        "checkpoint_every": 1,
    }


def in_process_s(grid_path: Path) -> float:
    """A: every trial of the grid in this process, one after the other (seconds)."""
    trials = load_grid(grid_path).trials()
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-inproc-") as tmp:
        start = time.perf_counter()
        for spec in trials:
            run_training(spec.config, Path(tmp) / spec.key.replace("/", "_"))
        return time.perf_counter() - start


@dataclass
class Breakdown:
    """Where B's time went, one entry per repetition."""

    ray_start_s: list[float] = field(default_factory=list)
    inside_trials_s: list[float] = field(default_factory=list)
    """Sum over trials of ``trial_s``: the trainable's own time, from its first line."""


def trial_seconds(tracking_uri: str, grid: str) -> float:
    """Sum of the ``trial_s`` every finished trial logged to MLflow."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(grid)
    assert experiment is not None, f"no MLflow experiment {grid}"
    runs = client.search_runs([experiment.experiment_id], "tags.`lessdata.kind` = 'trial'")
    return sum(run.data.metrics["trial_s"] for run in runs)


def submitted_s(grid_path: Path, breakdown: Breakdown) -> float:
    """B: the grid through the real ``submit`` on a fresh local Ray (seconds, Ray start in)."""
    import ray

    with tempfile.TemporaryDirectory(prefix="lessdata-bench-submit-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        options = SubmitOptions(grid=str(grid_path), tracking_uri=uri, address=None,
                                storage=Path(tmp) / "store", quiet=True)
        start = time.perf_counter()
        breakdown.ray_start_s.append(timed(lambda: connect_ray(None, num_cpus=SLOTS)))
        result = submit(options)
        wall_s = time.perf_counter() - start
        ray.shutdown()
        if result.failed or len(result.finished) != result.trials:
            raise RuntimeError(f"submit did not finish every trial: {result.as_dict()}")
        breakdown.inside_trials_s.append(trial_seconds(uri, result.name))
    return wall_s


def measure(options: Options) -> list[Row]:
    experiments, reps = (EXPERIMENTS_QUICK, 1) if options.quick else (EXPERIMENTS_FULL, 2)
    logging.getLogger("ray").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-grid-") as tmp:
        grid_path = Path(tmp) / "grid.yaml"
        grid_path.write_text(yaml.safe_dump(grid_yaml(experiments)))
        trials = len(load_grid(grid_path).trials())
        breakdown = Breakdown()
        sequential_s, wall_s = interleave(
            [lambda: in_process_s(grid_path), lambda: submitted_s(grid_path, breakdown)], reps
        )
    ideal_s = [s / SLOTS for s in sequential_s]
    ratio = median_ratio(wall_s, ideal_s)
    return [Row.judged("orchestration wall / ideal", ratio, GOAL,
                       _explain(trials, wall_s, sequential_s, breakdown))]


def _explain(trials: int, wall_s: list[float], sequential_s: list[float],
             breakdown: Breakdown) -> str:
    """Per-trial overhead in slot-seconds: B's slot time beyond A's, split where measured."""
    def per_trial(values: list[float]) -> float:
        return median(values) / trials

    overhead = [w * SLOTS - s for w, s in zip(wall_s, sequential_s, strict=True)]
    inside = [t - s for t, s in zip(breakdown.inside_trials_s, sequential_s, strict=True)]
    ray_start = [r * SLOTS for r in breakdown.ray_start_s]
    rest = [o - i - r for o, i, r in zip(overhead, inside, ray_start, strict=True)]
    return (
        f"{trials} trials, {SLOTS} slots, {len(wall_s)} interleaved pairs; median wall "
        f"{median(wall_s):.1f} s vs ideal {median(sequential_s) / SLOTS:.1f} s (in-process "
        f"sum {median(sequential_s):.1f} s / {SLOTS}); overhead per trial "
        f"{per_trial(overhead):.2f} slot-s = Ray start {per_trial(ray_start):.2f} "
        f"+ inside the trainable beyond in-process (checkpoints, Tune reports, hardware "
        f"probe) {per_trial(inside):.2f} + outside it (worker process start and imports, "
        f"Tune scheduling, MLflow store and writes on the driver) {per_trial(rest):.2f}"
    )


if __name__ == "__main__":
    sys.exit(main(measure, __doc__ or ""))
