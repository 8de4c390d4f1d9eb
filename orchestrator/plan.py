"""The plan of a submitted grid: what ``submit`` runs, stored so that resume, status and
report read the same thing from any folder.

``make_plan`` validates the grid, its data and the tracking server (nothing starts) and
returns a ``Plan``: the grid resolved in full, its run name, tracking URI, storage and
every trial. ``submit`` writes it (atomically) to ``STORAGE/grids/NAME.json``; a grid file
edited after submission changes nothing a resume runs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from orchestrator.grid import Grid, TrialSpec, load_grid, slug
from orchestrator.overrides import select_experiments
from orchestrator.preflight import check_grid_device, check_tracking
from orchestrator.record import default_tracking_uri
from trainers.data import check_dataset
from trainers.errors import ConfigError

__all__ = ["Plan", "PlanOptions", "default_storage", "make_plan", "plan_path", "read_plan",
           "resolve_plan", "tracking_uri_of", "write_plan"]


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
    storage: Path | None = None
    system_metrics: bool = False
    sets: tuple[str, ...] = ()
    """``--set KEY=VALUE`` items, applied to the grid file in order."""
    only: tuple[str, ...] = ()
    """``--only``: the experiments kept (empty: all)."""
    benchmark: bool = True
    """False for ``--no-benchmark``."""


class Plan(BaseModel):
    """A submitted grid, resolved: everything resume, status and report need."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    grid: Grid
    tracking_uri: str
    storage: Path
    address: str | None = None
    system_metrics: bool = False
    sets: list[str] = []
    """The ``--set`` items the grid was submitted with (already in ``grid``)."""
    only: list[str] = []
    """The ``--only`` experiments (already applied to ``grid``; empty: all)."""
    benchmark: bool = True
    trials: list[TrialSpec]


def default_storage() -> Path:
    return Path(os.environ.get("LESSDATA_STORAGE", "runs")).resolve()


def make_plan(options: PlanOptions) -> Plan:
    """Validate the grid, its data and the tracking server; nothing is started."""
    plan = resolve_plan(options)
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
                     seeds=options.seeds, epochs=options.epochs, data_dir=options.data_dir)
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
    name = options.name or grid.name
    if options.dataset and not options.name and options.dataset != _file_dataset(options.grid):
        name = f"{grid.name}-{options.dataset}"
    uri = options.tracking_uri or default_tracking_uri()
    storage = (options.storage or default_storage()).resolve()
    trials = [
        t.model_copy(update={"checkpoint_dir": str(storage / "checkpoints" / slug(t.key)),
                             "system_metrics_uri": uri if options.system_metrics else None})
        for t in grid.trials(name)
    ]
    return Plan(name=name, grid=grid, tracking_uri=uri, storage=storage,
                address=options.address, system_metrics=options.system_metrics,
                sets=list(options.sets), only=list(options.only),
                benchmark=options.benchmark, trials=trials)


def _file_dataset(ref: str) -> str | None:
    try:
        return load_grid(ref).dataset
    except ConfigError:
        return None


def plan_path(name: str, storage: Path | None = None) -> Path:
    return (storage or default_storage()) / "grids" / f"{slug(name)}.json"


def write_plan(plan: Plan) -> Path:
    """Written then renamed: a crash mid-write leaves the previous plan intact."""
    path = plan_path(plan.name, plan.storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as out:
        out.write(plan.model_dump_json(indent=2))
    os.replace(tmp, path)
    return path


def read_plan(name: str, storage: Path | None = None) -> Plan:
    path = plan_path(name, storage)
    if not path.exists():
        raise ConfigError(f"no grid named {name!r} was submitted to this storage ({path} is "
                          "missing; give the storage it was submitted with: --storage)")
    return Plan.model_validate_json(path.read_text())


def tracking_uri_of(name: str, storage: Path | None, uri: str | None) -> str:
    """``uri`` if given, else the one the grid was submitted to, else the default."""
    if uri:
        return uri
    path = plan_path(name, storage)
    if path.exists():
        return read_plan(name, storage).tracking_uri
    return default_tracking_uri()
