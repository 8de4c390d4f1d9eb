"""Test hook, never installed: slows one experiment's training steps in a test's Ray workers.

A test that must see the report flag incomparable runtimes starts its Ray cluster with
this folder first on ``PYTHONPATH`` and ``LESSDATA_TEST_SLOW_EXPERIMENT`` naming the
experiment (``LESSDATA_TEST_SLOW_S``: seconds per step, default 0.05). Python imports
this module at every start; it does nothing unless the variable is set, and then only
wraps ``Trainer._update_ema`` (called once per training step, inside the training clock)
once ``trainers.train`` is imported, so the slowed experiment's trials train slower per
image while every other trial of the grid is untouched. Production code carries no sleep.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from types import ModuleType
from typing import Any

EXPERIMENT = os.environ.get("LESSDATA_TEST_SLOW_EXPERIMENT")
SLOW_S = float(os.environ.get("LESSDATA_TEST_SLOW_S", "0.05"))


def _slow(module: ModuleType) -> None:
    trainer = module.Trainer
    original = trainer._update_ema

    def slowed(self: Any) -> None:
        if self.config.experiment == EXPERIMENT:
            time.sleep(SLOW_S)  # wall time only: the CPU clock barely sees it
        original(self)

    trainer._update_ema = slowed


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``trainers.train`` as usual and patches it once it has run."""

    def find_spec(self, name: str, path: Any, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if name != "trainers.train":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _slow(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if EXPERIMENT:
    sys.meta_path.insert(0, _Finder())
