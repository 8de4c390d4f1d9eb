"""The driver's MLflow writer thread: queued writes, sent in order, retried only when worth it.

Tune's event loop never waits on the server: callers ``put`` a write and return. A write
that fails for a reason that may pass (connection refused, a timeout, HTTP 5xx or 429)
stays first in line and is retried every ``retry_s``; one the server rejects (HTTP 4xx:
the write itself is wrong) is logged once with its HTTP status (0: no HTTP answer, a bug
in the write), dropped and counted, and the queue moves on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

__all__ = ["Rejected", "Writer", "http_status"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejected:
    """A write the server refused: dropped, never retried."""

    what: str
    status: int
    message: str


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


class Writer:
    """One thread that sends queued writes in order; use it as a context manager."""

    def __init__(self, name: str, retry_s: float = 2.0) -> None:
        self.name = name
        self.retry_s = retry_s
        self.rejected: list[Rejected] = []
        self._pending: deque[tuple[str, Callable[[], Any]]] = deque()
        self._inflight: tuple[str, Callable[[], Any]] | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    def __enter__(self) -> Writer:
        self._thread = threading.Thread(target=self._loop, daemon=True, name=self.name)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.retry_s + 15)  # at most the write in flight
        self._thread = None

    def put(self, what: str, op: Callable[[], Any], replace: bool = False) -> None:
        """Queue ``op`` (``what`` names it in logs); ``replace`` drops queued ops of that name."""
        with self._cond:
            if replace:
                for item in [item for item in self._pending if item[0] == what]:
                    self._pending.remove(item)
            self._pending.append((what, op))
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Writes queued and not yet acknowledged by the server."""
        with self._cond:
            return len(self._pending) + (self._inflight is not None)

    def flush(self, timeout_s: float = 120.0) -> bool:
        """Wait up to ``timeout_s`` for every queued write to be sent (or rejected)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._inflight is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.notify_all()  # a writer waiting out retry_s tries again now
                self._cond.wait(timeout=min(left, self.retry_s))
        return True

    def _loop(self) -> None:
        away_since: float | None = None
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.notify_all()  # wakes flush()
                    self._cond.wait()
                if self._closing:
                    return
                self._inflight = item = self._pending.popleft()
            what, op = item
            try:
                op()
            except Exception as exc:  # noqa: BLE001 - classified below, never lost silently
                if not _retryable(exc):
                    self._reject(what, exc)
                    continue
                with self._cond:  # first in line again
                    self._pending.appendleft(item)
                    self._inflight = None
                if away_since is None:
                    away_since = time.monotonic()
                    log.warning("tracking server unavailable (%s); %d writes wait: %s",
                                what, self.pending, _first_line(exc))
                with self._cond:
                    self._cond.wait(timeout=self.retry_s)
                continue
            with self._cond:
                self._inflight = None
            if away_since is not None:
                log.warning("tracking server back after %.0f s; sending %d queued writes",
                            time.monotonic() - away_since, self.pending)
                away_since = None

    def _reject(self, what: str, exc: BaseException) -> None:
        status = http_status(exc) or 0
        self.rejected.append(Rejected(what, status, _first_line(exc)))
        log.error("tracking server rejected %s (HTTP %d), dropped: %s", what, status,
                  _first_line(exc))
        with self._cond:
            self._inflight = None
            self._cond.notify_all()
