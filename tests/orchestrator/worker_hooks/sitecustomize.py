"""Test hooks, never installed: faults and delays put into a test's Ray workers.

A test starts its Ray cluster with this folder first on ``PYTHONPATH``; Python imports
this module at every start. It does nothing unless one of the variables below is set, and
then only wraps one function of a lessdata module once that module has run (a finder on
``sys.meta_path``). Production code carries no such failure and no sleep.

``LESSDATA_TEST_FAIL_DIR`` (a folder): makes chosen experiments' trials fail. Wraps
``trainers.run.run_training``: before each attempt of a trial it appends a line to
``DIR/<experiment>.attempts`` (the attempts a test counts), then fails as
``DIR/<experiment>`` says (no file: no failure):

- ``config``: a ``ConfigError`` on every attempt (an error no retry can fix);
- ``same``: the same ``RuntimeError`` on every attempt (a wrong shape, say);
- ``varying``: a ``RuntimeError`` whose message differs on every attempt;
- ``once``: a ``RuntimeError`` on the first attempt only (a transient failure).

``LESSDATA_TEST_SLOW_EXPERIMENT`` (an experiment's name; ``LESSDATA_TEST_SLOW_S``: seconds
per step, default 0.05): slows that experiment's training steps. Wraps
``Trainer._update_ema`` (called once per training step, inside the training clock) in
``trainers.train``, so the slowed experiment's trials train slower per image while every
other trial of the grid is untouched.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

FAIL_DIR = os.environ.get("LESSDATA_TEST_FAIL_DIR")
SLOW_EXPERIMENT = os.environ.get("LESSDATA_TEST_SLOW_EXPERIMENT")
SLOW_S = float(os.environ.get("LESSDATA_TEST_SLOW_S", "0.05"))


def _fail(experiment: str) -> None:
    assert FAIL_DIR
    folder = Path(FAIL_DIR)
    with open(folder / f"{experiment}.attempts", "a") as out:
        out.write(f"{os.getpid()}\n")
    attempt = len((folder / f"{experiment}.attempts").read_text().splitlines())
    mode_file = folder / experiment
    mode = mode_file.read_text().strip() if mode_file.exists() else ""
    if mode == "config":
        from trainers.errors import ConfigError

        raise ConfigError(f"training.widget: {experiment} has no widget (test hook)")
    if mode == "same":
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (60x10 and 12x10)")
    if mode == "varying":
        raise RuntimeError(f"attempt {attempt} lost its node (test hook)")
    if mode == "once" and attempt == 1:
        raise RuntimeError("a transient failure (test hook)")


def _failing(module: ModuleType) -> None:
    original = module.run_training

    def run_training(config: Any, *args: Any, **kwargs: Any) -> Any:
        _fail(config.experiment)
        return original(config, *args, **kwargs)

    module.run_training = run_training


def _slowed(module: ModuleType) -> None:
    trainer = module.Trainer
    original = trainer._update_ema

    def slowed(self: Any) -> None:
        if self.config.experiment == SLOW_EXPERIMENT:
            time.sleep(SLOW_S)  # wall time only: the CPU clock barely sees it
        original(self)

    trainer._update_ema = slowed


class _After(importlib.abc.MetaPathFinder):
    """Finds module ``name`` as usual and calls ``patch`` on it once it has run."""

    def __init__(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        self.name, self.patch = name, patch

    def find_spec(self, name: str, path: Any, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if name != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            self.patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if FAIL_DIR:
    sys.meta_path.insert(0, _After("trainers.run", _failing))
if SLOW_EXPERIMENT:
    sys.meta_path.insert(0, _After("trainers.train", _slowed))
