"""The driver's MLflow writer: queued writes, sent in parallel across runs, in order within one.

Tune's event loop never waits on the server: callers ``put`` a write and return. Each write
goes into a *lane* (lessdata uses one per trial run and one per experiment's parent); a
small pool of threads sends the heads of different lanes at once, and a lane's writes go
one after the other, in the order they were put. A write may also wait for every write put
before it in other lanes (``after``); a write put with no lane is a barrier: it waits for
every earlier write and every later one waits for it (a writer used without lanes is one
ordered queue). Consecutive ``Batch`` writes of one lane go as one ``log_batch`` when they
are waiting (MLflow's limits permitting), so a queue that fell behind catches up in fewer
requests.

A write that fails for a reason that may pass (connection refused, a timeout, HTTP 5xx or
429) stays first in its lane and is retried every ``retry_s``; one the server rejects
(HTTP 4xx: the write itself is wrong) is logged once with its HTTP status (0: no HTTP
answer, a bug in the write), dropped and counted, and its lane moves on. Writes merged
into one request that are rejected are sent again one by one, so only the bad one drops.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

__all__ = ["BARRIER", "Batch", "Rejected", "Writer", "http_status"]

log = logging.getLogger(__name__)

BARRIER = ""
"""The lane of a write put with no lane: it runs alone, between every earlier and later one."""

MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000
"""MLflow's limits on one ``log_batch`` request."""


@dataclass(frozen=True)
class Rejected:
    """A write the server refused: dropped, never retried."""

    what: str
    status: int
    message: str


@dataclass(frozen=True)
class Batch:
    """A ``log_batch`` of one run whose id is known only when it is sent (``run_id()``);
    writes of these that wait in one lane are merged (``merged``) into fewer requests."""

    client: Any
    run_id: Callable[[], str]
    metrics: tuple[Any, ...] = ()
    params: tuple[Any, ...] = ()
    tags: tuple[Any, ...] = ()

    def __call__(self) -> None:
        self.client.log_batch(self.run_id(), metrics=list(self.metrics),
                              params=list(self.params), tags=list(self.tags),
                              synchronous=True)

    def merged(self, other: Batch) -> Batch | None:
        """One request sending both (``other`` second), or None when MLflow's limits or a
        param set twice forbid it. A tag set twice keeps its later value."""
        if other.client is not self.client or other.run_id is not self.run_id:
            return None
        tags = {t.key: t for t in (*self.tags, *other.tags)}
        params = (*self.params, *other.params)
        metrics = (*self.metrics, *other.metrics)
        if (len(metrics) > MAX_METRICS or len(params) > MAX_PARAMS or len(tags) > MAX_TAGS
                or len(metrics) + len(params) + len(tags) > MAX_ENTITIES
                or len({p.key for p in params}) < len(params)):
            return None
        return Batch(self.client, self.run_id, metrics, params, tuple(tags.values()))


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an MLflow failure maps to (None: no answer from the server)."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return int(exc.get_http_status_code())
    return None


def _retryable(exc: BaseException) -> bool:
    """Worth retrying: no answer (connection, timeout), or HTTP 5xx / 429 from the server.

    Anything else (HTTP 4xx, or a bug in the write itself) would fail again the same way.
    """
    import requests

    status = http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    return isinstance(exc, (OSError, requests.RequestException))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


@dataclass
class _Item:
    seq: int
    what: str
    op: Callable[[], Any]
    lane: str
    after: frozenset[str] = frozenset()
    parts: list[_Item] = field(default_factory=list)  # the writes a merged item sends
    solo: bool = False  # rejected once as part of a merge: sent alone


class Writer:
    """A pool of ``threads`` sending queued writes, ordered per lane; a context manager."""

    def __init__(self, name: str, retry_s: float = 2.0, threads: int = 8) -> None:
        if threads < 1:
            raise ValueError(f"a writer needs at least one thread: {threads=}")
        self.name = name
        self.retry_s = retry_s
        self.threads = threads
        self.rejected: list[Rejected] = []
        self.requests = 0  # requests made (merged writes count once): for benchmarks
        self._lanes: dict[str, deque[_Item]] = {}
        self._busy: dict[str, int] = {}  # lane -> seq of its write in flight
        self._retry_at: dict[str, float] = {}  # lane -> when its failed head is tried again
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._closing = False
        self._away_since: float | None = None

    def __enter__(self) -> Writer:
        self._workers = [threading.Thread(target=self._loop, daemon=True,
                                          name=f"{self.name}-{i}") for i in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + self.retry_s + 15  # at most the writes in flight
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        self._workers = []

    def put(self, what: str, op: Callable[[], Any], replace: bool = False,
            lane: str = BARRIER, after: Iterable[str] = ()) -> None:
        """Queue ``op`` (``what`` names it in logs) last in ``lane``; it also waits for the
        writes put earlier in the lanes ``after``. ``replace`` drops queued writes of that
        name (the new one waits for whatever they waited for)."""
        waits = set(after)
        with self._cond:
            if replace:
                for queue in self._lanes.values():
                    for item in [i for i in queue if i.what == what]:
                        queue.remove(item)
                        waits |= item.after | {item.lane}
            waits.discard(lane)
            queue = self._lanes.setdefault(lane, deque())
            queue.append(_Item(next(self._seq), what, op, lane, frozenset(waits)))
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Writes queued and not yet acknowledged by the server."""
        with self._cond:
            return self._count()

    def flush(self, timeout_s: float = 120.0) -> bool:
        """Wait up to ``timeout_s`` for every queued write to be sent (or rejected)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._retry_at.clear()  # a lane waiting out retry_s tries again now
            self._cond.notify_all()
            while self._count():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=min(left, self.retry_s))
                self._retry_at.clear()
                self._cond.notify_all()
        return True

    # -- on the pool's threads ----------------------------------------------------------

    def _count(self) -> int:
        return sum(len(q) for q in self._lanes.values()) + len(self._busy)

    def _oldest(self, lane: str) -> int | None:
        """The seq of the oldest write of ``lane`` not yet done."""
        queue = self._lanes.get(lane)
        seqs = [s for s in (queue[0].seq if queue else None, self._busy.get(lane))
                if s is not None]
        return min(seqs, default=None)

    def _ready(self, item: _Item, now: float) -> bool:
        if item.lane in self._busy or self._retry_at.get(item.lane, 0.0) > now:
            return False
        if item.lane == BARRIER:
            waits: Iterable[str] = [lane for lane in self._lanes if lane != BARRIER]
            waits = itertools.chain(waits, self._busy)
        else:
            waits = itertools.chain(item.after, (BARRIER,))
        return all((s := self._oldest(lane)) is None or s > item.seq for lane in waits)

    def _take(self) -> _Item | None:
        """The oldest ready write (merged with the ``Batch`` writes behind it), marked in
        flight; None when none is ready."""
        now = time.monotonic()
        heads = sorted((q[0] for q in self._lanes.values() if q), key=lambda i: i.seq)
        for head in heads:
            if self._ready(head, now):
                queue = self._lanes[head.lane]
                item = queue.popleft()
                item = self._merge(item, queue, now)
                if not queue:
                    del self._lanes[head.lane]
                self._busy[item.lane] = item.seq
                return item
        return None

    def _merge(self, item: _Item, queue: deque[_Item], now: float) -> _Item:
        if not isinstance(item.op, Batch) or item.solo or item.lane == BARRIER:
            return item
        parts, batch = [item], item.op
        while queue and isinstance(queue[0].op, Batch) and not queue[0].solo \
                and all((s := self._oldest(lane)) is None or s > queue[0].seq
                        for lane in (*queue[0].after, BARRIER)):
            joined = batch.merged(queue[0].op)
            if joined is None:
                break
            batch = joined
            parts.append(queue.popleft())
        if len(parts) == 1:
            return item
        return _Item(item.seq, f"{item.what} (+{len(parts) - 1} merged)", batch, item.lane,
                     item.after, parts)

    def _loop(self) -> None:
        while True:
            with self._cond:
                item = None if self._closing else self._take()
                while item is None and not self._closing:
                    self._cond.wait(timeout=self._wait_s())
                    item = self._take()
                if self._closing:  # what is still queued waits for `lessdata resume`
                    if item is not None:
                        self._lanes.setdefault(item.lane, deque()).appendleft(item)
                        del self._busy[item.lane]
                    return
            assert item is not None  # the loop above ends with one, or on closing
            self._send(item)

    def _wait_s(self) -> float | None:
        """Until the earliest lane waiting out a failure may try again (None: no such)."""
        now = time.monotonic()
        later = [t for t in self._retry_at.values() if t > now]
        return max(0.01, min(later) - now) if later else None

    def _send(self, item: _Item) -> None:
        try:
            item.op()
        except Exception as exc:  # noqa: BLE001 - classified below, never lost silently
            with self._cond:
                self.requests += 1
                self._failed(item, exc)
                del self._busy[item.lane]
                self._cond.notify_all()
            return
        with self._cond:
            self.requests += 1
            del self._busy[item.lane]
            self._retry_at.pop(item.lane, None)
            if self._away_since is not None:
                log.warning("tracking server back after %.0f s; sending %d queued writes",
                            time.monotonic() - self._away_since, self._count())
                self._away_since = None
            self._cond.notify_all()

    def _failed(self, item: _Item, exc: BaseException) -> None:
        """Under the lock: put a write that may pass first in its lane again, drop one the
        server refused (a merged one goes again as its parts, alone)."""
        queue = self._lanes.setdefault(item.lane, deque())
        if _retryable(exc):
            queue.appendleft(item)
            self._retry_at[item.lane] = time.monotonic() + self.retry_s
            if self._away_since is None:
                self._away_since = time.monotonic()
                log.warning("tracking server unavailable (%s); %d writes wait: %s",
                            item.what, self._count(), _first_line(exc))
            return
        if item.parts:
            for part in reversed(item.parts):
                part.solo = True
                queue.appendleft(part)
            return
        if not queue:
            del self._lanes[item.lane]
        status = http_status(exc) or 0
        self.rejected.append(Rejected(item.what, status, _first_line(exc)))
        log.error("tracking server rejected %s (HTTP %d), dropped: %s", item.what, status,
                  _first_line(exc))
