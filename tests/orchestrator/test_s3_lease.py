"""The lease in an S3 bucket (moto's S3 server on 127.0.0.1): exclusive by conditional writes.

A lease that reads, decides and then writes (the best-effort ``ObjectLease``) fails when a
driver stalls between its read and its write: it acts on what it read before the other
driver changed the lease. Each race here forces that interleaving: one driver's read
waits, after reading, until the other driver has acted. No test sleeps.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.lease import Lease, LeaseRecord, hold_lease, lease_for
from orchestrator.s3_lease import S3Lease
from orchestrator.storage import open_store
from trainers.errors import BusyError, StorageError

KEY = "leases/g.json"
WAIT_S = 30.0
"""The longest a stalled read waits for the other driver (a deadlock fails, not hangs)."""


def _stall_first_read(monkeypatch: pytest.MonkeyPatch, lease: Lease,
                      when: Callable[[LeaseRecord | None], bool], until: threading.Event,
                      reached: threading.Event | None = None) -> None:
    """``lease``'s first read whose record satisfies ``when`` returns it only once
    ``until`` is set: the lease decides on what was true before the other driver acted."""
    read = lease.read
    stalled: list[LeaseRecord | None] = []

    def stalling_read() -> LeaseRecord | None:
        record = read()
        if not stalled and when(record):
            stalled.append(record)
            if reached is not None:
                reached.set()
            until.wait(WAIT_S)
        return record

    monkeypatch.setattr(lease, "read", stalling_read)


def _race(leases: list[Lease], done: list[threading.Event]) -> list[BaseException | None]:
    """Each lease acquires on its own thread, all released at once; None: it won."""
    outcome: list[BaseException | None] = [RuntimeError("did not finish")] * len(leases)
    start = threading.Barrier(len(leases))

    def take(index: int) -> None:
        start.wait()
        try:
            leases[index].acquire("grid g")
            outcome[index] = None
        except Exception as exc:  # noqa: BLE001 - reported by the caller's assertion
            outcome[index] = exc
        finally:
            done[index].set()

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(leases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * WAIT_S)
    return outcome


def _one_winner(leases: list[Lease], outcome: list[BaseException | None]) -> Lease:
    """Exactly one lease won; the other was refused by name; the object is the winner's."""
    winners = [lease for lease, result in zip(leases, outcome, strict=True) if result is None]
    assert len(winners) == 1, outcome
    loser = next(result for result in outcome if result is not None)
    assert isinstance(loser, BusyError), outcome
    held = leases[0].read()
    assert held is not None and held.token == winners[0].token
    assert f"being run by another driver ({held.describe()})" in str(loser), loser
    return winners[0]


def _write_stale(location: str, token: str) -> None:
    """The lease as a holder on another host left it, silent for an hour."""
    stale = time.time() - 3600
    record = LeaseRecord(token, "another-host", 1, stale, stale)
    open_store(location).write_bytes(KEY, json.dumps(record.__dict__).encode())


def test_two_drivers_racing_for_a_free_lease_one_wins_each_round(
        s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for round_ in range(60):
        location = f"{s3_env}/r{round_}"
        leases = [lease_for(location, KEY), lease_for(location, KEY)]
        done = [threading.Event(), threading.Event()]
        stalled = round_ % 3  # 0 or 1: that driver, having read the lease free, waits; 2: none
        if stalled < 2:
            _stall_first_read(monkeypatch, leases[stalled], lambda held: held is None,
                              done[1 - stalled])
        _one_winner(leases, _race(leases, done))


def test_two_drivers_taking_over_an_expired_lease_one_wins_each_round(
        s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for round_ in range(30):
        location = f"{s3_env}/r{round_}"
        _write_stale(location, "dead")
        leases = [lease_for(location, KEY), lease_for(location, KEY)]
        done = [threading.Event(), threading.Event()]
        stalled = round_ % 2  # having read the expired lease, it waits for the other
        _stall_first_read(monkeypatch, leases[stalled],
                          lambda held: held is not None and held.token == "dead",
                          done[1 - stalled])
        _one_winner(leases, _race(leases, done))


def _taken_over_while(monkeypatch: pytest.MonkeyPatch, location: str, old: Lease,
                      act: Callable[[], object]) -> tuple[Lease, object]:
    """``old`` holds the lease but has been silent for longer than the ttl (its record
    says another host). ``act`` (old's renew or release) reads old's own record, then a
    new driver takes the lease over, then ``act`` goes on. The new lease and what
    ``act`` returned."""
    old.acquire("grid g")
    _write_stale(location, old.token)
    reached, taken = threading.Event(), threading.Event()
    _stall_first_read(monkeypatch, old, lambda held: held is not None and
                      held.token == old.token, taken, reached)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(act()))
    thread.start()
    try:
        assert reached.wait(WAIT_S), "old never read its own record"
        new = lease_for(location, KEY)
        new.acquire("grid g")
    finally:
        taken.set()
        thread.join(timeout=WAIT_S)
    assert result, "act did not finish"
    return new, result[0]


def test_renew_after_a_takeover_is_false(s3_env: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    old = lease_for(s3_env, KEY)
    new, renewed = _taken_over_while(monkeypatch, s3_env, old, old.renew)
    assert renewed is False  # it read its own record, but the takeover came first
    assert not old.renew()
    assert new.renew()
    held = new.read()
    assert held is not None and held.token == new.token


def test_release_by_a_non_holder_leaves_the_holders_lease(
        s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old = lease_for(s3_env, KEY)
    new, _ = _taken_over_while(monkeypatch, s3_env, old, old.release)
    held = new.read()
    assert held is not None and held.token == new.token
    old.release()  # again, with nothing in the way
    lease_for(s3_env, KEY).release()  # never held it
    held = new.read()
    assert held is not None and held.token == new.token and new.renew()
    new.release()
    assert not open_store(s3_env).exists(KEY)


def test_own_record_under_another_etag_is_still_ours(s3_env: str) -> None:
    # A write of ours whose reply was lost and that botocore retried: the object is our
    # record, its ETag not the one we know. Renew and release still work.
    lease = lease_for(s3_env, KEY)
    lease.acquire("grid g")
    held = lease.read()
    assert held is not None
    later = LeaseRecord(**{**held.__dict__, "heartbeat": held.heartbeat - 1})
    open_store(s3_env).write_bytes(KEY, json.dumps(later.__dict__).encode())
    before = time.time()
    assert lease.renew()
    renewed = lease.read()
    assert renewed is not None and renewed.heartbeat >= before
    open_store(s3_env).write_bytes(KEY, json.dumps(later.__dict__).encode())
    lease.release()
    assert not open_store(s3_env).exists(KEY)


def test_a_damaged_lease_is_taken_over(s3_env: str) -> None:
    open_store(s3_env).write_bytes(KEY, b"{not json")
    lease = lease_for(s3_env, KEY)
    lease.acquire("grid g")
    held = lease.read()
    assert held is not None and held.token == lease.token and held.pid == os.getpid()


def test_a_dead_holder_on_this_host_is_taken_over_at_once(s3_env: str) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    now = time.time()
    record = LeaseRecord("dead", socket.gethostname(), int(gone.stdout), now, now)
    open_store(s3_env).write_bytes(KEY, json.dumps(record.__dict__).encode())
    with hold_lease(lease_for(s3_env, KEY), "grid g") as lease:
        held = lease.read()
        assert held is not None and held.token == lease.token


def test_storage_failures_are_one_line(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StorageError, match=r"^cannot write the storage at "
                       r"s3://no-such-bucket-x/p/leases/g.json: .*bucket does not exist"):
        lease_for("s3://no-such-bucket-x/p", KEY).acquire("grid g")
    monkeypatch.setenv("LESSDATA_S3_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    with pytest.raises(StorageError, match="^cannot write the storage at .*connect") as caught:
        lease_for(s3_env, KEY).acquire("grid g")
    assert "\n" not in str(caught.value)


def test_a_store_that_ignores_the_condition_is_refused(s3_env: str) -> None:
    lease = lease_for(s3_env, KEY)
    assert isinstance(lease, S3Lease)

    def drop_condition(request: Any, **_: object) -> None:  # what such a store does
        del request.headers["If-None-Match"]

    events = lease._client.meta.events  # the process's client for this endpoint: undone below
    events.register("before-sign.s3.PutObject", drop_condition)
    try:
        with pytest.raises(StorageError, match="ignores S3's conditional writes"):
            lease.acquire("grid g")
    finally:
        events.unregister("before-sign.s3.PutObject", drop_condition)
    assert not open_store(s3_env).exists(KEY)  # it left nothing that would hold the grid
