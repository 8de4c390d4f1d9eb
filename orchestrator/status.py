"""``lessdata status``: where each trial of a grid stands, from its plan and MLflow.

The plan lists every trial; a trial whose run does not exist yet (runs are made when the
trial starts) is pending.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from orchestrator import record
from orchestrator.plan import plan_path, read_plan, tracking_uri_of
from orchestrator.preflight import require_store
from orchestrator.record import Kind, State, Tag
from trainers.errors import TrackingError

__all__ = ["grid_status"]


def grid_status(name: str, storage: Path | None = None,
                tracking_uri: str | None = None) -> dict[str, Any]:
    uri = tracking_uri_of(name, storage, tracking_uri)
    require_store(uri)
    planned = ({t.key: t.config.epochs for t in read_plan(name, storage).trials}
               if plan_path(name, storage).exists() else {})
    client = record.client(uri)
    experiment = record.experiment_id(client, name)
    if experiment is None and not planned:
        raise TrackingError(f"no grid named {name!r} at {uri}")
    runs = [] if experiment is None else record.search(
        client, experiment, {Tag.GRID: name, Tag.KIND: Kind.TRIAL})
    trials = {key: _pending(key, epochs) for key, epochs in planned.items()}
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        key = tags[Tag.TRIAL_KEY]
        trials[key] = {
            "key": key,
            "state": tags.get(Tag.STATE, State.PENDING),
            "epoch": record.last_step(client, run.info.run_id) if "evaluations" in metrics
            else 0,
            "epochs": int(run.data.params.get("epochs", planned.get(key, 0))),
            "best_top1": metrics.get("best_top1"),
            "node": tags.get(Tag.NODE),
        }
    rows = sorted(trials.values(), key=lambda t: t["key"])
    counts = Counter(t["state"] for t in rows)
    return {"grid": name, "tracking_uri": uri,
            "counts": {str(s): counts.get(s, 0) for s in State}, "trials": rows}


def _pending(key: str, epochs: int) -> dict[str, Any]:
    return {"key": key, "state": str(State.PENDING), "epoch": 0, "epochs": epochs,
            "best_top1": None, "node": None}
