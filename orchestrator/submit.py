"""Submitting a grid: validate everything, then run each experiment x seed as a Tune trial.

Runs on the driver. Order: grid -> data files -> tracking server -> cluster resources
-> plan record -> MLflow runs found -> Ray Tune. Anything wrong before Tune starts raises
a LessdataError (one line, exit 2 or 3) and no trial, no run, no checkpoint exists yet.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.atomic_write import storage_failure
from orchestrator.coincide import summary_line
from orchestrator.driver_state import driver_state_dir, tune_location
from orchestrator.grid import TrialSpec
from orchestrator.lease import hold_lease, lease_for
from orchestrator.plan import (
    Plan,
    PlanOptions,
    make_plan,
    plan_diff,
    plan_exists,
    read_plan,
    storage_name,
    write_plan,
)
from orchestrator.plugins import check_code_unchanged, runtime_env
from orchestrator.preflight import check_resources, connect_ray
from orchestrator.record import Kind, Tag
from orchestrator.results import param_space, trial_key
from orchestrator.storage import open_store
from orchestrator.tracking import Tracker
from trainers.errors import ConfigError, StorageError, TrackingError

if TYPE_CHECKING:
    from orchestrator.callbacks import ProgressCallback

__all__ = ["SubmitOptions", "SubmitResult", "resume", "run_plan", "submit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmitOptions(PlanOptions):
    force: bool = False
    quiet: bool = False


@dataclass
class SubmitResult:
    name: str
    tracking_uri: str
    experiment_id: str
    trials: int
    skipped: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    """Failed trial key -> why, in one line."""
    unfinished: list[str] = field(default_factory=list)
    unsent_writes: int = 0
    """Tracking writes that never reached the server (it stayed away): resume sends them."""
    rejected_writes: list[str] = field(default_factory=list)
    """Writes the server refused (HTTP 4xx), dropped: 'what (HTTP status): message'."""
    identical: str = ""
    """One line naming the experiments trained once for several names ("" when none)."""
    full_disk: str = ""
    """The line of a trial stopped by a full storage ("" when none): exit 3, then resume."""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def submit(options: SubmitOptions) -> SubmitResult:
    """Plan the grid, record the plan, and run it to the end (finished trials are skipped).

    A name submitted before with other settings is refused (its results would mix with
    the new ones): ``--name`` gives the new settings their own grid, ``--force`` redoes it.
    """
    plan = make_plan(options)
    if not options.force and plan_exists(plan.name, plan.storage):
        changed = plan_diff(read_plan(plan.name, plan.storage), plan)
        if changed:
            shown = ", ".join(changed[:6]) + (f" (+{len(changed) - 6} more)"
                                              if len(changed) > 6 else "")
            raise ConfigError(
                f"grid {plan.name!r} was submitted before with other settings ({shown}); "
                "use --name NEW for a new grid, `lessdata resume` to finish the old one, or "
                "--force to redo it")
    return run_plan(plan, force=options.force, quiet=options.quiet)


def resume(name: str, storage: str | Path | None = None, address: str | None = None,
           quiet: bool = False) -> SubmitResult:
    """Run what is unfinished of the plan submitted as ``name`` (never the grid file again)."""
    plan = read_plan(name, storage)
    check_code_unchanged(plan.grid.code, plan.code_sha256)
    if address:
        plan = plan.model_copy(update={"address": address})
    return run_plan(plan, quiet=quiet)


def run_plan(plan: Plan, force: bool = False, quiet: bool = False) -> SubmitResult:
    """Run ``plan`` holding its lease: one live driver per grid (``orchestrator.lease``)."""
    trials_per_run()  # a bad setting fails before the lease is written
    lease = lease_for(plan.storage, f"leases/{storage_name(plan.name)}.json")
    try:
        with hold_lease(lease, f"grid {plan.name!r}"):
            return _run_plan(plan, force, quiet)
    except OSError as exc:
        if exc.filename is None:  # not a file: a connection, say
            raise
        # the storage: read-only, full, gone
        raise StorageError(f"cannot write the grid's storage at {exc.filename}: "
                           f"{exc.strerror or exc}") from None
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException):  # refused by the store (a read-only user ...)
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise TrackingError(f"the tracking store {plan.tracking_uri} refused a request: "
                                f"{first}") from None
        raise


def _run_plan(plan: Plan, force: bool, quiet: bool) -> SubmitResult:
    connect_ray(plan.address, runtime_env=runtime_env(plan.grid.code))
    check_resources(plan.grid.resources)
    driver_state_dir(plan.storage)  # Tune's state: refused in the storage, before any run
    write_plan(plan)
    with Tracker(plan.tracking_uri, plan.name) as tracker:
        if force:
            _forget(tracker, plan)
            if plan.grid.search is not None:
                from orchestrator.search import forget_search

                forget_search(plan, tracker)
        finished = tracker.prepare(plan.trials, plan.grid.train_size())
        todo = [t for t in plan.trials if t.key not in finished]
        result = SubmitResult(plan.name, plan.tracking_uri, tracker.experiment_id,
                              len(plan.trials), skipped=sorted(finished),
                              identical=summary_line(plan.identical))
        if result.identical:
            log.info(result.identical)
        if todo:
            _run_tune(plan, todo, tracker, result, quiet=quiet)
        if plan.grid.search is not None and not (result.failed or result.unfinished):
            from orchestrator.search import run_search

            result.trials += run_search(
                plan, tracker, lambda batch: _run_tune(plan, batch, tracker, result, quiet),
                result.skipped)
        result.unsent_writes = tracker.pending
        result.rejected_writes = [f"{r.what} (HTTP {r.status}): {r.message}"
                                  for r in tracker.writer.rejected]
    if result.full_disk:  # after the tracker closed: what was logged is in MLflow
        raise StorageError(f"{result.full_disk}; free space there, then run "
                           f"`lessdata resume {plan.name}`")
    return result


def _forget(tracker: Tracker, plan: Plan) -> None:
    """--force: delete the runs and checkpoints of the grid's trials, so they run afresh."""
    keys = {t.key for t in plan.trials}
    for run in tracker.search(Kind.TRIAL):
        if run.data.tags.get(Tag.TRIAL_KEY) in keys:
            tracker.client.delete_run(run.info.run_id)
    for t in plan.trials:
        open_store(t.checkpoint_dir).delete_all()


def _no_result_files(record: logging.LogRecord) -> bool:
    """Tune's result grid, built as ``fit`` ends, warns once per trial that it found no
    result file to read: lessdata asks for none (its record is MLflow)."""
    return not record.getMessage().startswith("Failed to fetch metrics for")


TRIALS_PER_RUN = 500
"""The most trials one Tune run holds (``$LESSDATA_TRIALS_PER_RUN`` sets another). Tune
keeps every trial of a run in the driver until the run ends (its config, results and
state), so a larger grid runs as several Tune runs in turn and the driver holds at most
this many trials' state, whatever the grid's size. The price, once per boundary: the
slots drain (the next run starts when the last trial of this one has ended) and each
slot's worker process starts afresh (imports, the trainer's warm-up: seconds)."""


def trials_per_run() -> int:
    """``$LESSDATA_TRIALS_PER_RUN`` (a whole number >= 1), else ``TRIALS_PER_RUN``."""
    raw = os.environ.get("LESSDATA_TRIALS_PER_RUN", "").strip()
    if not raw:
        return TRIALS_PER_RUN
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"LESSDATA_TRIALS_PER_RUN={raw!r}: must be a whole number >= 1")
    return int(raw)


def _run_tune(plan: Plan, todo: list[TrialSpec], tracker: Tracker, result: SubmitResult,
              quiet: bool) -> None:
    """Run ``todo`` through Ray Tune, at most ``trials_per_run()`` trials per Tune run,
    the runs in turn; stops early (the rest unfinished) when a run stops before its end."""
    # The legacy reporter honours verbose=0; our ProgressCallback is the live view.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # MLflow is the record: Tune writes none of its own per-trial files (JSON, CSV,
    # TensorBoard), which would cost the driver time and disk per result, and at the end
    # of the grid a pass reading every trial's file back into pandas for a result grid that
    # lessdata never reads (set TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=0 to have them again).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    logging.getLogger("ray.tune.analysis.experiment_analysis").addFilter(_no_result_files)
    from orchestrator.callbacks import ProgressCallback

    size = trials_per_run()
    progress = None if quiet else ProgressCallback(len(todo))
    finished: set[str] = set()
    failed: dict[str, str] = {}
    for start in range(0, len(todo), size):
        part = todo[start:start + size]
        part_finished, part_failed = _fit(plan, part, tracker, progress)
        finished |= part_finished
        failed |= part_failed
        if any(t.key not in part_finished and t.key not in part_failed for t in part):
            break  # stopped (Ctrl-C, SIGTERM): the rest waits for `lessdata resume`
        if any(map(storage_failure, part_failed.values())):
            break  # the storage is full or gone: the next run would fail the same
    tracker.close_parents()  # after the last run: an experiment's seeds may span runs
    wait_s = float(os.environ.get("LESSDATA_TRACKING_WAIT_S", "300"))
    if not tracker.flush(timeout_s=wait_s):
        log.error("tracking server still away after %.0f s: %d writes not sent; "
                  "`lessdata resume` sends them later (from the checkpoints)",
                  wait_s, tracker.pending)
    result.finished = sorted(finished)
    result.failed = sorted(failed)
    result.errors = {key: failed[key] for key in result.failed}
    result.full_disk = next(filter(None, map(storage_failure, result.errors.values())), "")
    # stopped before their end (Ctrl-C, SIGTERM): `lessdata resume` finishes them
    result.unfinished = [t.key for t in todo if t.key not in finished and t.key not in failed]


def _fit(plan: Plan, todo: list[TrialSpec], tracker: Tracker,
         progress: ProgressCallback | None) -> tuple[set[str], dict[str, str]]:
    """One Tune run of ``todo``: the keys finished, and those failed with why."""
    from ray import tune

    from orchestrator.callbacks import MlflowCallback, OutcomeCallback, ReleaseCallback
    from orchestrator.entry import train_trial

    outcome = OutcomeCallback()
    callbacks: list[Any] = [MlflowCallback(tracker), outcome]
    if progress is not None:
        callbacks.append(progress)
    callbacks.append(ReleaseCallback())
    trainable = tune.with_resources(train_trial, plan.grid.resources.ray_resources())
    # Tune's own state (pickles among it) on the driver's disk, never in the storage that
    # workers write (orchestrator.driver_state).
    storage_path, experiment = tune_location(plan.storage, plan.name)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(todo),
        tune_config=tune.TuneConfig(
            # Every trial of a grid asks for the same resources: one worker process per
            # slot runs trial after trial, so torch, the trainer and codecarbon's probes
            # are paid once per slot, not once per trial.
            reuse_actors=True,
            trial_dirname_creator=lambda trial: storage_name(trial_key(trial.config)),
        ),
        run_config=tune.RunConfig(
            name=experiment,
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=plan.grid.max_failures),
            callbacks=callbacks,
            verbose=0,
        ),
    )
    tuner.fit()  # its result grid is not read: the outcome is what the callbacks saw
    return outcome.finished, outcome.failed
