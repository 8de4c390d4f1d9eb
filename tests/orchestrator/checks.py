"""Assertions shared by the end-to-end and fault tests: one complete run per trial."""

from __future__ import annotations

import time
from collections.abc import Callable

from mlflow import MlflowClient

from trainers.experiments import EXPERIMENTS
from trainers.schedule import evaluations


def trial_runs(client: MlflowClient, grid: str) -> list:
    exp = client.get_experiment_by_name(grid)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], "tags.`lessdata.kind` = 'trial'")


def assert_complete(client: MlflowClient, grid: str, experiments: list[str], seeds: int,
                    train_size: int, epochs: int) -> list:
    """Exactly one finished run per trial, every epoch once, closed-form evaluations."""
    runs = trial_runs(client, grid)
    keys = sorted(r.data.tags["lessdata.trial_key"] for r in runs)
    assert keys == sorted(f"{grid}/{e}/seed={s}" for e in experiments for s in range(seeds))
    for run in runs:
        assert run.data.tags["lessdata.state"] == "finished", run.data.tags
        total = evaluations(EXPERIMENTS[run.data.tags["lessdata.experiment"]], train_size,
                            epochs)
        assert run.data.metrics["evaluations"] == total  # the series' last value
        for name in ("evaluations", "top1", "fraction", "epoch_s"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, name)]
            assert sorted(steps) == list(range(1, epochs + 1)), (name, steps)
        history = client.get_metric_history(run.info.run_id, "evaluations")
        assert max(m.value for m in history) == total
    return runs


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str,
             interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - the server may be starting
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


def epochs_logged(client: MlflowClient, grid: str) -> dict[str, int]:
    """Trial key -> last epoch in MLflow."""
    out = {}
    for run in trial_runs(client, grid):
        hist = client.get_metric_history(run.info.run_id, "evaluations")
        out[run.data.tags["lessdata.trial_key"]] = max((m.step for m in hist), default=0)
    return out
