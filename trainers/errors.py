"""The one exception root of lessdata, and its kinds.

Every error a user can cause (bad config, missing data, unreachable server) is a
``LessdataError``; the CLI turns it into one line on stderr and an exit code: 2 for a
``ConfigError`` (the input), 3 for the others (the environment; ``orchestrator.exits``).
"""

from __future__ import annotations

__all__ = [
    "BusyError",
    "ClusterError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "LessdataError",
    "MissingDataError",
    "StorageError",
    "TrackingError",
]


class LessdataError(Exception):
    """Root of every error lessdata raises on purpose."""


class ConfigError(LessdataError, ValueError):
    """A config, grid file or command-line value is invalid."""


class DataError(LessdataError):
    """A dataset file is missing, truncated or not in the expected format."""


class TrackingError(LessdataError):
    """The MLflow tracking server cannot be used (unreachable, unauthorised)."""


class ClusterError(LessdataError):
    """The Ray cluster cannot run the request (unreachable, too few resources)."""


class BusyError(LessdataError):
    """Another live driver is running the same grid (its lease has not expired)."""


class DeviceError(LessdataError):
    """The device asked for is not on this machine (``cuda`` without a GPU)."""


class MissingDataError(DataError):
    """A dataset file is not there at all (``lessdata download`` fetches it)."""


class StorageError(LessdataError):
    """The grid's storage cannot be used (read-only, full, missing)."""
