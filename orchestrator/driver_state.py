"""Where the driver keeps Ray Tune's own state: its own disk, never the grid's storage.

Tune writes pickles beside its experiment (``tuner.pkl``, ``trainable.pkl``, the
cloudpickled parts of ``experiment_state-*.json``, every failed trial's ``error.pkl``) and
the driver unpickles some of them (the result grid reads ``error.pkl`` with cloudpickle,
a Tune restore reads the rest). The grid's storage is written by every worker, so Tune's
state must not live there: whoever can write the share could run code on the head. It
lives in ``$LESSDATA_DRIVER_STATE`` (the compose and KubeRay manifests set
``/var/lib/lessdata``), else ``$XDG_STATE_HOME/lessdata``, else
``~/.local/state/lessdata``, made readable by this user alone.

Nothing else needs it on other nodes: lessdata reports no Tune checkpoints (trials
checkpoint into ``STORAGE/checkpoints``, loaded with ``weights_only``) and syncs no trial
artifacts, so Tune's own files are written by the driver only, and a multi-node cluster
runs with a local ``storage_path`` (Ray requires shared storage only for the checkpoints
and artifacts a trial reports, which lessdata does not use).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from orchestrator.grid import slug
from orchestrator.storage import is_remote, storage_location
from trainers.errors import ConfigError

__all__ = ["driver_state_dir", "tune_location"]

ENV = "LESSDATA_DRIVER_STATE"


def _default() -> Path:
    xdg = os.environ.get("XDG_STATE_HOME")
    return Path(xdg) / "lessdata" if xdg else Path.home() / ".local" / "state" / "lessdata"


def driver_state_dir(storage: str | Path) -> Path:
    """The driver's own state folder (made, mode 0700); refused inside a folder ``storage``
    (an object store's URI is never the driver's disk)."""
    raw = os.environ.get(ENV)
    folder = (Path(raw) if raw else _default()).expanduser().resolve()
    location = storage_location(storage)
    shared = None if is_remote(location) else Path(location).resolve()
    if shared is not None and (folder == shared or shared in folder.parents):
        source = f"${ENV}={raw}" if raw else f"the default {folder}"
        raise ConfigError(f"{source} is inside the grid's storage {shared}: Ray Tune keeps "
                          "pickles there that the driver loads, and workers write the "
                          f"storage; set ${ENV} to a folder on the driver's own disk")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def tune_location(storage: str | Path, grid: str) -> tuple[str, str]:
    """(Tune's ``storage_path``, its experiment name) for ``grid`` submitted to ``storage``.

    The name holds a hash of both: the same grid name on two storages (two drivers on one
    host, each with its own lease) never shares a Tune experiment folder.
    """
    location = storage_location(storage)
    digest = hashlib.sha256(f"{location}\0{grid}".encode()).hexdigest()[:16]
    return str(driver_state_dir(storage) / "tune"), f"{slug(grid)[:60]}-{digest}"
