"""Which trial failures are retried: by kind, and by repetition (``orchestrator.retry``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import retry
from orchestrator.record import Stop
from orchestrator.results import FailedReport
from orchestrator.storage import open_store
from trainers.errors import (
    ClusterError,
    ConfigError,
    DataError,
    DeviceError,
    MissingDataError,
    StorageError,
)


@pytest.mark.parametrize("exc", [
    ConfigError("training.device: 'cuda:9' is not on this machine"),
    DataError("train-images: truncated"), MissingDataError("no MNIST here"),
    DeviceError("cuda asked, no GPU"), TypeError("bad operand"), KeyError("x"),
    IndexError("out of range"), ValueError("Expected input batch_size (60) to match (30)"),
    AttributeError("no attribute 'w'"), AssertionError("invariant"), NotImplementedError(),
])
def test_errors_no_retry_can_fix_end_the_trial_at_once(exc: Exception, tmp_path: Path) -> None:
    assert not retry.retryable(exc)
    failed = retry.judge(exc, open_store(tmp_path / "ckpt"))
    assert failed == FailedReport(error=retry.signature(exc), why=Stop.NOT_RETRYABLE)


@pytest.mark.parametrize("exc", [
    RuntimeError("CUDA out of memory"), OSError(5, "Input/output error"),
    ConnectionError("reset"), TimeoutError(), MemoryError(), StorageError("full"),
    ClusterError("node lost"),
])
def test_other_errors_are_retried_once_each_way(exc: Exception, tmp_path: Path) -> None:
    folder = open_store(tmp_path / "ckpt")
    assert retry.retryable(exc)
    assert retry.judge(exc, folder) is None  # first attempt: raised again, Tune retries
    again = retry.judge(exc, folder)  # the retry failed the same way: it stops
    assert again == FailedReport(error=retry.signature(exc), why=Stop.SAME_ERROR)


def test_a_different_error_or_a_finished_trial_starts_the_count_again(tmp_path: Path) -> None:
    folder = open_store(tmp_path / "ckpt")
    assert retry.judge(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), folder) is None
    assert retry.judge(RuntimeError("CUDA error: an illegal memory access"), folder) is None
    retry.forget(folder)  # finished
    assert retry.judge(RuntimeError("CUDA error: an illegal memory access"), folder) is None
    assert folder.exists(retry.LAST_FAILURE)


def test_a_damaged_record_is_no_record(tmp_path: Path) -> None:
    (tmp_path / retry.LAST_FAILURE).write_bytes(b"\x80\x04not json")
    assert retry.judge(RuntimeError("x"), open_store(tmp_path)) is None
    (tmp_path / retry.LAST_FAILURE).write_text('["RuntimeError: x"]')
    assert retry.judge(RuntimeError("x"), open_store(tmp_path)) is None


def test_a_signature_is_the_type_and_first_line_capped() -> None:
    assert retry.signature(RuntimeError("boom\n  at line 3")) == "RuntimeError: boom"
    assert retry.signature(KeyError()) == "KeyError"
    assert len(retry.signature(ValueError("x" * 10_000))) == 300
