"""One driver per grid: a lease in the grid's storage, renewed by a heartbeat.

``lessdata submit`` and ``resume`` take the grid's lease before anything is created and
keep it until they exit. A second driver of the same grid is refused in one line that
names the holder (host, pid, since when). A driver that died stops renewing: once its
heartbeat is older than ``ttl_s`` the lease has expired and the next driver takes it over,
no manual unlock needed; a holder on the same host whose process is gone is taken over at
once.

How exclusive the lease is depends on the storage (``lease_for`` picks):

- a folder (``Lease``): every change of the lease file happens under an exclusive
  ``flock`` of a lock file beside it (POSIX; NFS v4 and the CSI volumes of docs/deploy.md
  honour it), so two drivers can never both see the lease free: the read, the decision
  and the write are one step. The file itself is replaced atomically (written beside,
  then renamed).
- an S3 bucket (``--storage s3://...``, ``orchestrator.s3_lease.S3Lease``): exclusive too,
  every change is one conditional request (``If-None-Match`` / ``If-Match``), no waiting.
- any other object store (``gs://``, ``abfs://``, ``hdfs://``; ``ObjectLease``): best
  effort. There is no lock to take and pyarrow has no create-if-absent, so a driver that
  finds the lease free or expired writes its record, waits ``SETTLE_S`` and reads it
  back; only if the record is still its own does it go on. Two drivers racing both
  write, the later write wins, and the earlier one reads the later one back and stops,
  as long as neither stalls for more than ``SETTLE_S`` between its read and its write.
  The heartbeat checks the token each beat, so a driver whose lease was taken over says
  so within ``ttl_s / 4``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.atomic_write import write_atomically
from orchestrator.storage import LocalStore, Store, open_store
from trainers.errors import BusyError, StorageError

__all__ = ["Lease", "LeaseRecord", "ObjectLease", "busy_error", "hold_lease", "lease_for",
           "may_take_over"]

log = logging.getLogger(__name__)

TTL_S = 60.0
"""A lease whose heartbeat is older than this has expired."""


@dataclass(frozen=True)
class LeaseRecord:
    token: str
    host: str
    pid: int
    since: float
    heartbeat: float

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"host {self.host}, pid {self.pid}, since {since}"


class Lease:
    """The lease file of one grid; ``acquire``, ``renew``, ``release``."""

    def __init__(self, path: Path, ttl_s: float = TTL_S) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self.token = uuid.uuid4().hex

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self) -> LeaseRecord | None:
        try:
            return LeaseRecord(**json.loads(self.path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None  # none, or damaged: a damaged lease holds nothing

    def _write(self, record: LeaseRecord) -> None:
        # Whole or not at all; a full disk is one line (StorageError), no partial file.
        write_atomically(self.path, json.dumps(asdict(record)).encode(), "the grid's lease")

    def acquire(self, what: str) -> None:
        """Take the lease, or raise BusyError naming its live holder."""
        now = time.time()
        with self._locked():
            held = self.read()
            if held is not None and held.token != self.token:
                if not may_take_over(held, now, self.ttl_s):
                    raise busy_error(what, held, self.ttl_s)
                log.warning("taking over the expired lease of %s (%s)", what, held.describe())
            self._write(LeaseRecord(self.token, socket.gethostname(), os.getpid(), now, now))

    def renew(self) -> bool:
        """Refresh the heartbeat; False when the lease is no longer ours (taken over)."""
        with self._locked():
            held = self.read()
            if held is None or held.token != self.token:
                return False
            self._write(LeaseRecord(**{**asdict(held), "heartbeat": time.time()}))
            return True

    def release(self) -> None:
        with self._locked():
            held = self.read()
            if held is not None and held.token == self.token:
                self.path.unlink(missing_ok=True)


class ObjectLease(Lease):
    """The lease as an object in a store without conditional writes (gs://, abfs://,
    hdfs://): best effort (module docstring)."""

    SETTLE_S = 2.0
    """How long a new holder waits before reading its record back."""

    def __init__(self, store: Store, key: str, ttl_s: float = TTL_S) -> None:
        super().__init__(Path(key), ttl_s)
        self.store, self.key = store, key

    def _locked(self) -> nullcontext[None]:  # type: ignore[override]
        return nullcontext()

    def read(self) -> LeaseRecord | None:
        try:
            return LeaseRecord(**json.loads(self.store.read_bytes(self.key)))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _write(self, record: LeaseRecord) -> None:
        self.store.write_bytes(self.key, json.dumps(asdict(record)).encode())

    def acquire(self, what: str) -> None:
        super().acquire(what)
        time.sleep(self.SETTLE_S)
        held = self.read()
        if held is None or held.token != self.token:
            holder = held.describe() if held else "unknown"
            raise BusyError(f"{what} was taken by another driver at the same moment ({holder}); "
                            "wait for it, or stop it")

    def release(self) -> None:
        held = self.read()
        if held is not None and held.token == self.token:
            self.store.delete(self.key)


def lease_for(location: str, key: str, ttl_s: float = TTL_S) -> Lease:
    """The lease at ``key`` of the storage at ``location``: a file under a lock, an S3
    object changed by conditional writes, or an object elsewhere (best effort)."""
    store = open_store(location)
    if isinstance(store, LocalStore):
        return Lease(store.root / key, ttl_s)
    from orchestrator.s3_lease import S3Lease, is_s3  # boto3 only for a bucket's lease

    if is_s3(store.location):
        return S3Lease(store.location, key, ttl_s)
    return ObjectLease(store, key, ttl_s)


def may_take_over(held: LeaseRecord, now: float, ttl_s: float) -> bool:
    """Whether another driver may take ``held`` over at ``now``: its heartbeat is older
    than ``ttl_s``, or its holder is dead on this host."""
    return now - held.heartbeat > ttl_s or _dead_here(held)


def busy_error(what: str, held: LeaseRecord, ttl_s: float) -> BusyError:
    """The one line that refuses a second driver, naming ``held``'s holder."""
    return BusyError(f"{what} is being run by another driver ({held.describe()}); wait for "
                     f"it, or stop it (its lease expires {ttl_s:.0f} s after it stops)")


def _dead_here(held: LeaseRecord) -> bool:
    """A holder on this host whose process is gone (SIGKILLed, say): no need to wait for
    its lease to expire. Holders on other hosts are judged by their heartbeat alone."""
    if held.host != socket.gethostname():
        return False
    try:
        os.kill(held.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


@contextmanager
def hold_lease(where: Path | Lease, what: str, ttl_s: float = TTL_S) -> Iterator[Lease]:
    """Acquire, renew every ``ttl_s / 4`` on a thread, release on exit (also on errors).

    ``where``: a lease file's path, or a lease from ``lease_for`` (its own ``ttl_s``)."""
    lease = where if isinstance(where, Lease) else Lease(where, ttl_s)
    ttl_s = lease.ttl_s
    lease.acquire(what)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ttl_s / 4):
            try:
                if not lease.renew():
                    log.error("the lease of %s was taken over by another driver", what)
                    return
            except (OSError, StorageError) as exc:  # storage away or full: next beat
                log.warning("could not renew the lease of %s: %s", what, exc)

    thread = threading.Thread(target=beat, daemon=True, name="lessdata-lease")
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join(timeout=5)
        lease.release()
