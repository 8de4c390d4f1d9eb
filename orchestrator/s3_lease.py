"""The grid's lease in an S3 bucket, exclusive through S3's conditional writes.

Runs on the driver. ``lease_for`` picks it for ``--storage s3://bucket/prefix``; other
object stores keep the best-effort ``ObjectLease`` (``orchestrator.lease``).

Every change of the lease object is one conditional request, which S3 applies atomically:

- acquire: ``PutObject`` with ``If-None-Match: *`` creates the lease only if there is none,
  so of two drivers racing for a free grid exactly one gets 200 and the other 412. A lease
  that has expired (or whose holder is dead on this host) is replaced with ``If-Match``
  the ETag that was read, so of two drivers taking over the same expired lease exactly
  one succeeds; the other reads the winner back and is refused, naming it.
- renew: ``PutObject`` ``If-Match`` the ETag of this driver's last write; a mismatch means
  the lease was taken over: ``renew`` returns False.
- release: ``DeleteObject`` ``If-Match`` the same ETag: a driver that lost its lease never
  deletes its successor's.

A refused condition is followed by a read: when the object is still this driver's own
record under another ETag (a write of ours whose reply was lost and that botocore retried),
the ETag is adopted and the conditional request made again; the decision is always a
conditional request, never a read. No waiting, unlike ``ObjectLease``.

The store must honour the conditions: AWS S3 does (``If-None-Match`` since August 2024,
``If-Match`` on PUT since November 2024, on DELETE since September 2025), so do recent
MinIO releases and moto (what the tests run against); for another store, check its
documentation. One that ignores ``If-None-Match`` is caught at ``acquire`` (a second
create, which must be refused, is tried) and refused in one line.

Endpoint and credentials as ``orchestrator.storage``: ``$LESSDATA_S3_ENDPOINT`` /
``$AWS_ENDPOINT_URL_S3`` / ``$AWS_ENDPOINT_URL``, or pyarrow's ``?endpoint_override=``,
``scheme``, ``region``, ``access_key``, ``secret_key``, ``session_token`` in the URI; else
boto3's own chain (``AWS_*`` variables, shared files, the node's role).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from orchestrator.lease import TTL_S, Lease, LeaseRecord, busy_error, may_take_over
from orchestrator.storage import S3_SCHEMES, s3_endpoint
from trainers.errors import BusyError, StorageError

__all__ = ["S3Lease", "is_s3"]

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Conditional requests per call before giving up (each refusal means someone else wrote)."""

_REFUSED = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"}
"""S3 error codes of a request whose condition did not hold (NoSuchKey: If-Match on an
object that is gone); a GET of a missing object gives NoSuchKey too."""


def is_s3(location: str) -> bool:
    return urlparse(location).scheme in S3_SCHEMES


class S3Lease(Lease):
    """The lease object at ``key`` below ``location`` (``s3://bucket/prefix``)."""

    def __init__(self, location: str, key: str, ttl_s: float = TTL_S) -> None:
        super().__init__(Path(key), ttl_s)
        url = urlparse(location)
        self.location, self.key = location, key
        self._bucket = url.netloc
        self._key = "/".join(p for p in (url.path.strip("/"), key) if p)
        self._client = _client(location)
        # One call at a time (the heartbeat thread and the driver's): ``_seen`` and the
        # ETag it becomes belong to one read. Reentrant: the calls below read too.
        self._mutex = threading.RLock()
        self._mine: LeaseRecord | None = None  # what this driver last wrote
        self._etag: str | None = None  # ... and its ETag
        self._seen: str | None = None  # the ETag of what ``read`` last returned

    def read(self) -> LeaseRecord | None:
        """The lease's record (None: none, or damaged); remembers the ETag it came with."""
        with self._mutex:
            reply = self._request("read", self._get)
            self._seen = reply["ETag"] if reply else None
        if reply is None:
            return None
        try:
            return LeaseRecord(**json.loads(reply["Body"]))
        except (ValueError, TypeError):
            return None  # damaged: holds nothing, but is replaced only If-Match its ETag

    def acquire(self, what: str) -> None:
        with self._mutex:
            self._mine = self._etag = None  # a new record: new since
            for _ in range(ATTEMPTS):
                if self._put(IfNoneMatch="*"):
                    self._check_conditions_honoured()
                    return
                held, etag = self.read(), self._seen
                if etag is None:
                    continue  # released since our create was refused: create again
                if held is not None and held.token != self.token:
                    if not may_take_over(held, time.time(), self.ttl_s):
                        raise busy_error(what, held, self.ttl_s)
                    log.warning("taking over the expired lease of %s (%s)", what,
                                held.describe())
                if self._put(IfMatch=etag):
                    return
            held = self.read()
            holder = held.describe() if held else "unknown"
            raise BusyError(f"{what} was taken by another driver at the same moment "
                            f"({holder}); wait for it, or stop it")

    def renew(self) -> bool:
        with self._mutex:
            return self._while_ours(lambda: self._put(IfMatch=self._etag))

    def release(self) -> None:
        with self._mutex:
            if self._while_ours(lambda: self._request(
                    "delete", self._client.delete_object, IfMatch=self._etag) is not None):
                self._mine = self._etag = None

    def _while_ours(self, attempt: Callable[[], bool]) -> bool:
        """``attempt`` a request conditional on ``self._etag``; when it is refused but the
        object is still our record (under another ETag), adopt that ETag and try again."""
        for _ in range(ATTEMPTS):
            if self._etag is None:
                return False
            if attempt():
                return True
            held = self.read()
            if held is None or held.token != self.token:
                return False  # taken over, or gone
            self._etag = self._seen
        return False

    def _put(self, **condition: str | None) -> bool:
        """Write this driver's record (a fresh heartbeat) under ``condition``; False when
        S3 refused it."""
        now = time.time()
        mine = (replace(self._mine, heartbeat=now) if self._mine is not None else
                LeaseRecord(self.token, socket.gethostname(), os.getpid(), now, now))
        reply = self._request("write", self._client.put_object,
                              Body=json.dumps(asdict(mine)).encode(), **condition)
        if reply is None:
            return False
        self._mine, self._etag = mine, reply["ETag"]
        return True

    def _check_conditions_honoured(self) -> None:
        # A store that ignores If-None-Match would let every driver "create" the lease.
        if self._put(IfNoneMatch="*"):
            self._request("delete", self._client.delete_object, IfMatch=self._etag)
            self._mine = self._etag = None
            raise StorageError(f"the storage at {self.location} ignores S3's conditional "
                               "writes (If-None-Match), which the grid's lease needs; use a "
                               "store that honours them (AWS S3, a recent MinIO)")

    def _get(self, **kwargs: Any) -> dict[str, Any]:
        reply = self._client.get_object(**kwargs)
        return {**reply, "Body": reply["Body"].read()}  # the read can fail too: in _request

    def _request(self, what: str, call: Callable[..., dict[str, Any]],
                 **kwargs: Any) -> dict[str, Any] | None:
        """``call`` on the lease object; None when S3 refused its condition or the object
        is missing; any other failure (no bucket, denied, unreachable) is one
        StorageError line."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call(Bucket=self._bucket, Key=self._key, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _REFUSED:
                return None
            reason = str(exc)
        except BotoCoreError as exc:
            reason = str(exc)
        first = reason.strip().splitlines()[0][:300] if reason.strip() else ""
        raise StorageError(f"cannot {what} the storage at {self.location}/{self.key}: "
                           f"{first}") from None


def _client(location: str) -> Any:
    """The boto3 S3 client for ``location``'s endpoint and credentials."""
    query = {k: v[-1] for k, v in parse_qs(urlparse(location).query).items()}
    if "endpoint_override" in query:
        endpoint: str | None = f"{query.get('scheme', 'https')}://{query['endpoint_override']}"
    else:
        endpoint = None if query else s3_endpoint()  # as pyarrow: a URI's query wins
    return _cached_client(endpoint, query.get("region"), query.get("access_key"),
                          query.get("secret_key"), query.get("session_token"))


@functools.lru_cache(maxsize=8)
def _cached_client(endpoint: str | None, region: str | None, access_key: str | None,
                   secret_key: str | None, session_token: str | None) -> Any:
    # One client per endpoint and process (making one costs ~0.2 s; a client is
    # thread-safe), each from its own session: boto3's default one is not thread-safe.
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=access_key,
                                    aws_secret_access_key=secret_key,
                                    aws_session_token=session_token, region_name=region)
    # The endpoint is ours alone (as for pyarrow): not boto3's own AWS_ENDPOINT_URL* reading.
    config = Config(connect_timeout=10, read_timeout=30, ignore_configured_endpoint_urls=True,
                    retries={"mode": "standard", "max_attempts": 3})
    return session.client("s3", endpoint_url=endpoint, config=config)
