"""Row 7: the driver's MLflow writer against the same server's own ceiling, epoch records/s.

One real ``mlflow server --workers 4`` on 127.0.0.1 (SQLite store), started by this script
and stopped at its end; ``TRIALS`` trial runs made up front. An *epoch record* is what a
trial reports once per epoch: its epoch metrics (``EpochReport.metrics()``) at one step.

- Ceiling: ``CLIENTS`` threads, each its own plain ``MlflowClient``, each sending one
  ``log_batch`` per epoch record (one record per request) to its share of the runs, as
  fast as the server answers, for ``window_s``; records acknowledged per second.
- lessdata: ``Tracker.log_epoch`` (the driver's call for every epoch of every trial, as
  Tune's callback makes it) for ``epochs`` epochs of every one of the ``TRIALS`` trials, as
  fast as the caller can queue them, then ``Tracker.flush``; records per second from the
  first call to the last acknowledgement. The writer sends runs in parallel and merges a
  run's waiting records into one request, so it is measured in the state it is built for:
  behind.

The two alternate (ceiling, writer, ceiling, ...) and the ratio is the median of the pairs'
ratios (goal >= 0.8). Also printed: the queue after a burst (every one of the 1,000 trials
reports one epoch at once: writes pending right after, and the seconds until none is).

    python bench/writer_throughput.py [--quick]
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from itertools import count

from mlflow import MlflowClient
from mlflow.entities import Metric

from harness import Goal, Options, Row, interleave, main, median, median_ratio
from orchestrator.results import EpochReport, Hardware
from orchestrator.tracking import Tracker
from workloads import mlflow_server

GOAL = Goal(">=", 0.8)
TRIALS = 1_000
CLIENTS = 16
SERVER_WORKERS = 4
HW = Hardware("node", "127.0.0.1", "id", "cpu", "none", "cpu | none")


def epoch(step: int) -> EpochReport:
    """A trial's epoch result, as the trainable reports it (hardware tags only at first)."""
    return EpochReport(epoch=step, fraction=1.0, samples=1000, evaluations=1000 * step,
                       scoring_evaluations=0, train_loss=0.5, train_top1=0.9,
                       test_loss=0.6, top1=0.88, lr=1e-3, epoch_s=10.0,
                       hardware=HW if step == 1 else None)


def ceiling_rate(uri: str, runs: list[str], steps: count[int], window_s: float) -> float:
    """Records/s of ``CLIENTS`` plain clients in parallel, one record per request."""
    stop_at = time.perf_counter() + window_s
    sent = [0] * CLIENTS

    def client_loop(i: int) -> None:
        client = MlflowClient(uri)
        mine = runs[i::CLIENTS]
        while time.perf_counter() < stop_at:
            step, now = next(steps), int(time.time() * 1000)
            metrics = [Metric(k, v, now, step) for k, v in epoch(step).metrics().items()]
            client.log_batch(mine[sent[i] % len(mine)], metrics=metrics, synchronous=True)
            sent[i] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(sent) / (time.perf_counter() - start)


def writer_rate(tracker: Tracker, keys: list[str], epochs: int, first: count[int]) -> float:
    """Records/s of the driver's writer: ``epochs`` epochs of every trial, queued, sent."""
    base = next(first) * epochs  # fresh steps each repetition: none is skipped as logged
    start = time.perf_counter()
    for e in range(1, epochs + 1):
        report = dataclasses.replace(epoch(1), epoch=base + e)
        for key in keys:
            tracker.log_epoch(key, report)
    assert tracker.flush(timeout_s=600), "the writer did not drain within 600 s"
    assert tracker.writer.rejected == [], tracker.writer.rejected[:3]
    return len(keys) * epochs / (time.perf_counter() - start)


def burst(tracker: Tracker, keys: list[str], step: int) -> tuple[int, float]:
    """Every trial reports one epoch at once: writes pending right after, seconds to none."""
    start = time.perf_counter()
    report = dataclasses.replace(epoch(1), epoch=step)
    for key in keys:
        tracker.log_epoch(key, report)
    queued = tracker.pending
    assert tracker.flush(timeout_s=600), "the burst did not drain within 600 s"
    return queued, time.perf_counter() - start


def measure(options: Options) -> list[Row]:
    window_s, epochs, reps = (3.0, 2, 2) if options.quick else (10.0, 5, 3)
    with mlflow_server(workers=SERVER_WORKERS) as uri, \
            Tracker(uri, "bench-writer") as tracker:
        client = MlflowClient(uri)
        runs = [client.create_run(tracker.experiment_id).info.run_id for _ in range(TRIALS)]
        keys = [f"trial-{i}" for i in range(TRIALS)]
        tracker.runs.update(zip(keys, runs, strict=True))  # as prepare() finds them
        steps, rounds = count(10**6), count(1)
        measures: list[Callable[[], float]] = [  # seconds per record, as interleave takes
            lambda: 1 / ceiling_rate(uri, runs, steps, window_s),
            lambda: 1 / writer_rate(tracker, keys, epochs, rounds),
        ]
        ceiling, writer = interleave(measures, reps)
        queued, drain_s = burst(tracker, keys, 10**9)
        requests = tracker.writer.requests
    ratio = median_ratio(ceiling, writer)  # both are seconds per record: ceiling / writer
    return [Row.judged(
        "mlflow writer epoch records/s / server ceiling", ratio, GOAL,
        f"writer {1 / median(writer):,.0f} records/s ({TRIALS:,} trials x {epochs} epochs "
        f"queued then drained, {tracker.writer.threads} threads, runs in parallel, a run's "
        f"waiting records merged: {requests:,} requests in all) vs {CLIENTS} plain "
        f"MlflowClients in parallel, one record per log_batch, {window_s:g} s: "
        f"{1 / median(ceiling):,.0f} records/s; `mlflow server --workers {SERVER_WORKERS}`, "
        f"SQLite; median of {reps} interleaved pairs; burst of one epoch from each of "
        f"{TRIALS:,} trials: {queued:,} writes queued right after, drained in {drain_s:.2f} s")]


if __name__ == "__main__":
    sys.exit(main(measure, __doc__ or ""))
