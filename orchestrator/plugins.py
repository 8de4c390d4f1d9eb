"""A grid's own data and model (plugins): checked on the driver, shipped to the workers.

Runs on the driver. ``check_plugins`` is the submit-time check, before any Ray work: the
``code:`` folders exist, the factories import (with the folders on ``sys.path``), the
dataset factory is called once and its mapping checked (``trainers.plugins.check_data``),
and the model is built and run on a probe batch of 4 test images (``check_model``). Every
problem is one ``ConfigError`` line (exit 2). ``runtime_env`` ships the folders to every
Ray worker as ``py_modules``; ``code_digest`` is the content hash the plan stores, so a
changed plugin is config drift. torch is imported only for a grid that has plugins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainers.config import ModelConfig, PluginSpec
from trainers.errors import ConfigError
from trainers.factories import code_digest, code_on_path, is_plugin

if TYPE_CHECKING:
    from orchestrator.grid import Grid
    from trainers.data import DatasetInfo

__all__ = ["check_code_folders", "check_code_unchanged", "check_plugins", "code_digest",
           "plugin_dataset_info", "runtime_env", "uses_plugins"]

# Data-set shapes already probed in this process: (spec, folders) -> info.
_PROBED: dict[str, DatasetInfo] = {}


def uses_plugins(grid: Grid) -> bool:
    """Whether the grid names a factory of its own or ships code."""
    return is_plugin(grid.dataset) or is_plugin(grid.model) or bool(grid.code)


def check_code_folders(code: list[Path]) -> None:
    """Every ``code:`` entry is an existing folder (Ray's ``py_modules`` ships folders)."""
    for folder in code:
        if not folder.is_dir():
            what = "a file, not a folder" if folder.exists() else "missing"
            raise ConfigError(f"code: {folder} is {what}; list the folders of your package "
                              "(each is importable on the workers by its name)")


def plugin_dataset_info(dataset: PluginSpec, code: list[Path]) -> DatasetInfo:
    """A plugin data set's shape (classes, channels, sizes): its factory called once per
    process (the splits are not kept)."""
    key = _key(dataset, code)
    if key not in _PROBED:
        check_code_folders(code)
        from trainers.plugins import load_data

        with code_on_path(code):
            _PROBED[key] = load_data(dataset).info
    return _PROBED[key]


def _key(dataset: PluginSpec, code: list[Path]) -> str:
    return json.dumps([dataset.model_dump(mode="json"), [str(p) for p in code]])


def check_plugins(grid: Grid) -> None:
    """Import the grid's factories, call the dataset factory once and run the model on a
    probe batch; one ``ConfigError`` line for the first problem."""
    check_code_folders(grid.code)
    from trainers.plugins import check_model, load_data, make_model

    with code_on_path(grid.code):
        data = load_data(grid.dataset, grid.placement.data_dir)
        if isinstance(grid.dataset, PluginSpec):
            _PROBED[_key(grid.dataset, grid.code)] = data.info
        net = make_model(grid.model, data.info, seed=grid.seed_list()[0])
        check_model(net, data, _where(grid.model))


def _where(model: ModelConfig | PluginSpec) -> str:
    return f"model factory {model.factory!r}" if isinstance(model, PluginSpec) else "the model"


def runtime_env(code: list[Path]) -> dict[str, Any] | None:
    """Ray's runtime environment that ships the ``code:`` folders to every worker."""
    return {"py_modules": [str(p) for p in code]} if code else None


def check_code_unchanged(code: list[Path], recorded: str | None) -> None:
    """Refuse to resume a grid whose ``code:`` folders changed since it was submitted."""
    if recorded is None and not code:
        return
    check_code_folders(code)
    now = code_digest(code)
    if now != recorded:
        raise ConfigError(f"the plugin code under {', '.join(str(p) for p in code)} changed "
                          f"since the grid was submitted (sha256 {str(recorded)[:12]} -> "
                          f"{str(now)[:12]}); submit it under a new --name, or restore it")
