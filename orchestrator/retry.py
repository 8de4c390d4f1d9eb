"""Which failures of a trial a retry can fix. Runs on a Ray worker, in the trainable.

Tune retries a trial that raises up to ``max_failures`` times whatever the error. That is
right for a lost node, a full device or a storage hiccup, and wasted compute (or, with a
large ``max_failures``, a loop without end) for an error that no retry can fix. So the
trainable judges every error before Tune sees it (``judge``):

- not retryable by its kind: lessdata's ``ConfigError``, ``DataError`` (``MissingDataError``
  included), ``DeviceError``, and Python's errors of a program that is wrong the same way
  every time (``TypeError``, ``ValueError``, ``LookupError``, ``AttributeError``,
  ``NameError``, ``AssertionError``, ``NotImplementedError``);
- the same as the attempt before: any other error (a ``RuntimeError`` from a wrong shape,
  say) whose signature (type and first line of its message) equals the one the trial's
  previous attempt failed with. Each attempt's signature is kept in the trial's
  checkpoint folder (``last_failure.json``), where the next attempt (a Tune retry or a
  later ``lessdata resume``) finds it; a finished trial removes it.

Either way the trainable ends the trial with a ``FailedReport`` instead of raising: Tune
sees the trial end and does not retry it; the driver marks its run failed with the reason
(``lessdata.error``, ``lessdata.stop``) and the grid exits 1. Every other error is raised
again for Tune to retry.
"""

from __future__ import annotations

import json
import logging

from orchestrator.record import Stop
from orchestrator.results import FailedReport
from orchestrator.storage import Store
from trainers.errors import ConfigError, DataError, DeviceError, StorageError

__all__ = ["LAST_FAILURE", "NOT_RETRYABLE", "forget", "judge", "retryable", "signature"]

log = logging.getLogger(__name__)

LAST_FAILURE = "last_failure.json"
"""In a trial's checkpoint folder: the signature of its last failed attempt."""

NOT_RETRYABLE: tuple[type[BaseException], ...] = (
    ConfigError, DataError, DeviceError,
    TypeError, ValueError, LookupError, AttributeError, NameError, AssertionError,
    NotImplementedError,
)
"""Errors that fail the same way on every attempt (``ConfigError`` is a ``ValueError``)."""

_LINE = 300  # a signature's length cap: one readable line


def signature(exc: BaseException) -> str:
    """The error's type and the first line of its message, capped: 'RuntimeError: ...'."""
    lines = str(exc).strip().splitlines()
    first = lines[0].strip() if lines else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text[:_LINE]


def retryable(exc: BaseException) -> bool:
    """Whether a retry could fix ``exc`` on its own kind (the same-error rule aside)."""
    return not isinstance(exc, NOT_RETRYABLE)


def judge(exc: Exception, store: Store) -> FailedReport | None:
    """The trial's end when ``exc`` is not worth a retry, else ``None`` (raise it again).

    Records ``exc``'s signature in the trial's checkpoint ``store`` either way, for the next
    attempt to compare.
    """
    sign = signature(exc)
    before = _previous(store)
    _remember(store, sign)
    if not retryable(exc):
        return FailedReport(error=sign, why=Stop.NOT_RETRYABLE)
    if before == sign:
        return FailedReport(error=sign, why=Stop.SAME_ERROR)
    return None


def forget(store: Store) -> None:
    """The trial finished: a later failure starts a new count."""
    try:
        store.delete(LAST_FAILURE)
    except (OSError, StorageError) as exc:
        log.warning("could not remove %s of %s: %s", LAST_FAILURE, store.location, exc)


def _previous(store: Store) -> str | None:
    try:
        data = json.loads(store.read_bytes(LAST_FAILURE))
    except FileNotFoundError:
        return None
    except (OSError, StorageError, ValueError) as exc:  # damaged: judge as if there were none
        log.warning("could not read %s of %s: %s", LAST_FAILURE, store.location, exc)
        return None
    sign = data.get("signature") if isinstance(data, dict) else None
    return sign if isinstance(sign, str) else None


def _remember(store: Store, sign: str) -> None:
    """Replaced whole; a storage that cannot take it only loses the same-error rule."""
    try:
        store.write_bytes(LAST_FAILURE, json.dumps({"signature": sign}).encode(),
                          what="the trial's last failure")
    except (OSError, StorageError) as exc:
        log.warning("could not record the failure in %s: %s", store.location, exc)
