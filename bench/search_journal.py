"""A schedule search's Optuna journal: lessdata's journal store against Optuna's own file
journal, on the driver, with no training.

Each measure is the search's own bookkeeping for N schedules (``orchestrator.search``
``ask`` of a three-method space, then the tell with its two user attributes and values,
then one read of every trial, as a round does), followed by a second driver opening the
study. Rows:

- folder: the journal store in a folder over Optuna's ``JournalFileBackend`` in a file
  beside it (an ``fsync`` per operation), interleaved; goal <= 1, so one code path for the
  folder and the bucket costs the folder nothing.
- bucket: the journal store in a bucket (moto's S3 server on 127.0.0.1, one PUT per
  object) writing each ask and each tell as one batch, as ``run_search`` does, over the same
  store writing one object per Optuna operation.

    python bench/search_journal.py [--quick]
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness import Goal, Options, Row, interleave, main, median, median_ratio
from orchestrator.journal_store import StoreJournal
from orchestrator.search import ask
from orchestrator.search_space import Search
from orchestrator.storage import open_store

SEARCH = Search.model_validate({
    "space": {"method": ["data_step", "data_cut", "piecewise2"], "d": [0.1, 0.9],
              "e": [0.1, 0.9], "d2": [0.2, 0.8], "e2": [0.2, 0.8], "n": [2, 6],
              "selection": ["fixed", "per_epoch"]},
    "samples": 1000, "seeds": 2, "concurrent": 4, "algorithm": "random"})
PREFIX = "search/bench/journal"


def _loop(make: Callable[[], Any], schedules: int, batched: bool) -> tuple[float, float]:
    """(seconds for ``schedules`` ask/tell rounds, seconds for a second driver to open the
    study) with the backend ``make`` returns."""
    import optuna
    from optuna.storages import JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = make()

    def batch() -> contextlib.AbstractContextManager[None]:
        return backend.batch() if batched else contextlib.nullcontext()

    study = optuna.create_study(storage=JournalStorage(backend), study_name="bench",
                                directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    start = time.perf_counter()
    for i in range(schedules):
        with batch():
            trial = ask(study, SEARCH)
        with batch():
            live = optuna.trial.Trial(study, trial._trial_id)
            live.set_user_attr("top1_std", 0.01)
            live.set_user_attr("n", 2)
            study.tell(trial.number, [0.9, 1000.0 + i])
        study.get_trials(deepcopy=False)
    loop_s = time.perf_counter() - start
    start = time.perf_counter()
    again = optuna.load_study(study_name="bench", storage=JournalStorage(make()))
    assert len(again.trials) == schedules
    return loop_s, time.perf_counter() - start


@contextlib.contextmanager
def _bucket() -> Iterator[str]:
    from tests.services import s3_server

    with s3_server() as s3:
        os.environ.update(s3.env)
        yield s3.make_bucket(f"bench-{uuid.uuid4().hex[:8]}")


def measure(options: Options) -> list[Row]:
    schedules, reps = (50, 1) if options.quick else (200, 3)
    reopen: dict[str, list[float]] = {"file": [], "store": []}

    def folder(kind: str) -> float:
        root = Path(tempfile.mkdtemp(prefix="lessdata-bench-journal-"))
        if kind == "file":
            from optuna.storages.journal import JournalFileBackend

            def make() -> Any:
                return JournalFileBackend(str(root / "study.optuna.jsonl"))
        else:
            def make() -> Any:
                return StoreJournal(open_store(root), PREFIX)
        loop_s, reopen_s = _loop(make, schedules, batched=kind == "store")
        reopen[kind].append(reopen_s)
        return loop_s

    file_s, store_s = interleave([lambda: folder("file"), lambda: folder("store")], reps)
    rows = [Row.judged(
        "search journal: folder, store / Optuna file", median_ratio(store_s, file_s),
        Goal("<=", 1.0),
        f"{schedules} schedules asked and told: Optuna's file journal {median(file_s):.2f} s, "
        f"the journal store {median(store_s):.2f} s; a second driver opens the study in "
        f"{median(reopen['file']):.2f} s and {median(reopen['store']):.2f} s")]

    few = max(10, schedules // 4)  # one PUT per operation: ~10 a schedule
    with _bucket() as bucket:
        seen: dict[bool, tuple[float, float]] = {}
        for batched in (True, False):
            location = f"{bucket}/{'batched' if batched else 'each'}"
            seen[batched] = _loop(lambda loc=location: StoreJournal(open_store(loc), PREFIX),
                                  few, batched)
    (batch_s, batch_open_s), (each_s, each_open_s) = seen[True], seen[False]
    rows.append(Row.judged(
        "search journal: bucket, batched / per operation", batch_s / each_s, Goal("<=", 0.5),
        f"{few} schedules on moto's S3: a batch per ask and per tell {batch_s / few * 1000:.0f} "
        f"ms a schedule (reopened in {batch_open_s:.2f} s), an object per Optuna operation "
        f"{each_s / few * 1000:.0f} ms (reopened in {each_open_s:.2f} s)"))
    return rows


if __name__ == "__main__":
    sys.exit(main(measure, __doc__ or ""))
