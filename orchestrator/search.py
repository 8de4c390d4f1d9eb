"""A schedule search, on the driver: Optuna asks for schedules, lessdata runs their seeds.

After the grid's own experiments (the Benchmark on the same seeds, and any ``include``d
E-numbers) a grid with a ``search:`` block runs its search in rounds. Each round asks
Optuna (ask/tell, from this process) for ``search.batch()`` schedules, runs every seed of
each as an ordinary lessdata trial through the grid's Tune path (one MLflow run per trial,
a parent per schedule, checkpoints, retries), then tells Optuna each schedule whose seeds
have all finished: its seed mean of best top-1 and its mean evaluations (scoring passes
included), read back from MLflow, the record. A schedule is told once, and only whole.

The study lives in the grid's storage, a folder or a bucket alike, as an Optuna journal
(``orchestrator.journal_store``: JSON operations in numbered objects under
``search/NAME/journal/``, never a pickle); each round's asks, and its tells, are written as
one object each. A schedule asked but not told (the driver was killed)
is found there on ``lessdata resume``: its finished seeds are skipped (found in MLflow by
their keys), its unfinished ones resume from their checkpoints, then it is told. A
schedule whose parameters were not all written (killed mid-ask) never ran: it is told
FAIL and does not count among the samples. See docs/search.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator import record
from orchestrator.grid import ExperimentPlan, TrialSpec
from orchestrator.plan import Plan, plan_key, storage_name
from orchestrator.record import Kind, State, Tag
from orchestrator.search_space import (
    METHOD_PARAMS,
    Search,
    is_search_label,
    schedule_from_params,
    schedule_label,
)
from orchestrator.storage import join, open_store
from trainers.errors import StorageError

if TYPE_CHECKING:
    import optuna

    from orchestrator.journal_store import StoreJournal
    from orchestrator.tracking import Tracker

__all__ = ["Outcome", "ask", "forget_search", "journal_prefix", "open_journal", "open_study",
           "pending", "run_search", "schedule_specs", "tell_finished", "told"]

log = logging.getLogger(__name__)

READY = "lessdata_ready"
"""User attribute set once every parameter of an asked schedule is written."""
LABEL = "lessdata_label"


@dataclass(frozen=True)
class Outcome:
    """One finished seed of a schedule, as MLflow holds it."""

    seed: int
    best_top1: float
    evaluations: float
    """Training images plus scoring passes: the report's cost."""


def journal_prefix(plan: Plan) -> str:
    """Where the search's Optuna journal is in the grid's storage."""
    return f"search/{storage_name(plan.name)}/journal"


def _file_journal_key(plan: Plan) -> str:
    """Where lessdata before the journal store kept a study: one file beside the plan."""
    return plan_key(plan.name).removesuffix(".json") + ".optuna.jsonl"


def open_journal(plan: Plan) -> StoreJournal:
    """The plan's journal; a study that an earlier lessdata kept in one file beside the
    plan is moved into it first (its operations as the first batch, then the file goes:
    a driver killed between the two finds the batch and only removes the file)."""
    from orchestrator.journal_store import StoreJournal, parse_lines

    store = open_store(plan.storage)
    journal = StoreJournal(store, journal_prefix(plan))
    old = _file_journal_key(plan)
    if store.exists(old):
        if journal.empty():
            try:
                logs = parse_lines(store.read_bytes(old))
            except ValueError as exc:  # a line in the middle, not a torn last one
                raise StorageError(f"the search's Optuna journal at {join(plan.storage, old)} "
                                   f"is damaged ({str(exc)[:160]}); submit the search again "
                                   "with --force to start it afresh") from None
            journal.append_logs(logs)
        store.delete(old)
        log.info("search: the study in %s moved to %s/", join(plan.storage, old),
                 join(plan.storage, journal.prefix))
    return journal


def _search(plan: Plan) -> Search:
    assert plan.grid.search is not None  # callers check
    return plan.grid.search


def open_study(plan: Plan, journal: StoreJournal | None = None) -> optuna.Study:
    """The plan's study (in ``journal``, or the plan's own), made on first use and loaded
    after; its sampler seeded from the grid's ``order_seed`` and the trials so far, so a
    resumed driver draws new points."""
    import optuna
    from optuna.storages import JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(journal or open_journal(plan))
    search = _search(plan)
    try:  # loaded without a write (create_study would append a CREATE_STUDY each time)
        study = optuna.load_study(study_name=plan.name, storage=storage)
    except KeyError:
        study = optuna.create_study(storage=storage, study_name=plan.name,
                                    directions=search.directions())
    study.sampler = _sampler(search, plan.grid.order_seed + len(study.trials))
    return study


def _sampler(search: Search, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    if search.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True,
                                          n_startup_trials=min(10, max(1, search.samples // 3)))
    # One generation per round (at least 4 parents, for crossover to mix them).
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, search.batch()))


def ask(study: optuna.Study, search: Search) -> optuna.trial.FrozenTrial:
    """One new schedule: every parameter its method takes, then marked ready."""
    trial = study.ask()
    space = search.space
    method = trial.suggest_categorical("method", space.method)
    for param in METHOD_PARAMS[str(method)]:
        low, high = space.bounds(param)
        if isinstance(low, int) and isinstance(high, int):
            trial.suggest_int(param, low, high)
        else:
            trial.suggest_float(param, float(low), float(high))
    if space.selection is not None:
        trial.suggest_categorical("selection", space.selection)
    trial.set_user_attr(LABEL, schedule_label(trial.number))
    trial.set_user_attr(READY, True)
    return _frozen(study, trial.number)


def _frozen(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def pending(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The schedules asked and not yet told, oldest first; a schedule left half-asked by
    a killed driver never ran, so it is told FAIL here and left out."""
    from optuna.trial import TrialState

    out = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(READY):
            out.append(trial)
        else:
            study.tell(trial.number, state=TrialState.FAIL)
    return sorted(out, key=lambda t: t.number)


def told(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The schedules told (complete), oldest first."""
    from optuna.trial import TrialState

    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                  key=lambda t: t.number)


def _sampled(study: optuna.Study) -> int:
    """Schedules that count among the samples: every one asked in full."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get(READY))


def schedule_specs(plan: Plan, trial: optuna.trial.FrozenTrial) -> list[TrialSpec]:
    """Every seed of an asked schedule, as the plan's own trials are made."""
    grid = plan.grid
    schedule, selection = schedule_from_params(trial.params)
    experiment = ExperimentPlan(schedule, grid.epochs, selection or grid.selection)
    label = str(trial.user_attrs[LABEL])
    return [t.model_copy(update={
        "checkpoint_dir": join(plan.storage, "checkpoints", storage_name(t.key)),
        "system_metrics_uri": plan.tracking_uri if plan.system_metrics else None})
        for t in grid.schedule_trials(plan.name, label, experiment)]


def tell_finished(study: optuna.Study, search: Search,
                  outcomes: Mapping[str, Sequence[Outcome]]) -> list[str]:
    """Tell every pending schedule whose seeds have all finished; the labels told.

    ``outcomes``: label -> its finished seeds. The spread goes with it as user attributes
    (``top1_std``, ``n``), written before the values, so a tell cut short is redone whole.
    """
    import optuna

    done = []
    for trial in pending(study):
        label = str(trial.user_attrs[LABEL])
        seeds = outcomes.get(label, ())
        if len(seeds) < search.seed_count():
            continue
        top1 = [o.best_top1 for o in seeds]
        mean, std = record.mean_std(top1)
        cost = sum(o.evaluations for o in seeds) / len(seeds)
        values = {"max top1": mean, "min evaluations": cost}
        live = optuna.trial.Trial(study, trial._trial_id)
        live.set_user_attr("top1_std", std)
        live.set_user_attr("n", len(seeds))
        study.tell(trial.number, [values[o] for o in search.objectives])
        done.append(label)
    return done


def _outcomes(tracker: Tracker, labels: Sequence[str]) -> dict[str, list[Outcome]]:
    """Label -> its finished seeds, from MLflow."""
    out: dict[str, list[Outcome]] = {}
    for label in labels:
        for run in tracker.search(Kind.TRIAL, **{Tag.EXPERIMENT: label,
                                                 Tag.STATE: State.FINISHED}):
            metrics = run.data.metrics
            cost = metrics.get("evaluations", math.nan) + metrics.get("scoring_evaluations", 0.0)
            out.setdefault(label, []).append(Outcome(
                int(run.data.tags[Tag.SEED]), metrics.get("best_top1", math.nan), cost))
    return out


def _complete_parents(tracker: Tracker, specs: Sequence[TrialSpec], finished: set[str]
                      ) -> None:
    """Parents whose every seed finished but whose mean and std do not count them all (a
    driver killed between a last seed and its parent): aggregated again."""
    by_experiment: dict[str, list[str]] = {}
    for spec in specs:
        by_experiment.setdefault(spec.experiment, []).append(spec.key)
    for run in tracker.search(Kind.EXPERIMENT):
        experiment = run.data.tags[Tag.PARENT_OF]
        keys = by_experiment.get(experiment, [])
        if (keys and all(k in finished for k in keys)
                and run.data.metrics.get(record.N_SEEDS, 0) < len(keys)):
            tracker.complete_parent(experiment)


def run_search(plan: Plan, tracker: Tracker, run_batch: Callable[[list[TrialSpec]], None],
               skipped: list[str]) -> int:
    """Run the search to its ``samples`` (or until a round leaves a schedule unfinished:
    a failed or stopped trial); the number of search trials in all.

    ``run_batch`` runs trials through the grid's Tune path; ``skipped`` gets the keys of
    trials already finished before (an earlier driver's).
    """
    search = _search(plan)
    journal = open_journal(plan)
    study = open_study(plan, journal)
    with journal.batch():
        waiting = pending(study)
    # Schedules told by an earlier driver: none of their trials runs again.
    for trial in told(study):
        skipped.extend(t.key for t in schedule_specs(plan, trial))
    known = plan.trials + [s for t in [*told(study), *waiting]
                           for s in schedule_specs(plan, t)]
    _complete_parents(tracker, known, tracker.prepare(known, plan.grid.train_size()))
    while True:
        asked = _sampled(study)
        with journal.batch():  # the round's schedules: one write, all of them or none
            while len(waiting) < search.batch() and asked < search.samples:
                waiting.append(ask(study, search))
                asked += 1
        if not waiting:
            break
        specs = [s for trial in waiting for s in schedule_specs(plan, trial)]
        known = plan.trials + [s for t in [*told(study), *waiting] for s in schedule_specs(
            plan, t)]
        finished = tracker.prepare(known, plan.grid.train_size())
        skipped.extend(s.key for s in specs if s.key in finished)
        todo = [s for s in specs if s.key not in finished]
        labels = [str(t.user_attrs[LABEL]) for t in waiting]
        log.info("search: %s (%d trials to run)", ", ".join(labels), len(todo))
        if todo:
            run_batch(todo)
            tracker.flush()
        outcomes = _outcomes(tracker, labels)
        with journal.batch():
            done = tell_finished(study, search, outcomes)
        waiting = pending(study)
        if len(done) < len(labels):  # a trial failed or was stopped: resume finishes it
            break
    return search.samples * search.seed_count()


def forget_search(plan: Plan, tracker: Tracker) -> None:
    """--force: the study, and every search schedule's runs and checkpoints, go."""
    for label in _asked_labels(plan, tracker):
        for seed in plan.grid.seed_list():
            key = record.trial_key(plan.name, label, seed)
            open_store(join(plan.storage, "checkpoints", storage_name(key))).delete_all()
        for kind, tag in ((Kind.TRIAL, Tag.EXPERIMENT), (Kind.EXPERIMENT, Tag.PARENT_OF)):
            for run in tracker.search(kind, **{tag: label}):
                tracker.client.delete_run(run.info.run_id)
    open_store(join(plan.storage, journal_prefix(plan))).delete_all()


def _asked_labels(plan: Plan, tracker: Tracker) -> list[str]:
    """The labels of the schedules asked in full, from the study; from MLflow's runs when
    the study cannot be read (a damaged journal: what --force is for)."""
    try:
        journal = open_journal(plan)
        if journal.empty():
            return []
        study = open_study(plan, journal)
    except StorageError as exc:
        log.warning("%s: the search's schedules are found in MLflow instead", exc)
        return sorted({str(run.data.tags[Tag.EXPERIMENT]) for run in tracker.search(Kind.TRIAL)
                       if is_search_label(str(run.data.tags.get(Tag.EXPERIMENT, "")))})
    return [str(t.user_attrs[LABEL]) for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(READY)]
