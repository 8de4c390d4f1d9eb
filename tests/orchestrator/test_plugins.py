"""A plugin grid on the driver: code folders relative to the grid file, N from the dataset
factory, the code's hash in the plan, drift refused; no Ray, no server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.grid import load_grid
from orchestrator.plan import PlanOptions, plan_diff, resolve_plan
from orchestrator.plugins import check_code_unchanged, check_plugins, runtime_env
from trainers.errors import ConfigError
from trainers.factories import code_digest

DATA = '''
import numpy as np


def load(n=30):
    rng = np.random.default_rng(0)
    return {split: (rng.integers(0, 256, (k, 1, 8, 8)).astype(np.uint8), np.arange(k) % 3)
            for split, k in (("train", n), ("test", 9))}
'''
NETS = '''
from torch import nn


def build(num_classes, in_channels, image_size):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, num_classes))
'''


def _grid(tmp_path: Path, **changes: object) -> Path:
    pkg = tmp_path / "code" / "drv_pkg"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data.py").write_text(DATA)
    (pkg / "nets.py").write_text(NETS)
    grid = {"name": "drv", "dataset": {"factory": "drv_pkg.data:load", "kwargs": {"n": 30}},
            "model": {"factory": "drv_pkg.nets:build"}, "code": ["../code/drv_pkg"],
            "epochs": 4, "experiments": ["Benchmark", "E3"], "baselines": ["uniform"],
            **changes}
    path = tmp_path / "grids" / "drv.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(grid))
    return path


def test_plugin_grid_resolves_code_and_n_from_the_factory(tmp_path: Path) -> None:
    path = _grid(tmp_path)
    grid = load_grid(path)  # baselines: validating the grid needs N already
    pkg = tmp_path / "code" / "drv_pkg"
    assert grid.code == [pkg] and grid.train_size() == 30
    assert "E3-uniform" in grid.plans()
    check_plugins(grid)
    assert runtime_env(grid.code) == {"py_modules": [str(pkg)]}
    assert "drv_pkg" not in sys.modules and str(pkg.parent) not in sys.path
    plan = resolve_plan(PlanOptions(grid=str(path), storage=tmp_path / "store"))
    assert plan.code_sha256 == code_digest([pkg])
    (pkg / "nets.py").write_text(NETS + "# changed\n")
    assert plan_diff(plan, resolve_plan(PlanOptions(grid=str(path),
                                                    storage=tmp_path / "store"))) == [
        "code_sha256"]
    with pytest.raises(ConfigError, match="changed since the grid was submitted"):
        check_code_unchanged(plan.grid.code, plan.code_sha256)


@pytest.mark.parametrize(("changes", "message"), [
    ({"code": ["../code/nothing"]}, "code/nothing is missing"),
    ({"model": {"factory": "drv_pkg.nets:build", "width": 1}}, "model.width: Extra inputs"),
    ({"dataset": {"factory": "drv_pkg/data.py"}}, "not an import path"),
    ({"dataset": {"factory": "drv_pkg.data:load", "kwargs": {"n": -1}}},
     "dataset factory 'drv_pkg.data:load' raised ValueError"),
])
def test_bad_plugin_grids_are_one_line(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        check_plugins(load_grid(_grid(tmp_path, **changes)))
    assert "\n" not in str(err.value)
