"""The Tracker and its writer thread against a real MLflow server: callers never wait,
writes arrive in order, a trial's run is made when it starts, a parent carries its
children's metric keys, a write made while the server is away waits in the queue and is
sent once it is back, and a write the server rejects is dropped without blocking."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

from orchestrator.grid import load_grid
from orchestrator.record import Kind, Tag
from orchestrator.results import EpochReport, FinalReport, Hardware
from orchestrator.tracking import Tracker
from orchestrator.writer import Writer
from tests.services import mlflow_server_at

RETRY_S = 0.5
HW = Hardware("n1", "127.0.0.1", "id1", "cpu", "none", "cpu | none")


def _epoch(epoch: int, top1: float) -> EpochReport:
    return EpochReport(epoch=epoch, fraction=1.0, samples=10, evaluations=10 * epoch,
                       scoring_evaluations=0, train_loss=1.0, train_top1=0.5, test_loss=1.0,
                       top1=top1, lr=1e-3, epoch_s=0.1, hardware=HW if epoch == 1 else None)


def _final(best: float) -> FinalReport:
    return FinalReport(best_top1=best, best_epoch=1, final_top1=best, epochs_trained=1,
                       train_s=1.0, trial_s=2.0, tracked_s=1.5, energy_kwh=1e-6,
                       emissions_kg=1e-7, emissions_estimate_kg=2e-7, emissions_measured=1.0,
                       emissions_share=0.5, hardware=HW)


def _specs(grid: str) -> list:
    return [s for s in load_grid("demo").trials(grid) if s.experiment == "Benchmark"]


def test_runs_made_at_start_writes_in_order_parents_share_keys(mlflow_server) -> None:
    specs = _specs("tracking-writer")
    with Tracker(mlflow_server.uri, "tracking-writer") as tracker:
        assert tracker.prepare(specs, train_size=100) == set()
        assert tracker.runs == {}  # nothing is made before a trial starts
        gate = threading.Event()
        tracker.writer.put("held", gate.wait)  # the writer is busy until the gate opens
        for spec, top1 in zip(specs, (0.5, 0.7), strict=True):
            tracker.start_trial(spec.key, "tune-id")
            tracker.log_epoch(spec.key, _epoch(1, top1))
            tracker.log_final(spec.key, _final(top1), {"epochs.csv": lambda: "epoch\n1\n"})
        # Every call returned while the writer was held; the second aggregate replaced
        # the first: held + 2 x (start, epoch, final) + 1 aggregate.
        assert tracker.pending == 8
        assert not tracker.flush(timeout_s=0.5)
        gate.set()
        assert tracker.flush(timeout_s=60)
        assert tracker.writer.rejected == []
    client = MlflowClient(mlflow_server.uri)
    first = client.get_run(tracker.runs[specs[0].key])
    params, tags = first.data.params, first.data.tags
    assert params["train_size"] == "100" and params["epochs"] == str(specs[0].config.epochs)
    assert "None" not in params.values()
    assert params["emissions.share"] == "0.5" == str(first.data.metrics["emissions_share"])
    assert tags[Tag.NODE] == "n1" and tags[Tag.STATE] == "finished"
    assert tags[Tag.GIT_COMMIT] and tags[Tag.USER]
    assert tags[Tag.SOURCE] == "paper"  # the Benchmark is the paper's
    assert [m.value for m in client.get_metric_history(first.info.run_id, "top1")] == [0.5]
    assert [m.step for m in client.get_metric_history(first.info.run_id, "best_top1")] == [1]
    assert first.inputs.dataset_inputs[0].dataset.name == "digits"
    parent = client.get_run(tracker.parents["Benchmark"])
    assert parent.data.tags[Tag.KIND] == Kind.EXPERIMENT and Tag.EXPERIMENT not in parent.data.tags
    assert parent.data.tags[Tag.SOURCE] == "paper"
    assert parent.data.params["epochs"] == params["epochs"] and "seed" not in parent.data.params
    assert parent.data.metrics["n_seeds"] == 2
    assert parent.data.metrics["best_top1"] == pytest.approx(0.6)
    assert parent.data.metrics["best_top1_std"] == pytest.approx(0.1414213562)
    series = client.get_metric_history(parent.info.run_id, "top1")
    assert [(m.step, round(m.value, 6)) for m in series] == [(1, 0.6)]
    assert parent.info.status == "FINISHED"


def test_a_resumed_tracker_finds_runs_and_skips_logged_steps(mlflow_server) -> None:
    specs = _specs("tracking-resume")
    with Tracker(mlflow_server.uri, "tracking-resume") as tracker:
        tracker.prepare(specs, train_size=100)
        tracker.start_trial(specs[0].key)
        tracker.log_epoch(specs[0].key, _epoch(1, 0.25))
        assert tracker.flush(timeout_s=60)
    with Tracker(mlflow_server.uri, "tracking-resume") as again:
        assert again.prepare(specs, train_size=100) == set()
        assert again.runs == {specs[0].key: tracker.runs[specs[0].key]}
        again.start_trial(specs[0].key)
        again.log_epoch(specs[0].key, _epoch(1, 0.99))  # already in MLflow: not sent
        again.log_epoch(specs[0].key, _epoch(2, 0.5))
        assert again.flush(timeout_s=60)
    client = MlflowClient(mlflow_server.uri)
    history = client.get_metric_history(tracker.runs[specs[0].key], "top1")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.25), (2, 0.5)]
    assert len(client.search_runs([tracker.experiment_id], "tags.`lessdata.kind` = 'trial'")) == 1


def test_rejected_writes_are_dropped_counted_and_never_block(mlflow_server, caplog) -> None:
    client = MlflowClient(mlflow_server.uri)
    run_id = client.create_run(client.create_experiment("writer-reject")).info.run_id
    client.log_param(run_id, "p", "1")
    tries = []

    def flaky() -> None:  # the server is briefly unavailable: retried, then sent
        tries.append(1)
        if len(tries) == 1:
            raise MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE)
        client.set_tag(run_id, "after", "yes")

    with Writer("test-writer", retry_s=0.1) as writer:
        writer.put("changed param of run", lambda: client.log_param(run_id, "p", "2"))
        writer.put("flaky tag", flaky)
        assert writer.flush(timeout_s=60)
    assert [(r.what, r.status) for r in writer.rejected] == [("changed param of run", 400)]
    assert len(tries) == 2 and client.get_run(run_id).data.tags["after"] == "yes"
    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 1 and "HTTP 400" in rejected[0].getMessage()


def test_a_start_retried_after_a_failure_makes_no_second_run(mlflow_server) -> None:
    spec = _specs("tracking-retry")[0]
    with Tracker(mlflow_server.uri, "tracking-retry", retry_s=0.1) as tracker:
        tracker.prepare([spec], train_size=100)
        describe, failures = tracker._describe, []

        def flaky(*args: object, **kwargs: object) -> None:
            if len(failures) < 2:  # the server goes away just after each run is made
                failures.append(1)
                raise MlflowException("away", error_code=TEMPORARILY_UNAVAILABLE)
            describe(*args, **kwargs)  # type: ignore[arg-type]

        tracker._describe = flaky  # type: ignore[method-assign]
        tracker.start_trial(spec.key)
        tracker.log_epoch(spec.key, _epoch(1, 0.5))
        assert tracker.flush(timeout_s=60) and tracker.writer.rejected == []
    client = MlflowClient(mlflow_server.uri)
    runs = client.search_runs([tracker.experiment_id], "")
    assert len(runs) == 2, [r.data.tags.get(Tag.KIND) for r in runs]  # one trial, one parent
    assert all(r.data.params["epochs"] for r in runs)


def test_a_write_made_while_the_server_is_away_is_queued_then_sent_once(tmp_path: Path) -> None:
    spec = _specs("tracking-outage")[0]
    with (mlflow_server_at(tmp_path / "mlflow") as server,
          Tracker(server.uri, "tracking-outage", retry_s=RETRY_S) as tracker):
        tracker.prepare([spec], train_size=100)
        tracker.start_trial(spec.key)
        assert tracker.flush(timeout_s=60)
        server.stop()
        tracker.log_epoch(spec.key, _epoch(1, 0.5))  # returns at once: queued
        assert tracker.pending == 1
        assert not tracker.flush(timeout_s=2 * RETRY_S)  # retried, still not sent
        assert tracker.pending == 1
        server.start()
        assert tracker.flush(timeout_s=60)
        assert tracker.writer.rejected == []
        history = MlflowClient(server.uri).get_metric_history(tracker.runs[spec.key], "top1")
    assert [(m.step, m.value) for m in history] == [(1, 0.5)]


def test_a_parent_counts_seeds_finished_by_an_earlier_submission(mlflow_server) -> None:
    """Seed 0 finished by one driver, seed 1 by the next: the parent's mean, std and
    per-epoch series hold both (seed 0's epochs read back from MLflow)."""
    specs = _specs("tracking-two-drivers")
    with Tracker(mlflow_server.uri, "tracking-two-drivers") as first:
        first.prepare(specs, train_size=100)
        first.start_trial(specs[0].key)
        first.log_epoch(specs[0].key, _epoch(1, 0.5))
        first.log_final(specs[0].key, _final(0.5), {})
        first.close_parents()
        assert first.flush(timeout_s=60)
    with Tracker(mlflow_server.uri, "tracking-two-drivers") as second:
        assert second.prepare(specs, train_size=100) == {specs[0].key}
        second.start_trial(specs[1].key)
        second.log_epoch(specs[1].key, _epoch(1, 0.7))
        second.log_final(specs[1].key, _final(0.7), {})
        assert second.flush(timeout_s=60) and second.writer.rejected == []
    client = MlflowClient(mlflow_server.uri)
    parent = client.get_run(second.parents["Benchmark"])
    assert parent.data.metrics["n_seeds"] == 2
    assert parent.data.metrics["best_top1"] == pytest.approx(0.6)
    series = client.get_metric_history(parent.info.run_id, "top1")
    assert [(m.step, round(m.value, 6)) for m in series] == [(1, 0.6)]


def test_a_series_keeps_each_metric_by_epoch_packed() -> None:
    from orchestrator.tracking import Series

    series = Series()
    series.add(1, {"top1": 0.5, "train_loss": 2.0})
    series.add(2, {"top1": 0.75})  # an epoch without one of the metrics
    series.add(3, {"top1": 0.875, "train_loss": 1.0})
    series.add(4, {"top1": float("nan"), "train_loss": 0.5})  # no value: left out
    assert series.of("top1") == [(1, 0.5), (2, 0.75), (3, 0.875)]
    assert series.of("train_loss") == [(1, 2.0), (3, 1.0), (4, 0.5)]
    assert series.of("lr") == []
    with pytest.raises(KeyError):
        series.add(5, {"best_top1": 0.9})  # a final metric has no place in epochs
