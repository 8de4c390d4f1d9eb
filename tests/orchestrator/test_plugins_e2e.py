"""End to end: a grid that names its own data and model (modules in a temporary folder,
not in the package), shipped to the Ray workers by ``code:`` and tracked in MLflow; bad
plugins refused at submit in one line, before any trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import MlflowServer, RayCluster, run_cli
from tests.orchestrator.checks import trial_runs
from trainers.experiments import EXPERIMENTS
from trainers.factories import code_digest
from trainers.schedule import evaluations

pytestmark = pytest.mark.slow

TRAIN, TEST, EPOCHS = 200, 50, 2

DATA_MODULE = '''
"""Tiny seeded images: 1x8x8, 3 classes, a bright row per class over noise."""
import os

import numpy as np


def load(seed=0, log=None, bad_labels=False, fail=False):
    if log:  # where this module was imported from, per process
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {__file__}\\n")
    if fail:
        raise RuntimeError("no pets here")
    rng = np.random.default_rng(seed)

    def split(n):
        labels = rng.integers(0, 3, n)
        images = rng.integers(0, 64, (n, 1, 8, 8)).astype(np.uint8)
        images[np.arange(n), 0, 2 * labels + 1, :] = 255
        if bad_labels:
            labels[0] = 5
        return images, labels

    out = {"train": split(%(train)d), "test": split(%(test)d)}
    if bad_labels:
        out["num_classes"] = 3
    return out
'''

NETS_MODULE = '''
from torch import nn


def build(num_classes, in_channels, image_size, hidden=16, wrong_out=None):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, hidden),
                         nn.ReLU(), nn.Linear(hidden, wrong_out or num_classes))
'''


def _plugin_folder(work: Path) -> Path:
    """``work/plugins/toy_pkg``: neither the CLI's folder nor on any path."""
    pkg = work / "plugins" / "toy_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data.py").write_text(DATA_MODULE % {"train": TRAIN, "test": TEST})
    (pkg / "nets.py").write_text(NETS_MODULE)
    return pkg


def _grid(name: str, work: Path, dataset: dict[str, Any] | None = None,
          model: dict[str, Any] | None = None) -> Path:
    grid = {
        "name": name,
        "dataset": dataset or {"factory": "toy_pkg.data:load",
                               "kwargs": {"seed": 1, "log": str(work / "imports.log")}},
        "model": model or {"factory": "toy_pkg.nets:build", "kwargs": {"hidden": 8}},
        "code": ["./plugins/toy_pkg"],
        "epochs": EPOCHS,
        "batch_size": 20,
        "seeds": 1,
        "experiments": ["Benchmark", "E3"],
        "placement": {"threads": 1},
        "emissions": {"measure_power_secs": 1},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def _submit(grid: Path, work: Path, server: MlflowServer, ray: RayCluster
            ) -> subprocess.CompletedProcess:
    return run_cli("submit", grid.name, "--tracking-uri", server.uri, "--address",
                   ray.address, "--storage", str(work / "store"), "--json", cwd=work)


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer,
              local_ray: RayCluster) -> dict:
    work = tmp_path_factory.mktemp("plugins")
    pkg = _plugin_folder(work)
    # The module is importable only through code: (not from the CLI's folder or path).
    probe = subprocess.run([sys.executable, "-c", "import toy_pkg"], cwd=work,
                           capture_output=True, text=True, env=dict(os.environ))
    assert probe.returncode != 0 and "No module named 'toy_pkg'" in probe.stderr
    grid = _grid("plugin-e2e", work)
    out = _submit(grid, work, mlflow_server, local_ray)
    assert out.returncode == 0, out.stderr[-3000:]
    return {"work": work, "pkg": pkg, "grid": grid, "summary": json.loads(out.stdout)}


def test_one_run_per_trial_with_exact_evaluations(submitted: dict,
                                                  mlflow_server: MlflowServer) -> None:
    assert sorted(submitted["summary"]["finished"]) == [
        "plugin-e2e/Benchmark/seed=0", "plugin-e2e/E3/seed=0"]
    client = MlflowClient(mlflow_server.uri)
    runs = trial_runs(client, "plugin-e2e")
    assert len(runs) == 2
    for run in runs:
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        exp = tags["lessdata.experiment"]
        assert tags["lessdata.state"] == "finished" and run.info.status == "FINISHED"
        assert tags["lessdata.dataset"] == "toy_pkg.data:load"
        assert params["dataset.factory"] == "toy_pkg.data:load"
        assert params["model.factory"] == "toy_pkg.nets:build"
        assert params["model.kwargs.hidden"] == "8" and params["train_size"] == str(TRAIN)
        assert metrics["evaluations"] == evaluations(EXPERIMENTS[exp], TRAIN, EPOCHS)
        history = client.get_metric_history(run.info.run_id, "evaluations")
        assert sorted(m.step for m in history) == [1, 2]
        assert 0.0 <= metrics["best_top1"] <= 1.0 and metrics["energy_kwh"] > 0


def test_the_code_was_shipped_to_the_workers(submitted: dict) -> None:
    """The driver imported the module from the folder; the trials, from Ray's copy."""
    lines = (submitted["work"] / "imports.log").read_text().split("\n")
    origins = {line.split(" ", 1)[1] for line in lines if line}
    local = str(submitted["pkg"] / "data.py")
    assert local in origins  # the driver's check at submit
    shipped = origins - {local}
    assert shipped and all("toy_pkg" in o and str(submitted["work"]) not in o
                           for o in shipped), origins


def test_the_plan_records_the_plugins_and_a_changed_plugin_is_drift(
        submitted: dict, mlflow_server: MlflowServer, local_ray: RayCluster) -> None:
    work, pkg = submitted["work"], submitted["pkg"]
    plan = json.loads(next((work / "store" / "grids").glob("plugin-e2e*.json")).read_text())
    assert plan["grid"]["dataset"]["factory"] == "toy_pkg.data:load"
    assert plan["grid"]["model"] == {"factory": "toy_pkg.nets:build", "kwargs": {"hidden": 8}}
    assert plan["grid"]["code"] == [str(pkg)]
    assert plan["code_sha256"] == code_digest([pkg])
    (pkg / "nets.py").write_text(NETS_MODULE + "\n# changed\n")
    out = _submit(submitted["grid"], work, mlflow_server, local_ray)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "code_sha256" in out.stderr and "submitted before with other settings" in out.stderr


BAD = {
    "missing-module": ({"factory": "toy_pkg.nowhere:load"}, None,
                       "dataset factory 'toy_pkg.nowhere:load': no module named "
                       "'toy_pkg.nowhere'"),
    "missing-function": (None, {"factory": "toy_pkg.nets:nope"},
                         "model factory 'toy_pkg.nets:nope': module toy_pkg.nets has no 'nope'"),
    "wrong-shape": (None, {"factory": "toy_pkg.nets:build", "kwargs": {"wrong_out": 7}},
                    "model factory 'toy_pkg.nets:build': the model returned torch.float32 "
                    "[4, 7] for a batch [4, 1, 8, 8], expected float logits [4, 3]"),
    "labels-out-of-range": ({"factory": "toy_pkg.data:load", "kwargs": {"bad_labels": True}},
                            None, "label 5 is out of range 0..2"),
    "factory-raises": ({"factory": "toy_pkg.data:load", "kwargs": {"fail": True}}, None,
                       "dataset factory 'toy_pkg.data:load' raised RuntimeError: no pets here"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_plugin_is_one_line_and_exit_2_before_any_trial(
        case: str, tmp_path: Path, mlflow_server: MlflowServer, local_ray: RayCluster) -> None:
    dataset, model, message = BAD[case]
    _plugin_folder(tmp_path)
    grid = _grid(f"bad-{case}", tmp_path, dataset=dataset, model=model)
    out = _submit(grid, tmp_path, mlflow_server, local_ray)
    assert out.returncode == 2, (out.stdout[-1000:], out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr[-2000:]
    assert trial_runs(MlflowClient(mlflow_server.uri), f"bad-{case}") == []
    assert not (tmp_path / "store" / "grids").exists()  # no plan, no Ray work
