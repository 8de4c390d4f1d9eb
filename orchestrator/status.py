"""``lessdata status``: where each trial of a grid stands, from its plan and MLflow.

The plan lists every trial; a trial whose run does not exist yet (runs are made when the
trial starts) is pending. An experiment that trains identically to another (the plan's
``identical``) has no trials of its own: its rows show the representative's, with
``same_as`` naming that trial, and are not counted twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator import record
from orchestrator.aggregate import experiment_order
from orchestrator.plan import Plan, default_storage, plan_exists, read_plan, tracking_uri_of
from orchestrator.preflight import require_store
from orchestrator.record import Kind, State, Tag, trial_key
from orchestrator.storage import open_store
from trainers.errors import LessdataError, TrackingError

__all__ = ["grid_status", "list_grids"]

log = logging.getLogger(__name__)


def grid_status(name: str, storage: str | Path | None = None,
                tracking_uri: str | None = None) -> dict[str, Any]:
    uri = tracking_uri_of(name, storage, tracking_uri)
    require_store(uri)
    plan = read_plan(name, storage) if plan_exists(name, storage) else None
    planned = ({t.key: (t.key, t.experiment, t.seed, t.config.epochs) for t in plan.trials}
               if plan else {})
    client = record.client(uri)
    experiment = record.experiment_id(client, name)
    if experiment is None and not planned:
        raise TrackingError(f"no grid named {name!r} at {uri}")
    runs = [] if experiment is None else record.search(
        client, experiment, {Tag.GRID: name, Tag.KIND: Kind.TRIAL})
    trials = {key: _pending(*spec) for key, spec in planned.items()}
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        key = tags[Tag.TRIAL_KEY]
        trials[key] = {
            "key": key,
            "experiment": tags.get(Tag.EXPERIMENT, ""),
            "seed": int(tags.get(Tag.SEED, 0)),
            "state": tags.get(Tag.STATE, State.PENDING),
            "epoch": record.last_epoch(client, run),  # no request for a finished run
            "epochs": int(run.data.params.get("epochs", planned[key][3] if key in planned
                                              else 0)),
            "best_top1": metrics.get("best_top1"),
            "node": tags.get(Tag.NODE),
            "same_as": None,
        }
    counts = Counter(t["state"] for t in trials.values())
    if plan is not None:
        trials.update(_aliases(plan, trials))
    # The report's order: Benchmark, E1 ... E20 by number, then custom names; seeds within.
    rows = sorted(trials.values(),
                  key=lambda t: (experiment_order(t["experiment"]), t["seed"], t["key"]))
    return {"grid": name, "tracking_uri": uri,
            "counts": {str(s): counts.get(s, 0) for s in State}, "trials": rows}


def _pending(key: str, experiment: str, seed: int, epochs: int) -> dict[str, Any]:
    return {"key": key, "experiment": experiment, "seed": seed, "state": str(State.PENDING),
            "epoch": 0, "epochs": epochs, "best_top1": None, "node": None, "same_as": None}


def list_grids(storage: str | Path | None = None) -> list[dict[str, Any]]:
    """Every grid whose plan is in ``storage``: name, when it was last submitted or
    resumed (UTC), its trials done / failed / total, and its tracking URI. Counts are
    None when the tracking server cannot be read."""
    store = open_store(storage or default_storage())
    rows = []
    for key in store.list("grids"):
        if not key.endswith(".json"):
            continue
        plan = Plan.model_validate_json(store.read_bytes(key))
        when = datetime.fromtimestamp(store.modified(key), tz=UTC)
        row: dict[str, Any] = {"name": plan.name, "submitted": when.strftime("%Y-%m-%d %H:%M"),
                               "trials": len(plan.trials), "finished": None, "failed": None,
                               "tracking_uri": plan.tracking_uri}
        try:
            counts = grid_status(plan.name, plan.storage, plan.tracking_uri)["counts"]
            row.update(finished=counts.get(str(State.FINISHED), 0),
                       failed=counts.get(str(State.FAILED), 0))
        except LessdataError as exc:
            log.warning("grid %s: %s", plan.name, exc)
        rows.append(row)
    return sorted(rows, key=lambda r: r["submitted"], reverse=True)


def _aliases(plan: Plan, trials: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alias trial key -> the representative's row under the alias's key."""
    rows = {}
    for alias, group in plan.aliases().items():
        for seed in plan.grid.seed_list():
            same_as = trial_key(plan.name, group.representative, seed)
            if same_as in trials:
                key = trial_key(plan.name, alias, seed)
                rows[key] = {**trials[same_as], "key": key, "experiment": alias,
                             "same_as": same_as}
    return rows
