"""Submitting a grid: validate everything, then run each experiment x seed as a Tune trial.

Runs on the driver. Order: grid -> data files -> tracking server -> cluster resources
-> MLflow runs -> Ray Tune. Anything wrong before Tune starts raises a LessdataError
(one line, exit 2) and no trial, no run, no checkpoint exists yet.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.grid import Grid, TrialSpec, load_grid, slug
from orchestrator.tracking import Tracker, check_tracking, default_tracking_uri
from trainers.data import check_dataset, dataset_info
from trainers.errors import ClusterError, ConfigError

__all__ = ["SubmitOptions", "SubmitResult", "connect_ray", "plan", "submit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmitOptions:
    grid: str
    dataset: str | None = None
    data_dir: Path | None = None
    seeds: int | None = None
    epochs: int | None = None
    tracking_uri: str | None = None
    address: str | None = None
    name: str | None = None
    storage: Path | None = None
    force: bool = False
    quiet: bool = False


@dataclass
class Plan:
    grid: Grid
    name: str
    tracking_uri: str
    storage: Path
    trials: list[TrialSpec]


@dataclass
class SubmitResult:
    name: str
    tracking_uri: str
    trials: int
    skipped: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    unsent_writes: int = 0
    """Tracking writes that never reached the server (it stayed away): resume sends them."""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def default_storage() -> Path:
    return Path(os.environ.get("LESSDATA_STORAGE", "runs")).resolve()


def plan(options: SubmitOptions) -> Plan:
    """Validate the grid, its data and the tracking server; nothing is started."""
    if options.seeds is not None and options.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {options.seeds}")
    if options.epochs is not None and options.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {options.epochs}")
    grid = load_grid(options.grid, dataset=options.dataset, seeds=options.seeds,
                     epochs=options.epochs, data_dir=options.data_dir)
    if grid.data_dir is not None and not grid.data_dir.is_absolute():
        # Trials run in Ray's worker folders: a relative path means the driver's folder.
        grid = grid.model_copy(update={"data_dir": grid.data_dir.resolve()})
    name = options.name or grid.name
    if options.dataset and not options.name and options.dataset != _file_dataset(options.grid):
        name = f"{grid.name}-{options.dataset}"
    check_dataset(grid.dataset, grid.data_dir)
    uri = options.tracking_uri or default_tracking_uri()
    check_tracking(uri)
    storage = (options.storage or default_storage()).resolve()
    trials = [
        t.model_copy(update={"checkpoint_dir": str(storage / "checkpoints" / slug(t.key))})
        for t in grid.trials(name)
    ]
    return Plan(grid, name, uri, storage, trials)


def _file_dataset(ref: str) -> str | None:
    try:
        return load_grid(ref).dataset
    except ConfigError:
        return None


def connect_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` / $RAY_ADDRESS, or start a local one."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
    except Exception as exc:  # noqa: BLE001 - ray raises many kinds; all mean "no cluster"
        if _refused_token(exc):
            raise ClusterError(
                f"Ray at {address or 'local'} refused this driver's authentication token: set "
                "RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, "
                "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot connect to Ray at {address or 'local'}: {first}") from None


def _refused_token(exc: BaseException) -> bool:
    """Whether Ray's error, or one in its chain, is about the auth token.

    Ray raises AuthenticationError, or wraps it (ConnectionError from RuntimeError) and
    keeps the cause only in the message text ("InvalidAuthToken").
    """
    from ray.exceptions import AuthenticationError

    seen: BaseException | None = exc
    for _ in range(10):  # a chain, not a cycle
        if seen is None:
            return False
        if isinstance(seen, AuthenticationError) or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def check_resources(grid: Grid) -> None:
    """Fail at once when no node could ever run one trial (instead of waiting forever)."""
    import ray

    want = grid.resources
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    for node in nodes:
        res = node.get("Resources", {})
        if (res.get("CPU", 0) >= want.cpu and res.get("GPU", 0) >= want.gpu
                and (not want.node_type or res.get(want.node_type, 0) > 0)):
            return
    have = "; ".join(
        f"{n.get('NodeManagerAddress')}: cpu={n['Resources'].get('CPU', 0):g} "
        f"gpu={n['Resources'].get('GPU', 0):g}" for n in nodes
    ) or "no alive nodes"
    node_type = f" node_type={want.node_type}" if want.node_type else ""
    raise ClusterError(
        f"no node of the cluster can run one trial: it asks cpu={want.cpu:g} gpu={want.gpu:g}"
        f"{node_type}; nodes have {have}"
    )


def submit(options: SubmitOptions) -> SubmitResult:
    """Run the grid to the end; trials already finished in MLflow are skipped (unless forced)."""
    p = plan(options)
    connect_ray(options.address)
    check_resources(p.grid)
    tracker = Tracker(p.tracking_uri, p.name)
    train_size = _train_size(p)
    if options.force:
        _forget(tracker, p)
    tracker.ensure_runs(p.trials, train_size)
    finished = tracker.finished_keys()
    todo = [t for t in p.trials if t.key not in finished]
    result = SubmitResult(p.name, p.tracking_uri, len(p.trials),
                          skipped=sorted(t.key for t in p.trials if t.key in finished))
    _write_record(p, options)
    if todo:
        _run_tune(p, todo, tracker, result, quiet=options.quiet)
    return result


def _train_size(p: Plan) -> int:
    return p.grid.training.train_subset or dataset_info(p.grid.dataset).train_size


def _forget(tracker: Tracker, p: Plan) -> None:
    """--force: delete the runs and checkpoints of the grid's trials, so they run afresh."""
    import shutil

    keys = {t.key for t in p.trials}
    for run in tracker.search("trial"):
        if run.data.tags.get("lessdata.trial_key") in keys:
            tracker.client.delete_run(run.info.run_id)
    for t in p.trials:
        shutil.rmtree(t.checkpoint_dir, ignore_errors=True)


def record_path(name: str, storage: Path | None = None) -> Path:
    return (storage or default_storage()) / "grids" / f"{slug(name)}.json"


def _write_record(p: Plan, options: SubmitOptions) -> None:
    path = record_path(p.name, p.storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "name": p.name,
        "grid": options.grid,
        "dataset": options.dataset,
        "data_dir": str(p.grid.data_dir) if options.data_dir else None,
        "seeds": options.seeds,
        "epochs": options.epochs,
        "tracking_uri": p.tracking_uri,
        "address": options.address,
        "storage": str(p.storage),
        "trials": [t.key for t in p.trials],
    }
    path.write_text(json.dumps(record, indent=2))


def _run_tune(p: Plan, todo: list[TrialSpec], tracker: Tracker, result: SubmitResult,
              quiet: bool) -> None:
    # The legacy reporter honours verbose=0; our ProgressCallback is the live view.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # MLflow is the record: of Tune's own per-trial files only result.json is kept (its
    # result grid reads it); CSV and TensorBoard files would only cost the driver time
    # per result (set TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=0 to have them again).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from orchestrator.callbacks import MlflowCallback, ProgressCallback
    from orchestrator.entry import train_trial

    callbacks: list[Any] = [MlflowCallback(tracker)]
    if os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1":
        callbacks.append(JsonLoggerCallback())
    if not quiet:
        callbacks.append(ProgressCallback(len(todo)))
    trainable = tune.with_resources(train_trial, p.grid.resources.ray_resources())
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([t.model_dump(mode="json") for t in todo])},
        tune_config=tune.TuneConfig(
            # Every trial of a grid asks for the same resources: one worker process per
            # slot runs trial after trial, so torch, the trainer and codecarbon's probes
            # are paid once per slot, not once per trial.
            reuse_actors=True,
            trial_dirname_creator=lambda trial: slug(trial.config["trial"]["key"]),
        ),
        run_config=tune.RunConfig(
            name=slug(p.name),
            storage_path=str(p.storage / "tune"),
            failure_config=tune.FailureConfig(max_failures=p.grid.max_failures),
            callbacks=callbacks,
            verbose=0,
        ),
    )
    grid_result = tuner.fit()
    for res in (grid_result[i] for i in range(len(grid_result))):
        key = res.config["trial"]["key"] if res.config else "?"
        if res.error:
            result.failed.append(key)
        elif (res.metrics or {}).get("final"):
            result.finished.append(key)
        else:  # stopped before its end (Ctrl-C): `lessdata resume` finishes it
            result.unfinished.append(key)
    result.finished.sort()
    result.failed.sort()
    result.unsent_writes = tracker.pending
