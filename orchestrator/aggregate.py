"""Aggregation, on the driver: MLflow trial runs -> one tidy table -> one row per experiment.

``trial_table`` reads every finished trial of a grid into one row per run;
``experiment_table`` reduces it to the paper's comparison (mean, std and 95% CI over
seeds, change vs the Benchmark, Welch's t-test and Hedges' g on top-1) and, for every
experiment X with budget-matched twins ``X-uniform`` / ``X-short`` in the table
(``orchestrator.baselines``), the same test and effect size of X vs each twin. Reports
and plots (``orchestrator/report.py``) read only these two tables.

Evaluations compared across experiments (``evaluations_pct``) include the forward passes
a selection strategy made to score samples (``scoring_evaluations``), each counted as one
training image: conservative, so savings are never overstated.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from orchestrator import record
from orchestrator.baselines import BASELINES
from orchestrator.record import Kind, State, Tag
from trainers.errors import TrackingError

__all__ = [
    "EXPERIMENT_COLUMNS",
    "TRIAL_COLUMNS",
    "experiment_order",
    "experiment_table",
    "hardware_warning",
    "pareto_mask",
    "trial_table",
]

BENCHMARK = "Benchmark"
TAG_COLUMNS = {  # trial column -> MLflow tag
    "experiment": Tag.EXPERIMENT, "method": Tag.METHOD, "schedule": Tag.SCHEDULE,
    "seed": Tag.SEED, "dataset": Tag.DATASET, "selection": Tag.SELECTION,
    "hardware": Tag.HARDWARE, "node": Tag.NODE,
}  # fmt: skip
METRIC_COLUMNS = {  # trial column -> MLflow metric (a series' last value is its total)
    "best_top1": "best_top1",
    "final_top1": "final_top1",
    "evaluations": "evaluations",
    "scoring_evaluations": "scoring_evaluations",
    "train_s": "train_s",
    "trial_s": "trial_s",
    "energy_kwh": "energy_kwh",
    "emissions_kg": "emissions_kg",
    "emissions_estimate_kg": "emissions_estimate_kg",
    "best_epoch": "best_epoch",
}
TRIAL_COLUMNS = (*TAG_COLUMNS, "run_id", "epochs", "train_size", *METRIC_COLUMNS)
EXPERIMENT_COLUMNS = (
    "experiment", "method", "schedule", "dataset", "epochs", "n",
    "evaluations", "scoring_evaluations", "evaluations_pct",
    "top1_mean", "top1_std", "top1_ci95", "top1_delta", "p_value", "effect_size",
    "delta_vs_uniform", "p_vs_uniform", "effect_vs_uniform",
    "delta_vs_short", "p_vs_short", "effect_vs_short",
    "final_top1_mean", "final_top1_std",
    "runtime_s_mean", "runtime_change_pct", "trial_s_mean",
    "energy_kwh_mean", "energy_change_pct",
    "emissions_kg_mean", "emissions_change_pct",
    "emissions_estimate_kg_mean", "emissions_estimate_change_pct",
)  # fmt: skip
# experiment-table column -> trial column whose mean it is, and its change-vs-Benchmark column
_MEANS = {
    "runtime_s_mean": ("train_s", "runtime_change_pct"),
    "trial_s_mean": ("trial_s", None),
    "energy_kwh_mean": ("energy_kwh", "energy_change_pct"),
    "emissions_kg_mean": ("emissions_kg", "emissions_change_pct"),
    "emissions_estimate_kg_mean": ("emissions_estimate_kg", "emissions_estimate_change_pct"),
}
TWINS = BASELINES  # X-uniform, X-short: budget-matched baselines of X


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


def experiment_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per experiment: means over seeds, spread, and the change vs the Benchmark."""
    groups = {name: group for name, group in trials.groupby("experiment", sort=False)}
    names = sorted(groups, key=experiment_order)
    rows = [_summarise(name, groups[name]) for name in names]
    bench_rows = [r for r in rows if r["experiment"] == BENCHMARK]
    if bench_rows:
        bench_top1 = groups[BENCHMARK]["best_top1"].to_numpy(float)
        for row in rows:
            _compare(row, bench_rows[0], groups[row["experiment"]]["best_top1"].to_numpy(float),
                     bench_top1)
    for row in rows:
        _compare_twins(row, groups)
    table = pd.DataFrame(rows, columns=list(EXPERIMENT_COLUMNS))
    text = ["experiment", "method", "schedule", "dataset", "epochs", "n"]
    return table.astype({c: float for c in EXPERIMENT_COLUMNS if c not in text})


def _summarise(name: str, group: pd.DataFrame) -> dict[str, Any]:
    top1 = group["best_top1"].to_numpy(float)
    n = len(top1)
    std = _std(top1)
    epochs = group["epochs"].dropna()
    row: dict[str, Any] = dict.fromkeys(EXPERIMENT_COLUMNS, math.nan)
    row.update(
        experiment=name,
        method=group["method"].iloc[0],
        schedule=group["schedule"].iloc[0],
        dataset=", ".join(sorted(group["dataset"].dropna().astype(str).unique())),
        epochs=int(epochs.max()) if len(epochs) else None,
        n=n,
        evaluations=float(group["evaluations"].mean()),
        scoring_evaluations=(float(group["scoring_evaluations"].fillna(0.0).mean())
                             if "scoring_evaluations" in group else 0.0),
        top1_mean=float(top1.mean()),
        top1_std=std,
        top1_ci95=_ci95(std, n),
        final_top1_mean=float(group["final_top1"].mean()),
        final_top1_std=_std(group["final_top1"].dropna().to_numpy(float)),
    )
    for column, (source, _) in _MEANS.items():
        row[column] = float(group[source].mean())
    return row


def _compare(row: dict[str, Any], bench: dict[str, Any], top1: np.ndarray,
             bench_top1: np.ndarray) -> None:
    row["evaluations_pct"] = _ratio_pct(_cost(row), _cost(bench))
    row["top1_delta"] = 100.0 * (row["top1_mean"] - bench["top1_mean"])
    for column, (_, change) in _MEANS.items():
        if change is not None:
            row[change] = _ratio_pct(row[column], bench[column]) - 100.0
    if row["experiment"] != BENCHMARK:
        row["p_value"] = _welch_p(top1, bench_top1)
        row["effect_size"] = _hedges_g(top1, bench_top1)


def _cost(row: dict[str, Any]) -> float:
    """Images forwarded: training evaluations plus scoring passes."""
    return float(row["evaluations"]) + float(row["scoring_evaluations"])


def _compare_twins(row: dict[str, Any], groups: dict[str, pd.DataFrame]) -> None:
    """X vs X-uniform and X-short: Δ top-1 (points), Welch's p and Hedges' g, where present."""
    top1 = groups[row["experiment"]]["best_top1"].to_numpy(float)
    for kind in TWINS:
        twin = groups.get(f"{row['experiment']}-{kind}")
        if twin is None:
            continue
        twin_top1 = twin["best_top1"].to_numpy(float)
        row[f"delta_vs_{kind}"] = 100.0 * (float(top1.mean()) - float(twin_top1.mean()))
        row[f"p_vs_{kind}"] = _welch_p(top1, twin_top1)
        row[f"effect_vs_{kind}"] = _hedges_g(top1, twin_top1)


def _std(values: np.ndarray) -> float:
    """Sample std (ddof=1); 0 for a single value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _ci95(std: float, n: int) -> float:
    """Half-width of the t-based 95% confidence interval of the mean; NaN below 2 seeds."""
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n >= 2 else math.nan


def _ratio_pct(value: float, reference: float) -> float:
    ok = math.isfinite(value) and math.isfinite(reference) and reference != 0
    return 100.0 * value / reference if ok else math.nan


def _welch_p(a: np.ndarray, b: np.ndarray) -> float:
    """Welch's t-test p-value; NaN when either side has fewer than 2 seeds."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return math.nan
    with warnings.catch_warnings():  # zero variance on both sides: scipy warns, returns NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised mean difference (a - b) / pooled std, small-sample corrected.

    NaN when either side has fewer than 2 seeds, like the p-value: one run has no spread
    of its own, and a g borrowed from the other side's spread alone would mislead.
    """
    if len(a) < 2 or len(b) < 2:
        return math.nan
    dof = len(a) + len(b) - 2
    pooled = math.sqrt(((len(a) - 1) * _std(a) ** 2 + (len(b) - 1) * _std(b) ** 2) / dof)
    if pooled == 0:
        return math.nan
    return (float(a.mean()) - float(b.mean())) / pooled * (1.0 - 3.0 / (4.0 * dof - 1.0))


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
