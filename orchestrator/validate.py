"""Validation at the edge: raw dicts (CLI, YAML, Ray trial dicts) become typed configs.

Pydantic errors become one ``ConfigError`` line that names the field, the bad value and
what is allowed.
"""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from trainers.config import TrainConfig
from trainers.errors import ConfigError
from trainers.experiments import canonical_name, experiment

__all__ = ["build_train_config", "distinct", "known_experiment", "parse_model",
           "validation_message"]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def distinct(values: list[T], what: str) -> list[T]:
    """``values`` unchanged if no two are equal; else a ``ValueError`` (raised inside a
    field validator, pydantic names the field)."""
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must be distinct, got {values}")
    return values


def known_experiment(name: str) -> str:
    """An experiment's canonical name (``E01`` -> ``E1``); an unknown one is a
    ``ValueError`` (raised inside a field validator, pydantic names the field)."""
    try:
        return canonical_name(name)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def validation_message(exc: ValidationError, where: str = "") -> str:
    """One line for the first problem in ``exc`` (and how many more there are)."""
    errors = exc.errors()
    # A union (``seeds: int | list``) fails once per member: report the first member only.
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"] if not _internal(str(p)))
    same_field = [e for e in errors if [p for p in e["loc"] if not _internal(str(p))]
                  == [p for p in first["loc"] if not _internal(str(p))]]
    value = first.get("input")
    msg = first["msg"].removeprefix("Value error, ")
    shown = "" if isinstance(value, dict) or repr(value) in msg else f" (got {value!r})"
    more = len(errors) - len(same_field)
    extra = f" [+{more} more problem{'s' * (more > 1)}]" if more else ""
    prefix = f"{where}: " if where else ""
    return f"{prefix}{loc + ': ' if loc else ''}{msg}{shown}{extra}"


def _internal(part: str) -> bool:
    """Pydantic's names for validator steps, not fields of the user's file."""
    return part.startswith(("function-", "constrained-", "list[")) or part in (
        "int", "str", "float", "bool", "tagged-union", *_UNION_TAGS)


# The tags of trainers.config's ModelChoice and DatasetChoice (a name, or a factory).
_UNION_TAGS = ("DatasetName", "ModelConfig", "PluginSpec")


def parse_model(model: type[M], data: Any, where: str = "") -> M:
    """Validate ``data`` as ``model``; ConfigError with one line on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, where)) from None


def build_train_config(raw: dict[str, Any], where: str = "") -> TrainConfig:
    """A TrainConfig from a raw dict; the schedule comes from ``experiment`` unless given."""
    raw = {k: v for k, v in raw.items() if v is not None}
    if "schedule" not in raw:
        raw["schedule"] = experiment(raw.get("experiment", "Benchmark")).model_dump()
    if "experiment" in raw and raw.get("experiment") != "custom":
        with contextlib.suppress(ConfigError):  # else a user-named custom schedule
            raw["experiment"] = canonical_name(raw["experiment"])
    return parse_model(TrainConfig, raw, where)
