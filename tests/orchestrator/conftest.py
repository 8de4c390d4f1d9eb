"""Fixtures shared by the orchestrator's tests: a grid's storage as a folder or a bucket
(a real S3 API: moto on 127.0.0.1, the session's ``s3`` server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.storage import Store, open_store
from tests.services import S3Server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """This process talks to moto; a fresh bucket's URI."""
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    return s3.make_bucket(f"b-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["folder", "bucket"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store in a fresh folder, then in a fresh bucket."""
    if request.param == "folder":
        yield open_store(tmp_path / "store")
    else:
        yield open_store(request.getfixturevalue("s3_env") + "/prefix/store")
