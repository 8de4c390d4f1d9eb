"""The search's bookkeeping without Ray: the Optuna journal in the grid's storage (a folder
or a bucket: moto on 127.0.0.1), what a resumed driver finds pending, each schedule told
once and only whole, a study of an earlier lessdata (one file beside the plan) taken over."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.plan import Plan, PlanOptions, plan_key, resolve_plan
from orchestrator.search import (
    Outcome,
    ask,
    journal_prefix,
    open_journal,
    open_study,
    pending,
    schedule_specs,
    tell_finished,
    told,
)
from orchestrator.storage import join, open_store

SEARCH = {"space": {"method": ["data_step", "data_cut", "piecewise2"], "d": [0.1, 0.9],
                    "e": [0.1, 0.9], "d2": [0.2, 0.8], "e2": [0.2, 0.8], "n": [2, 6],
                    "selection": ["fixed", "per_epoch"]},
          "samples": 5, "seeds": 2, "concurrent": 4, "algorithm": "nsga2"}


@pytest.fixture(params=["folder", "bucket"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The grid's storage: a folder, then a bucket."""
    if request.param == "folder":
        return str(tmp_path / "store")
    return str(request.getfixturevalue("s3_env")) + "/lessdata"


def _plan(tmp_path: Path, algorithm: str = "nsga2", storage: str | None = None) -> Plan:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "searched", "dataset": "digits", "epochs": 3,
                                    "search": {**SEARCH, "algorithm": algorithm}}))
    return resolve_plan(PlanOptions(grid=str(path), tracking_uri="sqlite:///unused.db",
                                    storage=storage or tmp_path / "store"))


def _outcomes(label: str, seeds: int) -> dict[str, list[Outcome]]:
    return {label: [Outcome(s, 0.9 + s / 100, 1000.0) for s in range(seeds)]}


def _completions(plan: Plan) -> dict[int, int]:
    """Trial id -> how many times the journal holds it told COMPLETE."""
    counts: dict[int, int] = {}
    for op in open_journal(plan).read_logs(0):
        if op["op_code"] == 6 and op["state"] == 1:  # SET_TRIAL_STATE_VALUES, COMPLETE
            counts[op["trial_id"]] = counts.get(op["trial_id"], 0) + 1
    return counts


@pytest.mark.parametrize("algorithm", ["nsga2", "tpe", "random"])
def test_asked_schedules_survive_a_new_driver(tmp_path: Path, algorithm: str,
                                              storage: str) -> None:
    plan = _plan(tmp_path, algorithm, storage)
    search = plan.grid.search
    assert search is not None
    study = open_study(plan)
    asked = [ask(study, search) for _ in range(2)]
    assert open_store(storage).list(journal_prefix(plan))  # in the grid's storage
    del study  # the driver is killed
    again = pending(open_study(plan))
    assert [t.number for t in again] == [t.number for t in asked]
    assert [t.params for t in again] == [t.params for t in asked]
    specs = schedule_specs(plan, again[0])
    assert [s.key for s in specs] == [f"searched/S000/seed={s}" for s in (0, 1)]
    assert specs == schedule_specs(plan, asked[0])  # the same trials, found again by key
    assert all(s.checkpoint_dir.startswith(join(plan.storage, "checkpoints")) for s in specs)
    assert specs[0].config.selection == asked[0].params["selection"]


def test_a_schedule_is_told_once_and_only_whole(tmp_path: Path, storage: str) -> None:
    plan = _plan(tmp_path, storage=storage)
    search = plan.grid.search
    assert search is not None
    study = open_study(plan)
    first, second = ask(study, search), ask(study, search)
    outcomes = {**_outcomes("S000", 2), **_outcomes("S001", 1)}  # S001: one seed of two
    assert tell_finished(study, search, outcomes) == ["S000"]
    study = open_study(plan)  # a resumed driver
    assert [t.number for t in pending(study)] == [second.number]
    assert tell_finished(study, search, outcomes) == []  # S000 is not told again
    assert tell_finished(open_study(plan), search, _outcomes("S001", 2)) == ["S001"]
    done = told(open_study(plan))
    assert [t.number for t in done] == [first.number, second.number]
    assert done[0].values == pytest.approx([0.905, 1000.0])  # seed mean, mean evaluations
    assert done[0].user_attrs["n"] == 2 and done[0].user_attrs["top1_std"] > 0
    assert _completions(plan) == {0: 1, 1: 1}


def test_a_half_asked_schedule_is_failed_and_not_counted(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    search = plan.grid.search
    assert search is not None
    study = open_study(plan)
    half = study.ask()  # killed before its parameters were all written
    half.suggest_categorical("method", SEARCH["space"]["method"])
    whole = ask(open_study(plan), search)
    assert [t.number for t in pending(open_study(plan))] == [whole.number]
    states = {t.number: t.state.name for t in open_study(plan).get_trials()}
    assert states == {half.number: "FAIL", whole.number: "RUNNING"}


def test_one_objective(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    search = plan.grid.search
    assert search is not None
    single = search.model_copy(update={"objectives": ["max top1"]})
    plan = plan.model_copy(update={"grid": plan.grid.model_copy(update={"search": single})})
    study = open_study(plan)
    ask(study, single)
    assert tell_finished(study, single, _outcomes("S000", 2)) == ["S000"]
    assert told(study)[0].values == pytest.approx([0.905])


def test_a_parent_left_short_by_a_killed_driver_is_completed(tmp_path: Path) -> None:
    """Both seeds of S000 finished, but the driver died before their parent counted the
    second: the next driver, which runs neither again, aggregates the parent anew."""
    from orchestrator import record
    from orchestrator.record import Kind, State, Tag
    from orchestrator.search import _complete_parents
    from orchestrator.tracking import Tracker

    plan = _plan(tmp_path)
    search = plan.grid.search
    assert search is not None
    specs = schedule_specs(plan, ask(open_study(plan), search))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with Tracker(uri, plan.name) as tracker:
        base = {Tag.GRID: plan.name, Tag.EXPERIMENT: "S000"}
        parent = tracker.client.create_run(tracker.experiment_id, tags={
            Tag.GRID: plan.name, Tag.KIND: Kind.EXPERIMENT, Tag.PARENT_OF: "S000"}).info.run_id
        tracker.client.log_metric(parent, record.N_SEEDS, 1.0)
        for spec, top1 in zip(specs, (0.5, 0.7), strict=True):
            run = tracker.client.create_run(tracker.experiment_id, tags={
                **base, Tag.KIND: Kind.TRIAL, Tag.TRIAL_KEY: spec.key,
                Tag.SEED: str(spec.seed), Tag.STATE: State.FINISHED}).info.run_id
            tracker.client.log_metric(run, "best_top1", top1)
        finished = tracker.prepare(specs)
        assert finished == {s.key for s in specs}
        _complete_parents(tracker, specs, finished)
        assert tracker.flush(30)
        metrics = tracker.client.get_run(parent).data.metrics
        assert metrics[record.N_SEEDS] == 2 and metrics["best_top1"] == pytest.approx(0.6)
        _complete_parents(tracker, specs, finished - {specs[0].key})  # one seed unfinished
        assert tracker.flush(30)
        history = tracker.client.get_metric_history(parent, record.N_SEEDS)
        assert len(history) == 2  # nothing more logged


def _file_journal(plan: Plan) -> Path:
    """A study as lessdata before the journal store kept it: Optuna's file journal."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    search = plan.grid.search
    assert search is not None
    path = Path(plan.storage) / plan_key(plan.name).removesuffix(".json")
    path = path.with_name(path.name + ".optuna.jsonl")
    path.parent.mkdir(parents=True)
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))),
                                study_name=plan.name, directions=search.directions())
    ask(study, search)
    ask(study, search)
    tell_finished(study, search, _outcomes("S000", 2))
    return path


def test_a_study_in_the_file_journal_is_taken_over(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    search = plan.grid.search
    assert search is not None
    path = _file_journal(plan)
    old = path.read_bytes()
    with path.open("ab") as out:
        out.write(b'{"op_code": 8, "trial_id": 1, "user_a')  # the old driver's last line, torn
    study = open_study(plan)
    assert not path.exists()
    assert open_store(plan.storage).list(journal_prefix(plan)) == [
        f"{journal_prefix(plan)}/000000000000.json"]
    assert [t.number for t in told(study)] == [0] and told(study)[0].values == pytest.approx(
        [0.905, 1000.0])
    assert [t.number for t in pending(study)] == [1]
    assert len(open_journal(plan).read_logs(0)) == len(old.splitlines())
    ask(study, search)  # and it goes on in the journal store
    assert [t.number for t in pending(open_study(plan))] == [1, 2]


def test_a_takeover_cut_short_is_not_done_twice(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    path = _file_journal(plan)
    copy = path.read_bytes()
    open_study(plan)
    path.write_bytes(copy)  # the driver was killed after the copy, before removing the file
    study = open_study(plan)
    assert not path.exists()
    assert [t.number for t in study.trials] == [0, 1]
    assert _completions(plan) == {0: 1}


@pytest.mark.parametrize("journal", ["intact", "damaged"])
def test_force_forgets_the_search(tmp_path: Path, journal: str) -> None:
    """--force deletes every asked schedule's runs and checkpoints and the study; from
    MLflow's runs when the journal cannot be read (its error line says --force)."""
    from orchestrator.journal_store import batch_key
    from orchestrator.record import Kind, Tag
    from orchestrator.search import forget_search
    from orchestrator.tracking import Tracker

    plan = _plan(tmp_path)
    search = plan.grid.search
    assert search is not None
    study = open_study(plan)
    specs = [s for _ in range(2) for s in schedule_specs(plan, ask(study, search))]
    for spec in specs:
        open_store(spec.checkpoint_dir).write_bytes("trainer.pt", b"weights")
    store = open_store(plan.storage)
    if journal == "damaged":
        store.write_bytes(batch_key(journal_prefix(plan), 0), b"{torn")
    with Tracker(f"sqlite:///{tmp_path}/mlflow.db", plan.name) as tracker:
        for spec in [*specs, *plan.trials[:1]]:  # and one of the grid's own: it stays
            tracker.client.create_run(tracker.experiment_id, tags={
                Tag.GRID: plan.name, Tag.KIND: Kind.TRIAL, Tag.TRIAL_KEY: spec.key,
                Tag.EXPERIMENT: spec.experiment, Tag.SEED: str(spec.seed)})
        forget_search(plan, tracker)
        left = [r.data.tags[Tag.EXPERIMENT] for r in tracker.search(Kind.TRIAL)]
    assert left == ["Benchmark"]
    assert not any(open_store(s.checkpoint_dir).exists("trainer.pt") for s in specs)
    assert store.list(journal_prefix(plan)) == []
    assert open_study(plan).trials == []  # a fresh study


def test_a_damaged_file_journal_is_one_line(tmp_path: Path) -> None:
    from trainers.errors import StorageError

    plan = _plan(tmp_path)
    path = _file_journal(plan)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], b"{not json\n", *lines[1:]]))
    with pytest.raises(StorageError) as caught:
        open_study(plan)
    line = str(caught.value)
    assert "\n" not in line and f"{path} is damaged" in line and "--force" in line
    assert path.exists()  # kept for whoever looks into it
