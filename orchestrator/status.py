"""``lessdata status``: where each trial of a grid stands, from its plan and MLflow.

The plan lists every trial; a trial whose run does not exist yet (runs are made when the
trial starts) is pending. An experiment that trains identically to another (the plan's
``identical``) has no trials of its own: its rows show the representative's, with
``same_as`` naming that trial, and are not counted twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from orchestrator import record
from orchestrator.plan import Plan, plan_path, read_plan, tracking_uri_of
from orchestrator.preflight import require_store
from orchestrator.record import Kind, State, Tag, trial_key
from trainers.errors import TrackingError

__all__ = ["grid_status"]


def grid_status(name: str, storage: Path | None = None,
                tracking_uri: str | None = None) -> dict[str, Any]:
    uri = tracking_uri_of(name, storage, tracking_uri)
    require_store(uri)
    plan = read_plan(name, storage) if plan_path(name, storage).exists() else None
    planned = {t.key: t.config.epochs for t in plan.trials} if plan else {}
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
            "same_as": None,
        }
    counts = Counter(t["state"] for t in trials.values())
    if plan is not None:
        trials.update(_aliases(plan, trials))
    rows = sorted(trials.values(), key=lambda t: t["key"])
    return {"grid": name, "tracking_uri": uri,
            "counts": {str(s): counts.get(s, 0) for s in State}, "trials": rows}


def _pending(key: str, epochs: int) -> dict[str, Any]:
    return {"key": key, "state": str(State.PENDING), "epoch": 0, "epochs": epochs,
            "best_top1": None, "node": None, "same_as": None}


def _aliases(plan: Plan, trials: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alias trial key -> the representative's row under the alias's key."""
    rows = {}
    for alias, group in plan.aliases().items():
        for seed in plan.grid.seed_list():
            same_as = trial_key(plan.name, group.representative, seed)
            if same_as in trials:
                key = trial_key(plan.name, alias, seed)
                rows[key] = {**trials[same_as], "key": key, "same_as": same_as}
    return rows
