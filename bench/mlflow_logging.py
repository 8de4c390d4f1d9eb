"""Row 5: per-epoch MLflow logging time over the Trainer's epoch time.

Logging: ``orchestrator.tracking.Tracker.log_epoch`` followed by ``Tracker.flush`` (what
the driver does once per epoch of every trial: one ``log_batch`` of the epoch metrics,
sent by the tracker's writer thread; the flush waits until the server has it, so the
figure is the time to the server, not the time to queue) against a real
``mlflow server`` on 127.0.0.1 with a SQLite store, started by this script and stopped
at its end. The run is made by ``Tracker.start_trial`` as the driver makes it when a
trial starts; the epoch logged is the Trainer's, as the trainable reports it
(``orchestrator.trainable.epoch_report``), at a fresh step each time.

Two epochs it is compared with, both measured in the same run, interleaved with the
logging (log, MNIST epoch, demo epoch, log, ...), medians taken:

- MNIST, full size (the goal's row): a 60,000-image epoch would take minutes on CPU, so
  the Trainer's training images/s is measured on a subset (width 0.25, 2 threads, batch
  120, test evaluation subtracted) and scaled to 60,000 images. The real epoch would also
  evaluate 10,000 test images; leaving that out makes this ratio an upper bound.
- the demo grid's epoch as measured (``search_spaces/demo.yaml``: digits, all 1,437
  training images, batch 32, width 0.25, 1 thread, the 360 test images evaluated): the
  smallest epoch lessdata ships, so the worst case for a per-epoch cost.

    python bench/mlflow_logging.py [--quick] [--device cpu]
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from itertools import count

from harness import Goal, Options, Row, interleave, main, median
from orchestrator.grid import TrialSpec, load_grid
from orchestrator.results import EpochReport
from orchestrator.tracking import Tracker
from orchestrator.trainable import epoch_report
from trainers.run import build_trainer
from trainers.train import Trainer
from workloads import load_mnist, mlflow_server, mnist_config, mnist_trainer, train_seconds

GOAL = Goal("<", 0.01)
FULL_EPOCH = 60_000
LOGS_PER_REP = 5
"""log_epoch calls per repetition (each a fresh step); their median is the rep's figure."""


def demo_trainer(options: Options) -> Trainer:
    """The demo grid's Benchmark trial, set up to run any number of epochs."""
    config = load_grid("demo").train_config("Benchmark", 0)
    config = config.model_copy(update={"epochs": 10_000, "device": str(options.device)})
    return build_trainer(config)


def demo_epoch_s(trainer: Trainer) -> float:
    """One whole demo epoch, its test evaluation included, on the demo's thread count (the
    trainer sets its own threads while it runs)."""
    return trainer.run_epoch().epoch_s


def mnist_epoch_s(trainer: Trainer) -> float:
    """The training part of one MNIST subset epoch (seconds), on its thread count."""
    return train_seconds(trainer)


def log_seconds(tracker: Tracker, key: str, report: EpochReport, steps: count[int]) -> float:
    """Median seconds of ``LOGS_PER_REP`` ``log_epoch`` calls, each at a new step, each
    until the server has it."""
    seconds = []
    for _ in range(LOGS_PER_REP):
        start = time.perf_counter()
        tracker.log_epoch(key, dataclasses.replace(report, epoch=next(steps)))
        sent = tracker.flush(timeout_s=60)
        seconds.append(time.perf_counter() - start)
        assert sent, "the tracking server did not take a write within 60 s"
    assert tracker.pending == 0, "a write did not reach the server"
    return median(seconds)


def tracked_trial(tracker: Tracker) -> TrialSpec:
    """The demo's first trial, its MLflow run made as the driver makes it at trial start."""
    spec = load_grid("demo").trials("bench-mlflow")[0]
    tracker.prepare([spec], train_size=FULL_EPOCH)
    tracker.start_trial(spec.key)
    assert tracker.flush(timeout_s=60), "the tracking server did not make the run"
    return spec


def measure(options: Options) -> list[Row]:
    subset, reps = (1200, 2) if options.quick else (6000, 5)
    mnist = mnist_trainer(mnist_config(options.device, train_subset=subset), load_mnist())
    demo = demo_trainer(options)
    mnist_epoch_s(mnist)  # warm-up, and an epoch result to log
    demo_epoch_s(demo)
    report = epoch_report(mnist.history[-1])
    with mlflow_server() as uri, Tracker(uri, "bench-mlflow") as tracker:
        spec = tracked_trial(tracker)
        steps = count(1)
        measures: list[Callable[[], float]] = [
            lambda: log_seconds(tracker, spec.key, report, steps),
            lambda: mnist_epoch_s(mnist),
            lambda: demo_epoch_s(demo),
        ]
        log_s, mnist_s, demo_s = interleave(measures, reps)
    per_log = median(log_s)
    full_epoch_s = median(mnist_s) / subset * FULL_EPOCH
    common = f"log_epoch {per_log * 1e3:.1f} ms (median of {reps} x {LOGS_PER_REP})"
    return [
        Row.judged("mlflow per-epoch log / MNIST 60k epoch (scaled)", per_log / full_epoch_s,
                   GOAL, f"{common}; epoch scaled from {subset} MNIST images to "
                   f"{FULL_EPOCH:,} ({per_log / full_epoch_s:.3%}), training part only"),
        Row.judged("mlflow per-epoch log / demo epoch (measured)", per_log / median(demo_s),
                   GOAL, f"{common}; demo epoch (digits 1,437 images, batch 32, 1 thread, "
                   f"evaluation of 360 included) ({per_log / median(demo_s):.3%})"),
    ]


if __name__ == "__main__":
    sys.exit(main(measure, __doc__ or ""))
