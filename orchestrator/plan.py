"""The plan of a submitted grid: what ``submit`` runs, stored so that resume, status and
report read the same thing from any folder.

``make_plan`` validates the grid, its data and the tracking server (nothing starts) and
returns a ``Plan``: the grid resolved in full, its run name, tracking URI, storage and
every trial. Experiments of the grid that would train identically (``orchestrator.coincide``)
are one trial per seed, the representative's: the others are aliases, listed in
``identical`` and reported under their own names. ``submit`` writes it (atomically) to
``STORAGE/grids/NAME.json``, STORAGE being a folder or an object store URI
(``orchestrator.storage``); a grid file edited after submission changes nothing a resume
runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from orchestrator.coincide import Coincidence, PlanEntry, find_identical
from orchestrator.grid import NAME, Grid, TrialSpec, load_grid, slug
from orchestrator.order import interleave
from orchestrator.overrides import select_experiments
from orchestrator.plugins import check_code_folders, check_plugins, code_digest, uses_plugins
from orchestrator.preflight import check_grid_device, check_tracking
from orchestrator.record import default_tracking_uri
from orchestrator.storage import join, open_store, storage_location
from trainers.data import check_dataset
from trainers.errors import ConfigError
from trainers.factories import dataset_label

__all__ = ["Plan", "PlanOptions", "default_storage", "identical_schedules", "make_plan",
           "plan_diff", "plan_exists", "plan_key", "plan_path", "read_plan", "resolve_plan",
           "storage_name", "tracking_uri_of", "write_plan"]


@dataclass(frozen=True)
class PlanOptions:
    """What the user asked for on the command line."""

    grid: str
    dataset: str | None = None
    data_dir: Path | None = None
    seeds: int | None = None
    epochs: int | None = None
    tracking_uri: str | None = None
    address: str | None = None
    name: str | None = None
    storage: str | Path | None = None
    """A folder or an object store URI (``s3://bucket/prefix``)."""
    system_metrics: bool = False
    sets: tuple[str, ...] = ()
    """``--set KEY=VALUE`` items, applied to the grid file in order."""
    only: tuple[str, ...] = ()
    """``--only``: the experiments kept (empty: all)."""
    benchmark: bool = True
    """False for ``--no-benchmark``."""
    allow_large: bool = False
    """``--allow-large``: plan a grid past the caps of ``orchestrator.limits``."""


class Plan(BaseModel):
    """A submitted grid, resolved: everything resume, status and report need."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    grid: Grid
    tracking_uri: str
    storage: str
    """An absolute folder or an object store URI (``orchestrator.storage``)."""
    address: str | None = None
    system_metrics: bool = False
    sets: list[str] = []
    """The ``--set`` items the grid was submitted with (already in ``grid``)."""
    only: list[str] = []
    """The ``--only`` experiments (already applied to ``grid``; empty: all)."""
    benchmark: bool = True
    trials: list[TrialSpec]
    """The trials that run: one per experiment x seed, none for an alias."""
    identical: list[Coincidence] = []
    """Experiments that train identically: the representative's trials serve the others."""
    code_sha256: str | None = None
    """Content hash of the grid's ``code:`` folders (``orchestrator.plugins``)."""

    @field_validator("storage", mode="before")
    @classmethod
    def _location(cls, value: Any) -> Any:
        return storage_location(value) if isinstance(value, str | Path) else value

    def aliases(self) -> dict[str, Coincidence]:
        """Alias name -> its group (whose ``representative`` it is reported as)."""
        return {name: c for c in self.identical for name in c.others}


def default_storage() -> str:
    """``$LESSDATA_STORAGE`` (a folder or a URI), else ./runs."""
    return storage_location(os.environ.get("LESSDATA_STORAGE", "runs"))


def make_plan(options: PlanOptions) -> Plan:
    """Validate the grid, its data and the tracking server; nothing is started."""
    plan = resolve_plan(options)
    if uses_plugins(plan.grid):
        check_plugins(plan.grid)  # imported and probed here, before any Ray work
    if isinstance(plan.grid.dataset, str):
        check_dataset(plan.grid.dataset, plan.grid.placement.data_dir)
    check_tracking(plan.tracking_uri)
    return plan


def resolve_plan(options: PlanOptions) -> Plan:
    """The plan of ``options``, validated as a grid; neither data nor server is touched."""
    if options.seeds is not None and options.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {options.seeds}")
    if options.epochs is not None and options.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {options.epochs}")
    grid = load_grid(options.grid, sets=options.sets, dataset=options.dataset,
                     seeds=options.seeds, epochs=options.epochs, data_dir=options.data_dir,
                     allow_large=options.allow_large)
    if options.only or not options.benchmark:
        declared = grid.experiments + [c.name for c in grid.custom]
        only = options.only or tuple(n for n in declared if n != "Benchmark")
        grid = select_experiments(grid, only, options.benchmark)
    check_grid_device(grid.placement.device, grid.resources.gpu)
    data_dir = grid.placement.data_dir
    if data_dir is not None and not data_dir.is_absolute():
        # Trials run in Ray's worker folders: a relative path means the driver's folder.
        placement = grid.placement.model_copy(update={"data_dir": data_dir.resolve()})
        grid = grid.model_copy(update={"placement": placement})
    if options.name is not None and not re.fullmatch(NAME, options.name):
        raise ConfigError(f"--name {options.name[:80]!r}: a grid name is 1-64 letters, digits, "
                          "'_', '.' or '-', starting with a letter or digit")
    name = options.name or grid.name
    if options.dataset and not options.name and options.dataset != _file_dataset(options.grid):
        name = f"{grid.name}-{options.dataset}"
    uri = options.tracking_uri or default_tracking_uri()
    storage = storage_location(options.storage or default_storage())
    check_code_folders(grid.code)
    every = grid.trials(name)
    identical = identical_schedules(grid, every)
    aliases = {alias for c in identical for alias in c.others}
    trials = [
        t.model_copy(update={
            "checkpoint_dir": join(storage, "checkpoints", storage_name(t.key)),
            "system_metrics_uri": uri if options.system_metrics else None})
        for t in every if t.experiment not in aliases
    ]
    # The order Tune runs them in: seed-major, experiments shuffled per seed from the
    # grid's order_seed, so no experiment pays the cold start or a busy minute alone.
    trials = interleave(trials, grid.order_seed)
    return Plan(name=name, grid=grid, tracking_uri=uri, storage=storage,
                address=options.address, system_metrics=options.system_metrics,
                sets=list(options.sets), only=list(options.only),
                benchmark=options.benchmark, trials=trials, identical=identical,
                code_sha256=code_digest(grid.code))


# What a trial's training depends on besides its name, schedule and seed: the schedule is
# compared by its per-epoch counts, and every generator comes from (seed, purpose, epoch).
_NOT_RECIPE = {"experiment", "schedule", "seed"}


def identical_schedules(grid: Grid, trials: list[TrialSpec] | None = None
                        ) -> list[Coincidence]:
    """The grid's experiments that train identically at its N and E (``find_identical``).

    Compared: per-epoch counts, selection, epochs and every other field of the resolved
    config (model, optimiser, augmentation, data subset, ``anneal`` ...).
    """
    trials = grid.trials() if trials is None else trials
    first = grid.seed_list()[0]
    configs = {t.experiment: t.config for t in trials if t.seed == first}
    entries = {
        label: PlanEntry(plan.schedule, plan.selection, plan.epochs,
                         configs[label].model_dump_json(exclude=_NOT_RECIPE))
        for label, plan in grid.plans().items()
    }
    return find_identical(entries, grid.train_size())


def _file_dataset(ref: str) -> str | None:
    try:
        return dataset_label(load_grid(ref, allow_large=True).dataset)
    except ConfigError:
        return None


def storage_name(identity: str) -> str:
    """A file name for ``identity`` that no other identity can share: a readable part plus
    a hash of the whole (a slug alone is lossy: 'abc' + 'x_y' and 'abc_x' + 'y' met)."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{slug(identity)[:60]}-{digest}"


def plan_key(name: str) -> str:
    """The plan's key in its storage."""
    return f"grids/{storage_name(name)}.json"


def plan_path(name: str, storage: str | Path | None = None) -> str:
    """Where the plan of ``name`` is: a file's path or an object's URI."""
    return join(storage_location(storage or default_storage()), plan_key(name))


def plan_exists(name: str, storage: str | Path | None = None) -> bool:
    return open_store(storage or default_storage()).exists(plan_key(name))


def plan_diff(old: Plan, new: Plan) -> list[str]:
    """The grid settings (dotted names) in which ``new`` differs from ``old``."""
    a = _flat(old.grid.model_dump(mode="json"))
    b = _flat(new.grid.model_dump(mode="json"))
    a["code_sha256"], b["code_sha256"] = str(old.code_sha256), str(new.code_sha256)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): json.dumps(data, sort_keys=True)}


def write_plan(plan: Plan) -> str:
    """Replaced as a whole: a crash mid-write leaves the previous plan intact; a full disk
    is one line (``StorageError``) and leaves no partial file."""
    open_store(plan.storage).write_bytes(plan_key(plan.name),
                                         plan.model_dump_json(indent=2).encode(),
                                         what="the grid's record")
    return plan_path(plan.name, plan.storage)


def read_plan(name: str, storage: str | Path | None = None) -> Plan:
    path = plan_path(name, storage)
    store = open_store(storage or default_storage())
    try:
        return Plan.model_validate_json(store.read_bytes(plan_key(name)))
    except FileNotFoundError:
        raise ConfigError(f"no grid named {name[:80]!r} was submitted to this storage ({path} "
                          "is missing; give the storage it was submitted with: --storage)"
                          ) from None
    except (OSError, ValidationError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"the record of grid {name[:80]!r} at {path} is damaged ({first}); "
                          "submit the grid again (finished trials are found in MLflow)") from None


def tracking_uri_of(name: str, storage: str | Path | None, uri: str | None) -> str:
    """``uri`` if given, else the one the grid was submitted to, else the default."""
    if uri:
        return uri
    if plan_exists(name, storage):
        return read_plan(name, storage).tracking_uri
    return default_tracking_uri()
