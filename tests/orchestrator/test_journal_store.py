"""Optuna's journal in a lessdata store, a folder and a real S3 API (moto) alike: a study
asked and told through ``JournalStorage`` is found whole by a second driver, one object
per append (or per batch), read once, and a crash never leaves part of a batch readable."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from orchestrator.journal_store import StoreJournal, batch_key, parse_lines
from orchestrator.storage import LocalStore, Store
from trainers.errors import StorageError

PREFIX = "search/s/journal"


def _study(journal: StoreJournal) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=JournalStorage(journal), study_name="s",
                               directions=["maximize", "minimize"],
                               sampler=optuna.samplers.RandomSampler(seed=0))


def _ask_tell(study: optuna.Study, count: int) -> None:
    for i in range(count):
        trial = study.ask()
        trial.suggest_float("d", 0.05, 0.95)
        trial.suggest_int("n", 2, 12)
        trial.set_user_attr("label", f"S{i:03d}")
        study.tell(trial, [0.9 + i / 100, 1000.0 - i])


def _seen(study: optuna.Study) -> list[tuple[Any, ...]]:
    return [(t.number, t.state, t.params, t.values, t.user_attrs) for t in study.trials]


def test_a_resumed_driver_finds_the_same_study(store: Store) -> None:
    first = _study(StoreJournal(store, PREFIX))
    _ask_tell(first, 3)
    running = first.ask()  # asked, not told: the driver is killed now
    running.suggest_float("d", 0.05, 0.95)

    again = optuna.load_study(study_name="s", storage=JournalStorage(StoreJournal(store,
                                                                                  PREFIX)))
    assert _seen(again) == _seen(first)
    assert [t.state for t in again.trials] == [TrialState.COMPLETE] * 3 + [TrialState.RUNNING]
    assert again.trials[2].values == pytest.approx([0.92, 998.0])
    assert again.trials[1].user_attrs == {"label": "S001"}
    assert again.trials[3].params == running.params
    # The resumed driver tells it, and a third one sees that too.
    again.tell(running.number, [0.5, 10.0])
    third = optuna.load_study(study_name="s", storage=JournalStorage(StoreJournal(store,
                                                                                  PREFIX)))
    assert third.trials[3].values == pytest.approx([0.5, 10.0])

    # One object per operation, named for its number, holding it as JSON.
    keys = store.list(PREFIX)
    assert keys == [batch_key(PREFIX, i) for i in range(len(keys))]
    assert keys[0] == f"{PREFIX}/000000000000.json"
    assert json.loads(store.read_bytes(keys[0]))[0]["study_name"] == "s"


def _counting(store: Store, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"list": 0, "read_bytes": 0, "write_bytes": 0}
    for name in calls:
        real: Callable[..., Any] = getattr(store, name)

        def counted(*args: Any, _real: Callable[..., Any] = real, _name: str = name,
                    **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    return calls


def test_the_journal_is_read_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _ask_tell(_study(StoreJournal(store, PREFIX)), 5)
    objects = len(store.list(PREFIX))
    calls = _counting(store, monkeypatch)
    study = optuna.load_study(study_name="s", storage=JournalStorage(StoreJournal(store,
                                                                                  PREFIX)))
    _ask_tell(study, 20)
    for _ in range(10):
        assert len(study.get_trials(deepcopy=False)) == 25
    written = len(store.list(PREFIX)) - objects
    assert calls == {"list": 2, "read_bytes": objects, "write_bytes": written}  # list: mine


def test_a_batch_is_one_object_written_when_its_block_ends(store: Store) -> None:
    journal = StoreJournal(store, PREFIX)
    study = _study(journal)
    before = store.list(PREFIX)
    with journal.batch():
        _ask_tell(study, 2)
        with journal.batch():  # nested: the outer block writes
            _ask_tell(study, 1)
        assert store.list(PREFIX) == before  # nothing yet: a kill here leaves none of it
        assert len(study.trials) == 3  # but the study sees them
    added = [k for k in store.list(PREFIX) if k not in before]
    assert added == [batch_key(PREFIX, len(before))]
    again = optuna.load_study(study_name="s", storage=JournalStorage(StoreJournal(store,
                                                                                  PREFIX)))
    assert _seen(again) == _seen(study)
    with pytest.raises(RuntimeError), journal.batch():
        _ask_tell(study, 1)
        raise RuntimeError("the driver failed mid-round")
    # What the study in memory holds is written all the same.
    reread = StoreJournal(store, PREFIX).read_logs(0)
    assert reread == journal.read_logs(0)


class _FailingStore(LocalStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fail = False

    def write_bytes(self, key: str, data: bytes, what: str | None = None) -> None:
        if self.fail:
            raise StorageError("no space left")
        super().write_bytes(key, data, what)


def test_a_batch_that_cannot_be_written_leaves_no_gap(tmp_path: Path) -> None:
    store = _FailingStore(tmp_path)
    journal = StoreJournal(store, PREFIX)
    study = _study(journal)
    count = len(journal.read_logs(0))
    store.fail = True
    with pytest.raises(StorageError), journal.batch():
        _ask_tell(study, 1)
    assert len(journal.read_logs(0)) == count
    store.fail = False
    journal.append_logs([{"op_code": 2, "worker_id": "w", "study_id": 0,
                          "user_attr": {"after": 1}}])
    assert store.list(PREFIX)[-1] == batch_key(PREFIX, count)
    assert StoreJournal(store, PREFIX).read_logs(0) == journal.read_logs(0)


def test_a_torn_last_batch_is_left_out_and_replaced(store: Store) -> None:
    journal = StoreJournal(store, PREFIX)
    _ask_tell(_study(journal), 1)
    count = len(journal.read_logs(0))
    store.write_bytes(batch_key(PREFIX, count), b'[{"op_code": 4, "stu')  # cut short
    store.write_bytes(f"{PREFIX}/.{count:012d}.json.partial-x", b"[]")  # not a batch
    resumed = StoreJournal(store, PREFIX)
    assert resumed.read_logs(0) == journal.read_logs(0)
    study = optuna.load_study(study_name="s", storage=JournalStorage(resumed))
    _ask_tell(study, 1)
    assert len(StoreJournal(store, PREFIX).read_logs(0)) > count
    assert [t.state for t in optuna.load_study(
        study_name="s", storage=JournalStorage(StoreJournal(store, PREFIX))).trials] == [
        TrialState.COMPLETE] * 2


@pytest.mark.parametrize("damage", ["torn", "gap"])
def test_a_damaged_journal_is_one_line(tmp_path: Path, damage: str) -> None:
    store = LocalStore(tmp_path)
    journal = StoreJournal(store, PREFIX)
    _ask_tell(_study(journal), 1)
    count = len(journal.read_logs(0))
    if damage == "torn":  # not the last batch: never a crash's doing
        store.write_bytes(batch_key(PREFIX, 1), b"{not json")
    else:
        store.write_bytes(batch_key(PREFIX, count + 5), b"[]")
    with pytest.raises(StorageError) as caught:
        StoreJournal(store, PREFIX).read_logs(0)
    line = str(caught.value)
    assert "\n" not in line and "Optuna journal" in line and "damaged" in line
    assert "--force" in line
    bad = batch_key(PREFIX, 1 if damage == "torn" else count + 5)
    assert f"{tmp_path}/{bad}" in line


def test_parse_lines_leaves_out_a_torn_last_line() -> None:
    assert parse_lines(b'{"a": 1}\n{"b": 2}\n{"c": ') == [{"a": 1}, {"b": 2}]
    assert parse_lines(b'{"a": 1}\n') == [{"a": 1}]
    assert parse_lines(b"") == []


def test_a_journal_needs_a_prefix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prefix='/'"):
        StoreJournal(LocalStore(tmp_path), "/")
