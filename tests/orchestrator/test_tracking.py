"""The Tracker's writer thread against a real MLflow server: callers never wait, writes
arrive in order, and a parent's aggregate counts every seed finished before it is sent."""

from __future__ import annotations

import threading

from mlflow import MlflowClient

from orchestrator.grid import load_grid
from orchestrator.tracking import Tracker


def test_writes_are_queued_in_order_and_parent_aggregates_coalesce(mlflow_server) -> None:
    tracker = Tracker(mlflow_server.uri, "tracking-writer")
    specs = [s for s in load_grid("demo").trials("tracking-writer")
             if s.experiment == "Benchmark"]
    assert len(specs) == 2
    tracker.ensure_runs(specs, train_size=100)
    assert tracker.flush(timeout_s=60)  # the runs' params (queued by ensure_runs)
    for spec in specs:
        params = MlflowClient(mlflow_server.uri).get_run(tracker.runs[spec.key]).data.params
        assert params["train_size"] == "100" and params["epochs"] == str(spec.config.epochs)
    gate = threading.Event()
    tracker._enqueue("held", gate.wait)  # the writer is busy until the gate opens

    tracker.log_epoch(specs[0].key, 1, {"test_top1": 0.25}, {"lessdata.node": "n1"})
    for spec, top1 in zip(specs, (0.5, 0.7), strict=True):
        tracker.log_final(spec.key, {"best_top1": top1}, {"epochs.csv": lambda: "epoch\n1\n"})
        tracker.update_parent("Benchmark")
    # Every call returned while the writer was held; the second aggregate replaced the
    # first (held + epoch + 2 finals + 1 aggregate).
    assert tracker.pending == 5
    assert not tracker.flush(timeout_s=0.5)

    gate.set()
    assert tracker.flush(timeout_s=60)
    assert tracker.pending == 0
    client = MlflowClient(mlflow_server.uri)
    first = client.get_run(tracker.runs[specs[0].key])
    assert first.data.tags["lessdata.node"] == "n1"
    assert first.data.tags["lessdata.state"] == "finished"
    assert [m.value for m in client.get_metric_history(first.info.run_id, "test_top1")] == [0.25]
    parent = client.get_run(tracker.parents["Benchmark"])
    assert parent.data.metrics["n_seeds"] == 2
    assert abs(parent.data.metrics["best_top1_mean"] - 0.6) < 1e-9
    # A step already sent is not sent again.
    tracker.log_epoch(specs[0].key, 1, {"test_top1": 0.99})
    assert tracker.pending == 0
