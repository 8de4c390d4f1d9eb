"""A grid's recipe and placement sections, derived from ``TrainConfig``, not restated.

``Training`` is a partial ``TrainConfig``: every recipe field of it, optional, with the same
type and bounds (a field added to TrainConfig is settable from a grid at once).
``Placement`` is where a trial runs (device, threads, data folder): not part of the
recipe, so never part of what an experiment is compared on. ``Resources`` is what a
trial asks Ray for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from trainers.config import TrainConfig

__all__ = ["GRID_FIELDS", "PLACEMENT_FIELDS", "Placement", "Resources", "Training",
           "lift_placement"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Strict):
    """What one trial asks Ray for."""

    cpu: Annotated[float, Field(gt=0.0)] = 1.0
    gpu: Annotated[float, Field(ge=0.0)] = 0.0
    """Fractional GPUs pack several small trials onto one device (e.g. 0.25)."""
    node_type: str | None = None
    """A Ray custom resource every trial needs 0.001 of: pins a grid to one kind of node."""

    @field_validator("gpu")
    @classmethod
    def _whole_or_fraction(cls, gpu: float) -> float:
        if gpu > 1.0 and gpu != int(gpu):
            raise ValueError(f"more than one GPU must be a whole number, got gpu={gpu}")
        return gpu

    def ray_resources(self) -> dict[str, float]:
        res = {"cpu": self.cpu, "gpu": self.gpu}
        if self.node_type:
            res[self.node_type] = 0.001
        return res


class Placement(_Strict):
    """Where a trial runs; the same recipe placed elsewhere is the same experiment."""

    device: str | None = None
    """'auto' (default), 'cpu', 'cuda', 'cuda:1' ..."""
    threads: Annotated[int, Field(ge=1)] | None = None
    """torch threads on CPU (default: the trial's Ray CPUs)."""
    data_dir: Path | None = None
    """The dataset's folder, as every node sees it (relative: the submitting folder)."""


PLACEMENT_FIELDS = tuple(Placement.model_fields)
GRID_FIELDS = ("dataset", "experiment", "schedule", "selection", "seed", "epochs",
               "batch_size", "model", "emissions")
"""TrainConfig fields a grid sets in its own sections (or per experiment), not in training:."""


def _optional(name: str) -> tuple[Any, Any]:
    info = TrainConfig.model_fields[name]
    kind: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return kind | None, Field(default=None, description=info.description)


Training = create_model(  # type: ignore[call-overload]
    "Training",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="Overrides of the training recipe: a partial TrainConfig.",
    **{name: _optional(name) for name in TrainConfig.model_fields
       if name not in GRID_FIELDS and name not in PLACEMENT_FIELDS},
)


def lift_placement(raw: Any) -> Any:
    """A raw grid with ``data_dir:`` (top level) and ``training: {device, threads}`` moved
    into ``placement:`` (a shorthand older grid files use); ``placement:`` itself wins."""
    if not isinstance(raw, dict):
        return raw
    raw = dict(raw)
    moved = {k: raw.pop(k) for k in ("data_dir",) if k in raw}
    training = raw.get("training")
    if isinstance(training, dict):
        moved.update({k: training[k] for k in PLACEMENT_FIELDS if k in training})
        raw["training"] = {k: v for k, v in training.items() if k not in PLACEMENT_FIELDS}
    placement = raw.get("placement") or {}
    if moved and isinstance(placement, dict):
        raw["placement"] = {**moved, **placement}
    return raw
