"""One driver per grid: real processes race for the lease; a dead holder's lease expires."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.lease import Lease, hold_lease
from trainers.errors import BusyError

RACER = """
import sys, time
from pathlib import Path
from orchestrator.lease import Lease
from trainers.errors import BusyError
path, start_at = Path(sys.argv[1]), float(sys.argv[2])
read = Lease.read
def slow_read(self):  # widen the window between reading the lease and writing it
    record = read(self)
    time.sleep(0.3)
    return record
Lease.read = slow_read
while time.time() < start_at:
    pass
try:
    Lease(path, ttl_s=60).acquire("grid g")
    print("WON", flush=True)
    time.sleep(3)  # alive while the other tries: a dead holder here is taken over at once
except BusyError as exc:
    print("LOST", exc, flush=True)
"""

HOLDER = """
import sys, time
from pathlib import Path
from orchestrator.lease import hold_lease
with hold_lease(Path(sys.argv[1]), "grid g", ttl_s=float(sys.argv[2])):
    print("HELD", flush=True)
    time.sleep(600)
"""


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.parametrize("round_", range(3))
def test_two_processes_racing_one_wins(tmp_path: Path, round_: int) -> None:
    path = tmp_path / "lease.json"
    start_at = time.time() + 1.5  # both processes are up and spinning by then
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(path), str(start_at)],
                              stdout=subprocess.PIPE, text=True, env=_env())
             for _ in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert sorted(o.split()[0] for o in outs) == ["LOST", "WON"], outs
    lost = next(o for o in outs if o.startswith("LOST"))
    assert "grid g is being run by another driver (host " in lost and ", pid " in lost
    assert " since " in lost and "UTC" in lost


def test_live_holder_refuses_then_dead_holder_expires(tmp_path: Path) -> None:
    path = tmp_path / "lease.json"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "2.0"],
                              stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
        time.sleep(2.5)  # past one ttl: only the heartbeat keeps it
        with pytest.raises(BusyError, match=f"pid {holder.pid}"):
            Lease(path, ttl_s=2.0).acquire("grid g")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # dead on this host: taken over at once, no manual unlock
    taker = Lease(path, ttl_s=2.0)
    taker.acquire("grid g")
    record = taker.read()
    assert record is not None and record.pid == os.getpid()


def test_a_holder_on_another_host_is_judged_by_its_heartbeat(tmp_path: Path) -> None:
    import json

    path = tmp_path / "lease.json"
    now = time.time()
    elsewhere = {"token": "t", "host": "another-host", "pid": 1, "since": now, "heartbeat": now}
    path.write_text(json.dumps(elsewhere))
    with pytest.raises(BusyError, match="host another-host"):  # its process is not ours
        Lease(path, ttl_s=1.0).acquire("grid g")
    time.sleep(1.2)
    Lease(path, ttl_s=1.0).acquire("grid g")  # expired: taken over


def test_released_on_exit_and_on_error(tmp_path: Path) -> None:
    path = tmp_path / "lease.json"
    with pytest.raises(RuntimeError), hold_lease(path, "grid g"):
        raise RuntimeError("boom")
    assert not path.exists()
    with hold_lease(path, "grid g") as lease:
        assert lease.read() is not None
    Lease(path).acquire("grid g")


def test_taken_over_lease_is_not_renewed_or_released(tmp_path: Path) -> None:
    path = tmp_path / "lease.json"
    old = Lease(path, ttl_s=0.1)
    old.acquire("grid g")
    time.sleep(0.2)
    new = Lease(path, ttl_s=0.1)
    new.acquire("grid g")
    assert not old.renew()
    old.release()
    record = new.read()
    assert record is not None and record.token == new.token
