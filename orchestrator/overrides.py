"""Command-line changes to a grid: ``--set KEY=VALUE`` and ``--only E1,E3``.

``--set`` writes into the grid file's mapping before it is validated, so a set value is
checked exactly as the file's own would be (an unknown key is refused by name). ``--only``
keeps a subset of the grid's declared experiments (and the Benchmark, unless told not to)
after validation, so its names are the grid's own. Both are stored in the plan: resume
repeats them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from orchestrator.grid import Grid
from orchestrator.safe_yaml import clip, load_yaml
from orchestrator.validate import parse_model
from trainers.errors import ConfigError
from trainers.experiments import canonical_name

__all__ = ["apply_sets", "parse_only", "select_experiments"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def apply_sets(raw: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """``raw`` with every ``KEY=VALUE`` of ``sets`` written in (dotted keys reach into
    mappings; the value is read as YAML: ``0.5``, ``true``, ``[E1, E3]``)."""
    out = dict(raw)
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not _KEY.fullmatch(key):
            raise ConfigError(f"--set {clip(item, 80)!r}: expected KEY=VALUE with a dotted key, "
                              "e.g. training.lr=0.0005")
        value = load_yaml(text, where=f"--set {key}") if text.strip() else None
        _write(out, key.split("."), value, key)
    return out


def _write(node: dict[str, Any], path: list[str], value: Any, key: str) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        node[head] = value
        return
    child = node.get(head)
    if child is None:
        child = {}
    elif not isinstance(child, dict):
        raise ConfigError(f"--set {key}: {head} is {child!r} in the grid, not a mapping")
    child = dict(child)  # never edit the caller's nested mappings
    node[head] = child
    _write(child, rest, value, key)


def parse_only(text: str) -> tuple[str, ...]:
    """``"E1, E3"`` -> ``("E1", "E3")``; ConfigError when nothing is named."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise ConfigError(f"--only {text!r}: name at least one experiment, e.g. --only E1,E3")
    return names


def select_experiments(grid: Grid, only: Sequence[str], benchmark: bool = True) -> Grid:
    """``grid`` with only the declared experiments named in ``only`` (and the Benchmark
    when ``benchmark`` and the grid has it); their budget-matched twins follow them."""
    declared = grid.experiments + [c.name for c in grid.custom]
    wanted = {_declared_name(name, declared, grid.name) for name in only}
    if benchmark and "Benchmark" in declared:
        wanted.add("Benchmark")
    elif not benchmark and "Benchmark" in wanted:
        raise ConfigError("--only names the Benchmark and --no-benchmark drops it: choose one")
    raw = grid.model_dump()
    raw["experiments"] = [name for name in grid.experiments if name in wanted]
    raw["custom"] = [c for c, model in zip(raw["custom"], grid.custom, strict=True)
                     if model.name in wanted]
    return parse_model(Grid, raw, where=f"grid {grid.name} with --only")


def _declared_name(name: str, declared: list[str], grid: str) -> str:
    if name in declared:
        return name
    try:
        canonical = canonical_name(name)  # e3 -> E3
    except ConfigError:
        canonical = name
    if canonical in declared:
        return canonical
    raise ConfigError(f"--only: no experiment {clip(name, 40)!r} in grid {grid} "
                      f"(it has: {', '.join(declared)})")
