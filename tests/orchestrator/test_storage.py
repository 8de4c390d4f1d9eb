"""The storage a grid lives in: the same contract from a folder and from a real S3 API
(moto on 127.0.0.1), the checkpoint pointer, the lease in a bucket (S3's conditional one,
and the best-effort one of the other object stores: orchestrator/s3_lease.py's own races
are in test_s3_lease.py), the plan in a bucket."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from orchestrator.lease import Lease, LeaseRecord, ObjectLease, hold_lease, lease_for
from orchestrator.plan import PlanOptions, plan_exists, read_plan, resolve_plan, write_plan
from orchestrator.s3_lease import S3Lease
from orchestrator.status import list_grids
from orchestrator.storage import LATEST, LocalStore, ObjectStore, Store, open_store
from tests.conftest import run_cli
from tests.services import S3Server
from trainers.errors import BusyError, ConfigError


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    assert isinstance(open_store("s3://any-bucket/p"), ObjectStore)  # nothing is contacted


def test_the_store_contract(store: Store) -> None:
    assert not store.exists("grids/a.json") and store.list("grids") == []
    with pytest.raises(FileNotFoundError):
        store.read_bytes("grids/a.json")
    store.write_bytes("grids/a.json", b"one")
    store.write_bytes("grids/a.json", b"two")  # replaced as a whole
    store.write_bytes("grids/b.json", b"bee")
    store.write_bytes("grids/deeper/c.json", b"not listed: below the folder")
    assert store.read_bytes("grids/a.json") == b"two"
    assert store.exists("grids/a.json")
    assert store.list("grids") == ["grids/a.json", "grids/b.json"]
    assert store.modified("grids/a.json") > 0
    store.delete("grids/a.json")
    store.delete("grids/a.json")  # absent: nothing
    assert store.list("grids") == ["grids/b.json"]
    store.delete_all()
    assert not store.exists("grids/b.json") and store.list("grids") == []


def test_published_checkpoints_replace_each_other(store: Store) -> None:
    assert store.read_published("trainer.pt") is None
    for data in (b"epoch 1", b"epoch 2", b"epoch 3"):
        store.publish("trainer.pt", data)
        assert store.read_published("trainer.pt") == data
    if isinstance(store, ObjectStore):
        # One complete version and the pointer naming it; older versions are gone.
        keys = store.list("")
        assert len(keys) == 2 and "trainer.pt" + LATEST in keys, keys
        version = store.read_bytes("trainer.pt" + LATEST).decode()
        assert store.read_bytes(version) == b"epoch 3"
    else:
        assert store.list("") == ["trainer.pt"]  # today's file, no partial left


def test_a_bucket_reader_never_sees_a_half_written_checkpoint(s3_env: str) -> None:
    store = open_store(s3_env + "/ckpt")
    store.publish("trainer.pt", b"complete")
    # A writer that died after uploading a new version but before switching the pointer
    # (or mid-upload) leaves the previous checkpoint readable.
    store.write_bytes("trainer.pt.99999999999999999999-dead", b"never pointed at")
    assert store.read_published("trainer.pt") == b"complete"


def _bucket_lease(kind: str, location: str, ttl_s: float) -> Lease:
    """The S3 lease ``lease_for`` makes for a bucket, or the best-effort one it makes for
    the other object stores (gs://, abfs://: tested on moto, the only store here)."""
    if kind == "conditional":
        lease = lease_for(location, "leases/g.json", ttl_s=ttl_s)
        assert isinstance(lease, S3Lease)
        return lease
    return ObjectLease(open_store(location), "leases/g.json", ttl_s)


@pytest.mark.parametrize("kind", ["conditional", "best effort"])
def test_the_lease_on_a_bucket(kind: str, s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ObjectLease, "SETTLE_S", 0.2)
    first = _bucket_lease(kind, s3_env + "/p", ttl_s=60)
    first.acquire("grid g")
    with pytest.raises(BusyError, match="being run by another driver"):
        _bucket_lease(kind, s3_env + "/p", ttl_s=60).acquire("grid g")
    assert first.renew()
    first.release()
    assert not open_store(s3_env + "/p").exists("leases/g.json")
    with hold_lease(_bucket_lease(kind, s3_env + "/p", ttl_s=4.0), "grid g") as held:
        taken = _bucket_lease(kind, s3_env + "/p", ttl_s=4.0)
        with pytest.raises(BusyError):  # alive: renewed every ttl / 4
            taken.acquire("grid g")
        assert held.renew()
    assert not open_store(s3_env + "/p").exists("leases/g.json")  # released


def test_two_drivers_racing_for_a_best_effort_lease_leave_one_holder(
        s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ObjectLease, "SETTLE_S", 1.5)
    first = ObjectLease(open_store(s3_env), "leases/g.json")
    second = ObjectLease(open_store(s3_env), "leases/g.json")
    outcome: list[BaseException | None] = []

    def take() -> None:
        try:
            first.acquire("grid g")
            outcome.append(None)
        except BusyError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=take)
    thread.start()
    time.sleep(0.5)
    # The second driver had read the lease free before the first one wrote it, and
    # writes its own record now, while the first waits to read its record back.
    now = time.time()
    second._write(LeaseRecord(second.token, "elsewhere", 1, now, now))
    thread.join()
    assert isinstance(outcome[0], BusyError), outcome
    assert second.renew() and not first.renew()


def test_an_expired_best_effort_lease_is_taken_over(s3_env: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ObjectLease, "SETTLE_S", 0.2)
    old = ObjectLease(open_store(s3_env), "leases/g.json", ttl_s=0.1)
    old.acquire("grid g")
    # Another host's holder (not judged by its pid), silent for longer than the ttl.
    record = open_store(s3_env).read_bytes("leases/g.json").replace(
        b'"host": "', b'"host": "elsewhere-')
    open_store(s3_env).write_bytes("leases/g.json", record)
    time.sleep(0.3)
    new = ObjectLease(open_store(s3_env), "leases/g.json", ttl_s=0.1)
    new.acquire("grid g")
    assert not old.renew() and new.renew()


def test_lease_for_picks_the_lease_of_the_storage(tmp_path: Path, s3_env: str) -> None:
    lease = lease_for(str(tmp_path), "leases/g.json")
    assert type(lease) is Lease and lease.path == tmp_path / "leases" / "g.json"
    assert type(lease_for(s3_env + "/p", "leases/g.json")) is S3Lease
    assert type(lease_for("gs://any-bucket/p", "leases/g.json")) is ObjectLease  # no contact


def test_the_plan_in_a_bucket(s3_env: str, tmp_path: Path) -> None:
    storage = s3_env + "/lessdata/"
    plan = resolve_plan(PlanOptions(grid="demo", storage=storage,
                                    tracking_uri=f"sqlite:///{tmp_path}/m.db"))
    assert plan.storage == s3_env + "/lessdata"  # normalised
    assert all(t.checkpoint_dir.startswith(s3_env + "/lessdata/checkpoints/")
               for t in plan.trials)
    assert not plan_exists(plan.name, storage)
    with pytest.raises(ConfigError, match="no grid named 'demo' was submitted"):
        read_plan(plan.name, storage)
    assert write_plan(plan).startswith(s3_env + "/lessdata/grids/")
    assert plan_exists(plan.name, storage)
    assert read_plan(plan.name, storage) == plan
    rows = list_grids(storage)
    assert [r["name"] for r in rows] == ["demo"] and rows[0]["trials"] == len(plan.trials)
    assert not (tmp_path / "runs").exists()


def test_a_missing_bucket_is_one_line(s3: S3Server, tmp_path: Path) -> None:
    out = run_cli("submit", "demo", "--storage", "s3://no-such-bucket/lessdata",
                  "--tracking-uri", f"sqlite:///{tmp_path}/m.db", cwd=tmp_path, env=s3.env)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 3 and len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith("lessdata submit: error: cannot write the storage at "
                               "s3://no-such-bucket/lessdata/leases/"), lines
    assert "bucket does not exist" in lines[0]
