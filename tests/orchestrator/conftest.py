"""Fixtures shared by the orchestrator's tests: a grid's storage as a folder or a bucket
(a real S3 API: moto on 127.0.0.1, ``s3_env`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.storage import Store, open_store


@pytest.fixture(params=["folder", "bucket"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store in a fresh folder, then in a fresh bucket."""
    if request.param == "folder":
        yield open_store(tmp_path / "store")
    else:
        yield open_store(request.getfixturevalue("s3_env") + "/prefix/store")
