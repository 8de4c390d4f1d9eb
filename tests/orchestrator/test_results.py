"""The typed boundary: what a trial reports crosses Ray as one serialised record."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.grid import load_grid
from orchestrator.results import (
    EPOCH_METRICS,
    FINAL_METRICS,
    EpochReport,
    FailedReport,
    FinalReport,
    Hardware,
    failure_of,
    from_result,
    is_final,
    to_result,
    trial_spec,
)

HW = Hardware("n", "127.0.0.1", "id", "cpu", "none", "cpu | none")
EPOCH = EpochReport(epoch=3, fraction=0.5, samples=10, evaluations=30, scoring_evaluations=0,
                    train_loss=0.1, train_top1=0.9, test_loss=0.2, top1=0.8, lr=1e-3,
                    epoch_s=0.5, hardware=HW, started_ms=123)
FINAL = FinalReport(best_top1=0.9, best_epoch=2, final_top1=0.8, epochs_trained=3,
                    train_s=1.0, trial_s=2.0, tracked_s=1.5, energy_kwh=1e-6,
                    emissions_kg=1e-7, emissions_estimate_kg=2e-7, emissions_measured=1.0,
                    emissions_share=0.5, hardware=HW, eval_s=0.2, select_s=0.01,
                    train_cpu_s=0.9, warmup_s=3.0, cpu_energy_kwh=4e-7, ram_energy_kwh=6e-7,
                    energy_sources={"cpu": "estimate: constant", "gpu": "none",
                                    "ram": "estimate: codecarbon RAM power model"},
                    emissions_attribution="share", codecarbon_csv="a,b\n")


FAILED = FailedReport(error="ConfigError: bad value", why="not_retryable")


@pytest.mark.parametrize("report", [EPOCH, dataclasses.replace(EPOCH, hardware=None), FINAL,
                                    FAILED])
def test_a_report_survives_the_round_trip(report: EpochReport | FinalReport | FailedReport
                                          ) -> None:
    result = {**to_result(report), "training_iteration": 7}  # Tune adds its own keys
    assert from_result(result) == report
    assert is_final(result) == isinstance(report, FinalReport)
    assert failure_of(result) == (report if isinstance(report, FailedReport) else None)


def test_every_final_number_is_a_metric_and_no_name_is_both() -> None:
    assert {"tracked_s", "epochs_trained", "trial_s"} <= set(FINAL.metrics())
    clocks = {"train_s", "eval_s", "select_s", "train_cpu_s", "train_gpu_s", "warmup_s"}
    parts = {"cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh"}
    assert clocks | parts <= set(FINAL.metrics())
    assert "energy_sources" not in FINAL.metrics()  # tags, not metrics
    assert set(FINAL.metrics()) == set(FINAL_METRICS)
    assert set(EPOCH.metrics()) == set(EPOCH_METRICS)
    assert not set(EPOCH_METRICS) & set(FINAL_METRICS)


def test_a_tune_result_without_a_report_is_not_final() -> None:
    assert not is_final({"training_iteration": 1}) and not is_final(None)


def test_the_trial_spec_round_trips_through_the_param_space() -> None:
    from orchestrator.results import param_space

    specs = load_grid("demo").trials()[:2]
    space = param_space(specs)
    (name, search), = space.items()
    assert [trial_spec({name: value}) for value in search["grid_search"]] == specs
