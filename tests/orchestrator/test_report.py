"""Aggregation and report on a real local MLflow store (SQLite) filled with known numbers."""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from rich.console import Console
from scipy import stats

from orchestrator.aggregate import (
    experiment_table,
    hardware_warning,
    pareto_mask,
    trial_table,
)
from orchestrator.report import (
    log_report,
    make_report,
    markdown,
    render,
    report_rows,
    schedule_summary,
    write_outputs,
)
from trainers.errors import TrackingError
from trainers.schedule import Breakpoint, DataIncrement, DataStep, Piecewise, evaluations

GRID = "report-test"
EPOCHS, TRAIN_SIZE = 4, 1000
HW = "Intel Xeon | none"
RAMP = Piecewise(breakpoints=[Breakpoint(at=0.0, fraction=0.5), Breakpoint(at=0.5, fraction=1.0)])
SCHEDULES = {
    "Benchmark": '{"method":"benchmark"}',
    "E1": DataStep(d=0.25, e=0.25).model_dump_json(),
    "E3": DataStep(d=0.25, e=0.75).model_dump_json(),
    "E10": DataIncrement(s=0.25).model_dump_json(),
    "my_ramp": RAMP.model_dump_json(),
}
# experiment -> per seed: best_top1, train_s, energy_kwh, emissions_kg
NUMBERS = {
    "Benchmark": [(0.990, 100.0, 0.010, 0.0040), (0.992, 102.0, 0.011, 0.0044),
                  (0.991, 98.0, 0.012, 0.0048)],
    "E3": [(0.985, 45.0, 0.0050, 0.0020), (0.987, 44.0, 0.0052, 0.0021),
           (0.984, 46.0, 0.0048, 0.0019)],
    "E1": [(0.991, 80.0, 0.008, 0.0032), (0.993, 81.0, 0.009, 0.0036),
           (0.990, 82.0, 0.007, 0.0028)],
    "E10": [(0.980, 60.0, 0.006, 0.0024), (0.982, 61.0, 0.006, 0.0024)],
    "my_ramp": [(0.989, 75.0, 0.0075, 0.0030)],
}
ORDER = ["Benchmark", "E1", "E3", "E10", "my_ramp"]


@dataclass
class Store:
    uri: str
    finished: set[str]  # run ids of the finished trials of GRID


def _add_trial(client: MlflowClient, exp_id: str, grid: str, experiment: str, seed: int,
               numbers: tuple[float, ...] | None, state: str = "finished",
               hardware: str = HW) -> str:
    schedule = SCHEDULES[experiment]
    method = json.loads(schedule)["method"]
    tags = {"lessdata.kind": "trial", "lessdata.grid": grid, "lessdata.experiment": experiment,
            "lessdata.trial_key": f"{grid}/{experiment}/seed={seed}", "lessdata.method": method,
            "lessdata.schedule": schedule, "lessdata.dataset": "mnist",
            "lessdata.seed": str(seed), "lessdata.selection": "random",
            "lessdata.state": state, "lessdata.hardware": hardware, "lessdata.node": "node-a"}
    run_id = client.create_run(exp_id, run_name=f"{experiment}-seed{seed}", tags=tags).info.run_id
    now = int(time.time() * 1000)
    from trainers.experiments import EXPERIMENTS

    total = evaluations(EXPERIMENTS.get(experiment, RAMP), TRAIN_SIZE, EPOCHS)
    # Cumulative per epoch: its last value is the total (the report reads that).
    metrics = [Metric("evaluations", total * step / EPOCHS, now, step)
               for step in range(1, EPOCHS + 1)]
    if numbers is not None:  # test top-1 per epoch, rising to the best
        metrics += [Metric("top1", numbers[0] - 0.01 * (EPOCHS - step), now, step)
                    for step in range(1, EPOCHS + 1)]
    if numbers is not None:
        top1, train_s, energy, emissions = numbers
        final = {"best_top1": top1, "final_top1": top1 - 0.001, "train_s": train_s,
                 "trial_s": train_s + 5, "energy_kwh": energy, "emissions_kg": emissions,
                 "emissions_estimate_kg": emissions * 1.5, "best_epoch": EPOCHS}
        metrics += [Metric(k, float(v), now, EPOCHS) for k, v in final.items()]
    params = [Param("epochs", str(EPOCHS)), Param("train_size", str(TRAIN_SIZE))]
    client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag("x", "y")])
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    artifacts = (root / "artifacts").as_uri()
    exp_id = client.create_experiment(GRID, artifact_location=artifacts)
    finished = {_add_trial(client, exp_id, GRID, name, seed, numbers)
                for name, per_seed in NUMBERS.items() for seed, numbers in enumerate(per_seed)}
    _add_trial(client, exp_id, GRID, "E3", 3, (0.1, 1.0, 1.0, 1.0), state="failed")
    _add_trial(client, exp_id, GRID, "E3", 4, None, state="running")
    client.create_run(exp_id, run_name="E3", tags={
        "lessdata.kind": "experiment", "lessdata.grid": GRID, "lessdata.parent_of": "E3"})
    other = client.create_experiment("other-grid", artifact_location=artifacts)
    _add_trial(client, other, "other-grid", "Benchmark", 0, (0.5, 1.0, 1.0, 1.0))
    client.create_experiment("empty-grid", artifact_location=artifacts)
    yield Store(uri, finished)


@pytest.fixture(scope="module")
def trials(store: Store) -> pd.DataFrame:
    return trial_table(store.uri, GRID)


@pytest.fixture(scope="module")
def table(trials: pd.DataFrame) -> pd.DataFrame:
    return experiment_table(trials)


def _row(table: pd.DataFrame, name: str) -> dict[str, Any]:
    return table.set_index("experiment").loc[name].to_dict()


def _top1(name: str) -> np.ndarray:
    return np.array([n[0] for n in NUMBERS[name]])


def test_trial_table_has_one_row_per_finished_trial_of_the_grid(store: Store,
                                                               trials: pd.DataFrame) -> None:
    assert set(trials["run_id"]) == store.finished  # failed, running, parents, other grid out
    assert list(dict.fromkeys(trials["experiment"])) == ORDER
    assert trials["seed"].dtype.kind == "i"
    e3 = trials[trials["experiment"] == "E3"]
    assert list(e3["seed"]) == [0, 1, 2]
    assert list(e3["best_top1"]) == [n[0] for n in NUMBERS["E3"]]
    assert set(e3["evaluations"]) == {3 * 250 + 1000}  # total, not the last per-epoch value
    assert set(trials["hardware"]) == {HW} and set(trials["epochs"]) == {EPOCHS}
    assert json.loads(e3["schedule"].iloc[0]) == {"method": "data_step", "d": 0.25, "e": 0.75}


def test_experiment_table_order_and_counts(table: pd.DataFrame) -> None:
    assert list(table["experiment"]) == ORDER  # E10 after E3: numeric, custom names last
    assert list(table["n"]) == [len(NUMBERS[name]) for name in ORDER]


def test_mean_and_std_equal_numpy(table: pd.DataFrame) -> None:
    for name in ORDER:
        row, top1 = _row(table, name), _top1(name)
        assert row["top1_mean"] == pytest.approx(np.mean(top1))
        expected_std = np.std(top1, ddof=1) if len(top1) > 1 else 0.0
        assert row["top1_std"] == pytest.approx(expected_std)
        assert row["final_top1_mean"] == pytest.approx(np.mean(top1 - 0.001))
        assert row["train_s_mean"] == pytest.approx(np.mean([n[1] for n in NUMBERS[name]]))


def test_ci_p_value_and_effect_size_equal_scipy(table: pd.DataFrame) -> None:
    bench = _top1("Benchmark")
    for name in ["E1", "E3", "E10"]:
        row, top1 = _row(table, name), _top1(name)
        n = len(top1)
        sd = np.std(top1, ddof=1)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        assert row["ci95_low"] == pytest.approx(100 * (top1.mean() - half))
        assert row["ci95_high"] == pytest.approx(min(100.0, 100 * (top1.mean() + half)))
        if n >= 3:  # paired by seed; E10's 2 seeds carry no test
            assert row["p_paired"] == pytest.approx(stats.ttest_rel(top1, bench).pvalue)
        else:
            assert math.isnan(row["p_paired"]) and not row["can_claim"]
        dof = n + len(bench) - 2
        pooled = math.sqrt(((n - 1) * sd**2 + (len(bench) - 1) * np.var(bench, ddof=1)) / dof)
        g = (top1.mean() - bench.mean()) / pooled * (1 - 3 / (4 * (n + len(bench)) - 9))
        assert row["effect_size"] == pytest.approx(g)
        assert row["top1_delta"] == pytest.approx(100 * (top1.mean() - bench.mean()))


def test_single_seed_and_benchmark_have_no_test(table: pd.DataFrame) -> None:
    ramp, bench = _row(table, "my_ramp"), _row(table, "Benchmark")
    assert ramp["top1_std"] == 0.0
    assert all(math.isnan(ramp[k]) for k in ("ci95_low", "p_paired", "effect_size"))
    assert math.isnan(bench["p_paired"]) and math.isnan(bench["effect_size"])
    assert bench["evaluations_pct"] == 100.0 and bench["top1_delta"] == 0.0
    assert bench["runtime_change_pct"] == 0.0


def test_evaluations_pct_and_changes_vs_benchmark(table: pd.DataFrame) -> None:
    e3 = _row(table, "E3")
    assert e3["evaluations_pct"] == pytest.approx(43.75)  # the paper's 1 - e(1 - d)
    assert _row(table, "E1")["evaluations_pct"] == pytest.approx(81.25)
    assert e3["runtime_change_pct"] == pytest.approx((45 - 100) / 100 * 100)
    assert e3["energy_change_pct"] == pytest.approx((0.005 - 0.011) / 0.011 * 100)
    assert e3["emissions_change_pct"] == pytest.approx((0.002 - 0.0044) / 0.0044 * 100)
    assert e3["emissions_estimate_kg_mean"] == pytest.approx(0.002 * 1.5)


def test_without_benchmark_there_is_no_comparison(trials: pd.DataFrame) -> None:
    table = experiment_table(trials[trials["experiment"] != "Benchmark"])
    assert list(table["experiment"]) == ORDER[1:]
    for column in ("evaluations_pct", "top1_delta", "p_paired", "runtime_change_pct"):
        assert table[column].isna().all()


def test_report_rows_are_json_with_none_for_nan(table: pd.DataFrame) -> None:
    rows = report_rows(table)
    json.dumps(rows, allow_nan=False)
    ramp = rows[ORDER.index("my_ramp")]
    assert ramp["ci95_low"] is None and ramp["p_paired"] is None and ramp["n"] == 1
    for key in ("experiment", "n", "top1_mean", "top1_std", "evaluations", "train_s_mean",
                "emissions_kg_mean"):
        assert all(key in row for row in rows)
    assert rows[ORDER.index("E3")]["schedule_summary"] == "d=25% e=75%"


def test_render_prints_the_paper_table(table: pd.DataFrame) -> None:
    console = Console(file=io.StringIO(), width=250, record=True)
    render(table, console)
    text = console.export_text()
    assert "d=25% e=75%" in text and "(43.75%)" in text and "my_ramp" in text
    assert "99.10 ± 0.10 (3)" in text  # Benchmark, in percent
    empty = Console(file=io.StringIO(), record=True)
    render(table.iloc[0:0], empty)
    assert "no finished trials" in empty.export_text()


def test_write_outputs_writes_every_file(trials: pd.DataFrame, table: pd.DataFrame,
                                         tmp_path: Path) -> None:
    paths = write_outputs(trials, table, tmp_path / "out")
    names = {p.name for p in paths}
    figures = ("accuracy_vs_evaluations", "accuracy_vs_energy", "schedules")
    assert names == {"report.csv", "trials.csv", "report.md",
                     *(f"{f}.{fmt}" for f in figures for fmt in ("png", "pdf"))}
    assert all(p.stat().st_size > 0 for p in paths)
    for path in paths:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(pd.read_csv(tmp_path / "out" / "report.csv")["experiment"]) == ORDER
    assert len(pd.read_csv(tmp_path / "out" / "trials.csv")) == len(trials)
    assert "| E3 | d=25% e=75% |" in (tmp_path / "out" / "report.md").read_text()


def test_report_logs_to_one_grid_run(store: Store, tmp_path: Path) -> None:
    report = make_report(store.uri, GRID, tmp_path / "a")
    assert list(report.table["experiment"]) == ORDER and len(report.rows) == len(ORDER)
    assert report.warning is None
    assert {"accuracy_per_epoch.png", "report.md"} <= {p.name for p in report.paths}
    log_report(store.uri, GRID, [tmp_path / "a" / "report.md"])  # replaces the first
    client = MlflowClient(tracking_uri=store.uri)
    experiment = client.get_experiment_by_name(GRID)
    assert experiment is not None
    exp_id = experiment.experiment_id
    runs = client.search_runs([exp_id], "tags.`lessdata.kind` = 'grid'")
    assert len(runs) == 1 and runs[0].info.run_name == "report"
    assert runs[0].data.tags["lessdata.grid"] == GRID
    logged = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert logged == {"report.md"}  # the newest report's files, in the one grid run
    run = runs[0].info
    assert run.status == "FINISHED" and run.end_time - run.start_time < 60_000
    assert set(trial_table(store.uri, GRID)["run_id"]) == store.finished  # grid run not a trial


def test_report_margin_reaches_the_equivalence_test(store: Store) -> None:
    narrow = {r["experiment"]: r for r in make_report(store.uri, GRID, None, margin=0.01).rows}
    wide = {r["experiment"]: r for r in make_report(store.uri, GRID, None, margin=5.0).rows}
    assert narrow["E1"]["margin"] == 0.01 and wide["E1"]["margin"] == 5.0
    assert narrow["E1"]["equivalent"] is False and wide["E1"]["equivalent"] is True
    assert narrow["E10"]["equivalent"] is None and narrow["E10"]["can_claim"] is False


def test_hardware_warning_only_when_hardware_differs(trials: pd.DataFrame) -> None:
    assert hardware_warning(trials) is None
    mixed = trials.copy()
    mixed.loc[mixed.index[0], "hardware"] = "AMD EPYC | NVIDIA H100"
    warning = hardware_warning(mixed)
    assert warning is not None and "\n" not in warning
    assert HW in warning and "AMD EPYC | NVIDIA H100" in warning


def test_unknown_grid_names_the_known_grids(store: Store) -> None:
    with pytest.raises(TrackingError) as info:
        trial_table(store.uri, "nope")
    message = str(info.value)
    assert "'nope'" in message and GRID in message and "other-grid" in message
    assert "\n" not in message


def test_grid_without_finished_trials_gives_empty_tables(store: Store, tmp_path: Path) -> None:
    trials = trial_table(store.uri, "empty-grid")
    table = experiment_table(trials)
    assert trials.empty and table.empty and report_rows(table) == []
    assert all(p.stat().st_size > 0 for p in write_outputs(trials, table, tmp_path))


def test_pareto_mask_keeps_the_non_dominated() -> None:
    cost = [100.0, 43.75, 81.25, 62.5, 50.0, math.nan]
    gain = [99.1, 98.5, 99.1, 98.1, 98.5, 99.9]
    # 81.25 ties Benchmark's accuracy for less; 50 ties 43.75 for more; 62.5 is beaten
    assert pareto_mask(cost, gain) == [False, True, True, False, False, False]


@pytest.mark.parametrize(("schedule", "expected"), [
    ('{"method":"benchmark"}', "full data"),
    ('{"method":"data_step","d":0.25,"e":0.75}', "d=25% e=75%"),
    ('{"method":"data_increment","s":0.5}', "s=50%"),
    ('{"method":"data_cut","n":9}', "n=9"),
    ('{"method":"data_step","d":0.116175,"e":0.766096}', "d=11.6% e=76.6%"),  # searched
    ('{"method":"piecewise2","d":0.1,"e":0.25,"d2":0.5,"e2":0.75}',
     "d=10% to e=25%, d2=50% to e2=75%"),
    (RAMP.model_dump_json(), "from 0%: 50%, from 50%: 100%"),
    ("not json", "not json"),
])
def test_schedule_summary(schedule: str, expected: str) -> None:
    assert schedule_summary(schedule) == expected


def test_an_alias_row_copies_its_representative_and_says_so(store: Store,
                                                              tmp_path: Path) -> None:
    from orchestrator.coincide import Coincidence
    from orchestrator.grid import Grid
    from orchestrator.plan import Plan

    grid = Grid.model_validate({"name": GRID, "dataset": "mnist", "epochs": EPOCHS,
                                "experiments": ["Benchmark", "E1", "E3", "E10", "E13"]})
    plan = Plan(name=GRID, grid=grid, tracking_uri=store.uri, storage=tmp_path, trials=[],
                identical=[Coincidence("E3", ("E13",), EPOCHS)])
    plain_rows = make_report(store.uri, GRID, None).rows
    report = make_report(store.uri, GRID, None, plan=plan)
    table, rows = report.table, report.rows
    by_name = {r["experiment"]: r for r in rows}
    assert list(by_name) == [*ORDER[:4], "E13", "my_ramp"]
    e13, e3 = by_name["E13"], by_name["E3"]
    assert e13["same_as"] == "E3" and e13["note"] == "E13: same schedule as E3 at E = 4"
    assert e3["same_as"] is None and all(r["same_as"] is None for r in plain_rows)
    assert e13["schedule_summary"] == "n=2" and e13["source"] == "ours"
    assert e3["source"] == "paper" and by_name["E10"]["source"] == "ours"
    for column in ("top1_mean", "top1_std", "p_holm", "evaluations", "train_s_mean"):
        assert e13[column] == e3[column]
    # The copy is no second test: E3's Holm-adjusted p is the one without the alias.
    assert e3["p_holm"] == {r["experiment"]: r for r in plain_rows}["E3"]["p_holm"]
    out = io.StringIO()
    render(table, Console(file=out, width=300))
    text = out.getvalue()
    assert "E13 = E3" in text and "E13: same schedule as E3 at E = 4" in text
    assert "s=25% (ours)" in text and "n=2 (ours)" in text and "d=25% e=75% (ours)" not in text
    paths = write_outputs(trial_table(store.uri, GRID), table, tmp_path / "out")
    assert "E13 = E3" in (tmp_path / "out" / "report.md").read_text() and paths


def test_json_report_says_whether_runtimes_compare(store: Store) -> None:
    report = make_report(store.uri, GRID, None, margin=0.2).as_json()
    json.dumps(report, allow_nan=False)
    assert {"runtime_comparable", "runtime_note", "runtime_cpu_note", "margin", "claim_note",
            "experiments"} <= set(report)
    assert report["margin"] == 0.2 and report["claim_note"]
    # E10 trains 14% slower per image than the Benchmark, beyond the seeds' noise
    assert report["runtime_comparable"] is False and "E10" in report["runtime_note"]
    # these runs have no CPU time
    assert "train_cpu_s recorded: nothing to compare" in report["runtime_cpu_note"]
    rows = {r["experiment"]: r for r in report["experiments"]}
    e3 = rows["E3"]
    assert e3["train_s_mean"] == pytest.approx(45.0)
    assert e3["runtime_ratio"] == pytest.approx(45.0 / 100.0)
    assert e3["evaluation_ratio"] == pytest.approx(0.4375)
    assert e3["emissions_paper_change_pct"] == pytest.approx(e3["runtime_change_pct"])
    for key in ("p_paired", "p_holm", "tost_p", "equivalent", "ci95_low", "ci95_high", "n",
                "cpu_ratio"):
        assert key in e3


def test_text_report_marks_incomparable_changes(store: Store) -> None:
    report = make_report(store.uri, GRID, None)
    console = Console(file=io.StringIO(), width=300, record=True)
    render(report.table, console, report.notes)
    printed = console.export_text()
    lines = printed.splitlines()
    assert lines[0].startswith("runtimes: ") and "E10" in lines[0]  # the one line above
    e3 = next(line for line in lines if line.split("│")[1:2] == [" E3         "] or
              line.lstrip("│ ").startswith("E3 "))
    assert e3.count("†") == 3  # runtime, energy and CO2 changes marked
    assert "paper -55.0%" in e3  # the paper-style CO2 change is the runtime change
    assert any(line.lstrip().startswith("† runtimes do not compare") for line in lines)
    assert "energy: where its parts came from was not recorded" in printed
    text = markdown(report.table, report.notes)
    assert text.startswith(lines[0] + "\n") and "† runtimes do not compare" in text


def test_energy_header_says_which_parts_were_estimated() -> None:
    from orchestrator.report import energy_sources

    trials = pd.DataFrame({
        "energy_source_cpu": ["estimate: constant"] * 2,
        "energy_source_gpu": ["none"] * 2,
        "energy_source_ram": ["estimate: codecarbon RAM power model"] * 2,
        "energy_kwh": [1.0, 1.0], "cpu_energy_kwh": [0.3, 0.3], "gpu_energy_kwh": [0.0, 0.0],
        "ram_energy_kwh": [0.7, 0.7]})
    header, note = energy_sources(trials)
    assert header == "Energy Wh (est.)"
    assert "measured by a sensor: none" in note and "100% of the energy" in note
    trials["energy_source_gpu"] = "sensor: NVML (whole device)"
    trials["gpu_energy_kwh"] = 2.0
    trials["energy_kwh"] = 3.0
    header, note = energy_sources(trials)
    assert header == "Energy Wh (part est.)"
    assert "GPU (sensor: NVML (whole device))" in note and "33% of the energy" in note


def test_cli_margin_default_is_the_aggregate_default() -> None:
    from orchestrator.aggregate import DEFAULT_MARGIN
    from orchestrator.commands import DEFAULT_MARGIN as CLI_MARGIN

    assert CLI_MARGIN == DEFAULT_MARGIN
