"""--system-metrics: the trial's worker samples its machine into the trial's own run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from orchestrator.grid import load_grid
from orchestrator.plan import PlanOptions, make_plan
from orchestrator.sysmetrics import system_metrics
from orchestrator.tracking import Tracker


def test_system_metrics_land_on_the_trial_run(mlflow_server, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    spec = load_grid("demo").trials("sysmetrics")[0]
    with Tracker(mlflow_server.uri, "sysmetrics") as tracker:
        tracker.prepare([spec], train_size=100)
        tracker.start_trial(spec.key)
        assert tracker.flush(timeout_s=60)
    with system_metrics(mlflow_server.uri, "sysmetrics", spec.key):
        time.sleep(3)
    metrics = MlflowClient(mlflow_server.uri).get_run(tracker.runs[spec.key]).data.metrics
    assert any(name.startswith("system/cpu") for name in metrics), sorted(metrics)


def test_without_a_uri_nothing_is_sampled() -> None:
    with system_metrics(None, "g", "k"):
        pass


@pytest.mark.parametrize("on", [True, False])
def test_the_flag_reaches_every_trial(tmp_path: Path, on: bool) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump({"name": "g", "dataset": "digits", "epochs": 1,
                                    "experiments": ["Benchmark", "E1"]}))
    uri = f"sqlite:///{tmp_path}/m.db"
    plan = make_plan(PlanOptions(grid=str(grid), tracking_uri=uri, storage=tmp_path,
                                 system_metrics=on))
    assert {t.system_metrics_uri for t in plan.trials} == {uri if on else None}
