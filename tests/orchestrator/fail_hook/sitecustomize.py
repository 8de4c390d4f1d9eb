"""Test hook, never installed: makes chosen experiments' trials fail in a test's Ray workers.

A test that must see how failing trials are retried starts its Ray cluster with this
folder first on ``PYTHONPATH`` and ``LESSDATA_TEST_FAIL_DIR`` naming a folder. Python
imports this module at every start; it does nothing unless the variable is set, and then
only wraps ``trainers.run.run_training`` once that module has run. Before each attempt of
a trial it appends a line to ``DIR/<experiment>.attempts`` (the attempts a test counts),
then fails as ``DIR/<experiment>`` says (no file: no failure):

- ``config``: a ``ConfigError`` on every attempt (an error no retry can fix);
- ``same``: the same ``RuntimeError`` on every attempt (a wrong shape, say);
- ``varying``: a ``RuntimeError`` whose message differs on every attempt;
- ``once``: a ``RuntimeError`` on the first attempt only (a transient failure).

Production code carries no such failure.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

FAIL_DIR = os.environ.get("LESSDATA_TEST_FAIL_DIR")


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


def _wrap(module: ModuleType) -> None:
    original = module.run_training

    def run_training(config: Any, *args: Any, **kwargs: Any) -> Any:
        _fail(config.experiment)
        return original(config, *args, **kwargs)

    module.run_training = run_training


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``trainers.run`` as usual and wraps it once it has run."""

    def find_spec(self, name: str, path: Any, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if name != "trainers.run":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _wrap(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if FAIL_DIR:
    sys.meta_path.insert(0, _Finder())
