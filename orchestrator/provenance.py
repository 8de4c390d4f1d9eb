"""Where a run's code came from: package version, git commit, user."""

from __future__ import annotations

import functools
import getpass
import os
import subprocess
from pathlib import Path

__all__ = ["git_sha", "package_version", "user"]


@functools.cache
def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lessdata")
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def git_sha() -> str:
    """The code's commit ($LESSDATA_GIT_SHA in images without .git)."""
    if sha := os.environ.get("LESSDATA_GIT_SHA"):
        return sha
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def user() -> str:
    """Who submitted ($LOGNAME / $USER, else the account's name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
