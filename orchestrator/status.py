"""``lessdata status``: where each trial of a grid stands, read from MLflow."""

from __future__ import annotations

from collections import Counter
from typing import Any

from orchestrator.tracking import Tracker, default_tracking_uri, require_store
from trainers.errors import TrackingError

__all__ = ["grid_status"]

STATES = ("finished", "running", "pending", "failed")


def grid_status(name: str, tracking_uri: str | None = None) -> dict[str, Any]:
    uri = tracking_uri or default_tracking_uri()
    require_store(uri)
    from mlflow import MlflowClient

    if MlflowClient(tracking_uri=uri).get_experiment_by_name(name) is None:
        raise TrackingError(f"no grid named {name!r} at {uri}")
    tracker = Tracker(uri, name)
    trials = []
    for run in tracker.search("trial"):
        tags, metrics = run.data.tags, run.data.metrics
        trials.append({
            "key": tags["lessdata.trial_key"],
            "state": tags.get("lessdata.state", "pending"),
            "epoch": _last_epoch(tracker, run) if "evaluations" in metrics else 0,
            "epochs": int(run.data.params.get("epochs", 0)),
            "best_top1": metrics.get("best_top1"),
            "node": tags.get("lessdata.node"),
        })
    trials.sort(key=lambda t: t["key"])
    counts = Counter(t["state"] for t in trials)
    return {"grid": name, "counts": {s: counts.get(s, 0) for s in STATES}, "trials": trials}


def _last_epoch(tracker: Tracker, run: Any) -> int:
    history = tracker.client.get_metric_history(run.info.run_id, "evaluations")
    return max((m.step for m in history), default=0)
