"""An Optuna journal kept in a lessdata ``Store``: a folder or a bucket prefix alike.

Runs on the driver (the schedule search, ``orchestrator.search``). Optuna's
``JournalStorage`` writes every change of a study as one operation (a JSON object) and
rebuilds the study by replaying them; this backend keeps them as objects under a prefix:

    search/NAME/journal/000000000000.json   [op 0, op 1, ...]   one append_logs call
    search/NAME/journal/000000000007.json   [op 7, ...]         the next one

Each object is named for the number of its first operation, zero-padded so that listing
order is replay order, and holds that call's operations as a JSON list (no pickle). A
batch is one ``Store.write_bytes``: a folder writes it beside and renames, an object store
makes it appear whole when its PUT completes, so a crash between writes leaves the batches
before it and nothing of the one cut short. A last batch that cannot be read back whole
anyway (a power loss after a rename without fsync) is left out, like the torn last line of
Optuna's own file journal, and the next append replaces it.

One driver writes (the grid's lease, ``orchestrator.lease``), so the backend lists and
reads the journal once, on first use, and then serves every read from memory, adding what
it appends itself: a study with thousands of operations costs one listing and one read per
object when opened, and after that one write per operation, or per ``batch`` block. A
reader in another process sees the journal as it was when it first read it. Optuna's
snapshot API (``BaseJournalSnapshot``) is not implemented: its snapshots are pickles.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from optuna.storages.journal import BaseJournalBackend

from orchestrator.storage import LocalStore, Store
from trainers.errors import StorageError

__all__ = ["StoreJournal", "batch_key", "parse_lines"]

DIGITS = 12
_BATCH = re.compile(rf"(\d{{{DIGITS}}})\.json")
READERS = 16
"""Objects read at once when a journal on an object store is opened (one GET each)."""


def batch_key(prefix: str, first: int) -> str:
    """The key of the batch whose first operation is number ``first``."""
    return f"{prefix}/{first:0{DIGITS}d}.json"


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """The operations of an Optuna file journal (one JSON object per line); a last line cut
    short by a crash is left out, as Optuna's ``JournalFileBackend`` leaves it out."""
    lines = data.split(b"\n")
    return [json.loads(line) for line in lines[:-1] if line.strip()]


class StoreJournal(BaseJournalBackend):
    """Optuna's journal backend over ``store``, below ``prefix`` (module docstring)."""

    def __init__(self, store: Store, prefix: str) -> None:
        if not prefix.strip("/"):
            raise ValueError(f"a journal needs a prefix of its own in the store: {prefix=}")
        self.store = store
        self.prefix = prefix.strip("/")
        self._logs: list[dict[str, Any]] | None = None
        self._held: int | None = None
        """While ``batch`` holds writes back: the number of the first one held."""
        self._lock = threading.Lock()

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        with self._lock:
            return self._read()[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if not logs:
            return
        with self._lock:
            known = self._read()
            if self._held is None:
                self._write(len(known), logs)
            # What a resumed driver reads back (enums as ints, tuples as lists).
            known.extend(json.loads(_dumps(logs)))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold every append back until the block ends, then write them as one batch: one
        round trip instead of one per operation, and a driver killed inside the block
        leaves none of them (an asked schedule is all there or not at all). Reads inside
        the block see them. On an exception the held operations are still written (the
        study in memory has them); if that write fails, they are dropped here too, so the
        next batch leaves no gap."""
        with self._lock:
            nested = self._held is not None  # then the outer block writes
            first = self._held if self._held is not None else len(self._read())
            self._held = first
        if nested:
            yield
            return
        try:
            yield
        finally:
            with self._lock:
                self._held = None
                known = self._read()
                if len(known) > first:
                    try:
                        self._write(first, known[first:])
                    except BaseException:
                        del known[first:]
                        raise

    def _write(self, first: int, logs: list[dict[str, Any]]) -> None:
        self.store.write_bytes(batch_key(self.prefix, first), _dumps(logs),
                               what="the search's Optuna journal")

    def empty(self) -> bool:
        """True when the journal holds no operation."""
        with self._lock:
            return not self._read()

    def _read(self) -> list[dict[str, Any]]:
        if self._logs is None:
            self._logs = self._load()
        return self._logs

    def _load(self) -> list[dict[str, Any]]:
        keys = [k for k in self.store.list(self.prefix) if _number(k) is not None]
        batches = self._fetch(keys)
        logs: list[dict[str, Any]] = []
        for index, (key, data) in enumerate(zip(keys, batches, strict=True)):
            first = _number(key)
            try:
                batch = json.loads(data)
                if not isinstance(batch, list):
                    raise ValueError("not a list of operations")
            except ValueError as exc:
                if index == len(keys) - 1:  # torn by a crash: never part of the study
                    break
                raise self._damaged(key, str(exc)) from None
            if first != len(logs):
                raise self._damaged(key, f"it starts at operation {first}, the batches "
                                         f"before it end at {len(logs)}")
            logs.extend(batch)
        return logs

    def _fetch(self, keys: Sequence[str]) -> list[bytes]:
        if isinstance(self.store, LocalStore) or len(keys) < 2:
            return [self.store.read_bytes(k) for k in keys]
        # One round trip per object: in parallel, or a thousand batches take a minute.
        with ThreadPoolExecutor(READERS) as pool:
            return list(pool.map(self.store.read_bytes, keys))

    def _damaged(self, key: str, why: str) -> StorageError:
        return StorageError(f"the search's Optuna journal at {self.store.location}/{key} is "
                            f"damaged ({why[:160]}); submit the search again with --force "
                            "to start it afresh")


def _dumps(logs: list[dict[str, Any]]) -> bytes:
    return json.dumps(logs, separators=(",", ":")).encode()


def _number(key: str) -> int | None:
    match = _BATCH.fullmatch(key.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None
