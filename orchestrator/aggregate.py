"""Aggregation, on the driver: MLflow trial runs -> one tidy table -> one row per experiment.

``trial_table`` reads every finished trial of a grid into one row per run;
``experiment_table`` reduces it to the paper's comparison (mean, std and 95% CI over
seeds, change vs the Benchmark) and the statistics of ``orchestrator.statistics`` on
top-1, paired by seed: the paired t-test vs the Benchmark (Wilcoxon beside it from 6
pairs), Holm-adjusted over the report, the TOST equivalence test at ``margin`` points,
and the smallest difference the grid can detect; for every experiment X with
budget-matched twins ``X-uniform`` / ``X-short`` in the table (``orchestrator.baselines``),
the paired test and effect size of X vs each twin (the pairing, the twins, Holm, the
power and ``claim_note`` live in ``orchestrator.claims``). Reports and plots
(``orchestrator/report.py``, ``orchestrator/figures.py``) read only these two tables.

Units: top-1 means and stds are fractions (0-1) like the metrics; ``top1_delta``,
``ci95_low`` / ``ci95_high`` (clipped to [0, 100]), ``margin`` and ``mde`` are in
accuracy points (percent). Below ``MIN_SEEDS`` (3) seeds paired with the Benchmark an
experiment's p-values and equivalence are NaN / NA and ``can_claim`` is False.

Runtime is the training work only (``train_s``: forward, backward, optimizer steps; the
test pass, selection and warm-up are timed apart): ``runtime_ratio`` is an experiment's
mean training time over the Benchmark's, to be read beside ``evaluation_ratio`` (its
evaluations, scoring included, over the Benchmark's); ``cpu_ratio`` the same on the
process's CPU time, which other work on a shared machine inflates far less.

Evaluations compared across experiments (``evaluations_pct``) include the forward passes
a selection strategy made to score samples (``scoring_evaluations``), each counted as one
training image: conservative, so savings are never overstated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from orchestrator import record
from orchestrator.claims import (
    BENCHMARK,
    adjust_and_power,
    claim_note,
    compare_twins,
    hedges_g,
    paired,
)
from orchestrator.record import Kind, State, Tag
from orchestrator.statistics import ALPHA, MIN_SEEDS, mean_ci95, paired_t_p, tost_p, wilcoxon_p
from trainers.errors import ConfigError, TrackingError
from trainers.experiments import source_of

__all__ = [
    "DEFAULT_MARGIN",
    "EXPERIMENT_COLUMNS",
    "TRIAL_COLUMNS",
    "claim_note",
    "experiment_order",
    "experiment_table",
    "hardware_warning",
    "pareto_mask",
    "trial_table",
]

TAG_COLUMNS = {  # trial column -> MLflow tag
    "experiment": Tag.EXPERIMENT, "method": Tag.METHOD, "schedule": Tag.SCHEDULE,
    "seed": Tag.SEED, "dataset": Tag.DATASET, "selection": Tag.SELECTION,
    "hardware": Tag.HARDWARE, "node": Tag.NODE, "source": Tag.SOURCE,
    "energy_source_cpu": Tag.ENERGY_SOURCE_CPU, "energy_source_gpu": Tag.ENERGY_SOURCE_GPU,
    "energy_source_ram": Tag.ENERGY_SOURCE_RAM,
}  # fmt: skip
METRIC_COLUMNS = {  # trial column -> MLflow metric (a series' last value is its total)
    "best_top1": "best_top1",
    "final_top1": "final_top1",
    "evaluations": "evaluations",
    "scoring_evaluations": "scoring_evaluations",
    "train_s": "train_s",
    "eval_s": "eval_s",
    "select_s": "select_s",
    "train_cpu_s": "train_cpu_s",
    "train_gpu_s": "train_gpu_s",
    "warmup_s": "warmup_s",
    "trial_s": "trial_s",
    "energy_kwh": "energy_kwh",
    "cpu_energy_kwh": "cpu_energy_kwh",
    "gpu_energy_kwh": "gpu_energy_kwh",
    "ram_energy_kwh": "ram_energy_kwh",
    "emissions_kg": "emissions_kg",
    "emissions_estimate_kg": "emissions_estimate_kg",
    "best_epoch": "best_epoch",
}
TRIAL_COLUMNS = (*TAG_COLUMNS, "run_id", "epochs", "train_size", *METRIC_COLUMNS)
EXPERIMENT_COLUMNS = (
    "experiment", "method", "schedule", "source", "dataset", "epochs", "n",
    "evaluations", "scoring_evaluations", "evaluations_pct",
    "top1_mean", "top1_std", "ci95_low", "ci95_high", "top1_delta",
    "n_paired", "can_claim", "p_paired", "p_wilcoxon", "p_holm", "effect_size",
    "margin", "tost_p", "equivalent", "mde", "seeds_needed",
    "delta_vs_uniform", "p_vs_uniform", "effect_vs_uniform",
    "delta_vs_short", "p_vs_short", "effect_vs_short",
    "final_top1_mean", "final_top1_std",
    "train_s_mean", "runtime_change_pct", "runtime_ratio", "evaluation_ratio",
    "train_cpu_s_mean", "cpu_ratio", "train_gpu_s_mean", "eval_s_mean", "select_s_mean",
    "warmup_s_mean", "trial_s_mean",
    "energy_kwh_mean", "energy_change_pct",
    "cpu_energy_kwh_mean", "gpu_energy_kwh_mean", "ram_energy_kwh_mean",
    "emissions_kg_mean", "emissions_change_pct", "emissions_paper_change_pct",
    "emissions_estimate_kg_mean", "emissions_estimate_change_pct",
)  # fmt: skip
# experiment-table column -> trial column whose mean it is, and its change-vs-Benchmark column
_MEANS = {
    "train_s_mean": ("train_s", "runtime_change_pct"),
    "train_cpu_s_mean": ("train_cpu_s", None),
    "train_gpu_s_mean": ("train_gpu_s", None),
    "eval_s_mean": ("eval_s", None),
    "select_s_mean": ("select_s", None),
    "warmup_s_mean": ("warmup_s", None),
    "trial_s_mean": ("trial_s", None),
    "energy_kwh_mean": ("energy_kwh", "energy_change_pct"),
    "cpu_energy_kwh_mean": ("cpu_energy_kwh", None),
    "gpu_energy_kwh_mean": ("gpu_energy_kwh", None),
    "ram_energy_kwh_mean": ("ram_energy_kwh", None),
    "emissions_kg_mean": ("emissions_kg", "emissions_change_pct"),
    "emissions_estimate_kg_mean": ("emissions_estimate_kg", "emissions_estimate_change_pct"),
}
DEFAULT_MARGIN = 0.1  # equivalence margin, accuracy points: MNIST-like data


# -- reading MLflow ------------------------------------------------------------------------


def trial_table(tracking_uri: str, grid: str) -> pd.DataFrame:
    """One row per finished trial run of ``grid`` (pending, running and failed are left out)."""
    rows = [_trial_row(run) for run in _finished_runs(tracking_uri, grid)]
    trials = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    if trials.empty:
        return trials
    trials = trials.astype({"seed": int})
    order = trials["experiment"].map(experiment_order)
    return trials.assign(_order=order).sort_values(["_order", "seed"]).drop(
        columns="_order").reset_index(drop=True)


def _finished_runs(uri: str, grid: str) -> list[Any]:
    from orchestrator.preflight import check_tracking

    check_tracking(uri)
    client = record.client(uri)
    experiment = record.experiment_id(client, grid)
    if experiment is None:
        known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        raise TrackingError(
            f"no grid named {grid!r} at {uri}; known grids: {', '.join(known) or 'none'}"
        )
    return record.search(client, experiment, {Tag.GRID: grid, Tag.KIND: Kind.TRIAL,
                                              Tag.STATE: State.FINISHED})


def _trial_row(run: Any) -> dict[str, Any]:
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    row: dict[str, Any] = {name: tags.get(tag) for name, tag in TAG_COLUMNS.items()}
    row["run_id"] = run.info.run_id
    for name in ("epochs", "train_size"):
        row[name] = int(params[name]) if name in params else None
    for column, metric in METRIC_COLUMNS.items():
        row[column] = float(metrics.get(metric, math.nan))
    if math.isnan(row["scoring_evaluations"]):  # runs from before scoring was tracked
        row["scoring_evaluations"] = 0.0
    return row


# -- reducing over seeds -------------------------------------------------------------------


def experiment_order(name: str) -> tuple[int, int, str]:
    """Sort key: Benchmark, then E1..E20 by number, then custom names alphabetically."""
    if name == BENCHMARK:
        return (0, 0, "")
    if match := re.fullmatch(r"E(\d+)", name):
        return (1, int(match.group(1)), "")
    return (2, 0, name.lower())


def experiment_table(trials: pd.DataFrame, margin: float = DEFAULT_MARGIN) -> pd.DataFrame:
    """Per experiment: means over seeds, spread, and the paired comparison vs the Benchmark.

    ``margin`` is the equivalence margin in accuracy points (0.1 = 0.1 percentage points).
    """
    if not (math.isfinite(margin) and margin > 0):
        raise ConfigError(f"the equivalence margin must be a positive number of points: "
                          f"{margin=}")
    groups = {name: group for name, group in trials.groupby("experiment", sort=False)}
    names = sorted(groups, key=experiment_order)
    rows = [_summarise(name, groups[name]) for name in names]
    bench_rows = [r for r in rows if r["experiment"] == BENCHMARK]
    if bench_rows:
        for row in rows:
            _compare(row, bench_rows[0], groups[row["experiment"]], groups[BENCHMARK], margin)
        adjust_and_power(rows, groups, margin)
    for row in rows:
        compare_twins(row, groups)
    table = pd.DataFrame(rows, columns=list(EXPERIMENT_COLUMNS))
    text = ["experiment", "method", "schedule", "source", "dataset", "epochs", "n", "n_paired",
            "can_claim", "equivalent"]
    return table.astype({"n_paired": int, "can_claim": bool, "equivalent": "boolean",
                         **{c: float for c in EXPERIMENT_COLUMNS if c not in text}})


def _summarise(name: str, group: pd.DataFrame) -> dict[str, Any]:
    top1 = group["best_top1"].to_numpy(float)
    n = len(top1)
    epochs = group["epochs"].dropna()
    ci95_low, ci95_high = mean_ci95(100 * top1)
    row: dict[str, Any] = dict.fromkeys(EXPERIMENT_COLUMNS, math.nan)
    row.update(
        experiment=name,
        method=group["method"].iloc[0],
        schedule=group["schedule"].iloc[0],
        source=_source(name, group),
        dataset=", ".join(sorted(group["dataset"].dropna().astype(str).unique())),
        epochs=int(epochs.max()) if len(epochs) else None,
        n=n,
        n_paired=0,
        can_claim=False,
        equivalent=None,
        evaluations=float(group["evaluations"].mean()),
        scoring_evaluations=(float(group["scoring_evaluations"].fillna(0.0).mean())
                             if "scoring_evaluations" in group else 0.0),
        top1_mean=float(top1.mean()),
        top1_std=_std(top1),
        ci95_low=ci95_low,
        ci95_high=ci95_high,
        final_top1_mean=float(group["final_top1"].mean()),
        final_top1_std=_std(group["final_top1"].dropna().to_numpy(float)),
    )
    for column, (source, _) in _MEANS.items():
        row[column] = float(group[source].mean()) if source in group else math.nan
    return row


def _source(name: str, group: pd.DataFrame) -> str:
    """The runs' ``lessdata.source``; for runs from before the tag, the name's."""
    tagged = group["source"].dropna() if "source" in group else pd.Series(dtype=object)
    return str(tagged.iloc[0]) if len(tagged) else source_of(name)


def _compare(row: dict[str, Any], bench: dict[str, Any], group: pd.DataFrame,
             bench_group: pd.DataFrame, margin: float) -> None:
    row["evaluations_pct"] = _ratio_pct(_cost(row), _cost(bench))
    row["evaluation_ratio"] = row["evaluations_pct"] / 100.0
    row["runtime_ratio"] = _ratio_pct(row["train_s_mean"], bench["train_s_mean"]) / 100.0
    row["cpu_ratio"] = _ratio_pct(row["train_cpu_s_mean"], bench["train_cpu_s_mean"]) / 100.0
    row["top1_delta"] = 100.0 * (row["top1_mean"] - bench["top1_mean"])
    for column, (_, change) in _MEANS.items():
        if change is not None:
            row[change] = _ratio_pct(row[column], bench[column]) - 100.0
    # The paper computes CO2 as runtime x a per-GPU average: its CO2 change is the
    # (training) runtime change.
    row["emissions_paper_change_pct"] = row["runtime_change_pct"]
    top1, bench_top1 = paired(group, bench_group)
    row["n_paired"] = len(top1)
    row["can_claim"] = len(top1) >= MIN_SEEDS
    row["margin"] = margin
    if row["experiment"] == BENCHMARK:
        return
    row["effect_size"] = hedges_g(group["best_top1"].to_numpy(float),
                                  bench_group["best_top1"].to_numpy(float))  # descriptive
    if not row["can_claim"]:
        return
    row["p_paired"] = paired_t_p(top1, bench_top1)
    row["p_wilcoxon"] = wilcoxon_p(top1, bench_top1)
    row["tost_p"] = tost_p(100 * top1, 100 * bench_top1, margin)  # points, like the margin
    row["equivalent"] = bool(row["tost_p"] < ALPHA)


def _cost(row: dict[str, Any]) -> float:
    """Images forwarded: training evaluations plus scoring passes."""
    return float(row["evaluations"]) + float(row["scoring_evaluations"])


def _std(values: np.ndarray) -> float:
    """Sample std over seeds (``record.mean_std``: 0 for a single value, NaN for none)."""
    return record.mean_std(values)[1]


def _ratio_pct(value: float, reference: float) -> float:
    ok = math.isfinite(value) and math.isfinite(reference) and reference != 0
    return 100.0 * value / reference if ok else math.nan


def pareto_mask(cost: Sequence[float], gain: Sequence[float]) -> list[bool]:
    """True for the points no other point beats (cost no higher, gain no lower, one strictly)."""
    points = list(zip(cost, gain, strict=True))

    def dominated(c: float, g: float) -> bool:
        return any(c2 <= c and g2 >= g and (c2 < c or g2 > g) for c2, g2 in points
                   if math.isfinite(c2) and math.isfinite(g2))

    return [math.isfinite(c) and math.isfinite(g) and not dominated(c, g) for c, g in points]


def hardware_warning(trials: pd.DataFrame) -> str | None:
    """One line when the compared runs ran on different hardware, else None."""
    if trials.empty:
        return None
    counts = trials["hardware"].dropna().value_counts(sort=False)
    if len(counts) < 2:
        return None
    kinds = ", ".join(f"{name!r} ({count} runs)" for name, count in sorted(counts.items()))
    return (f"runs ran on {len(counts)} different hardware: {kinds}; "
            "runtime and energy changes are not like-for-like")
