"""Aggregation, on the driver: MLflow trial runs -> one tidy table -> one row per experiment.

``trial_table`` reads every finished trial of a grid into one row per run;
``experiment_table`` reduces it to the paper's comparison (mean, std and 95% CI over
seeds, change vs the Benchmark) and the statistics of ``orchestrator.statistics`` on
top-1, paired by seed: the paired t-test vs the Benchmark (Wilcoxon beside it from 6
pairs), Holm-adjusted over the report, the TOST equivalence test at ``margin`` points,
and the smallest difference the grid can detect; for every experiment X with
budget-matched twins ``X-uniform`` / ``X-short`` in the table (``orchestrator.baselines``),
the paired test and effect size of X vs each twin. Reports and plots
(``orchestrator/report.py``, ``orchestrator/figures.py``) read only these two tables.

Units: top-1 means and stds are fractions (0-1) like the metrics; ``top1_delta``,
``ci95_low`` / ``ci95_high`` (clipped to [0, 100]), ``margin`` and ``mde`` are in
accuracy points (percent). Below ``MIN_SEEDS`` (3) seeds paired with the Benchmark an
experiment's p-values and equivalence are NaN / NA and ``can_claim`` is False.

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
from orchestrator.baselines import BASELINES
from orchestrator.record import Kind, State, Tag
from orchestrator.statistics import (
    ALPHA,
    MIN_SEEDS,
    detectable_difference,
    holm,
    mean_ci95,
    paired_t_p,
    seeds_needed,
    tost_p,
    wilcoxon_p,
)
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

BENCHMARK = "Benchmark"
TAG_COLUMNS = {  # trial column -> MLflow tag
    "experiment": Tag.EXPERIMENT, "method": Tag.METHOD, "schedule": Tag.SCHEDULE,
    "seed": Tag.SEED, "dataset": Tag.DATASET, "selection": Tag.SELECTION,
    "hardware": Tag.HARDWARE, "node": Tag.NODE, "source": Tag.SOURCE,
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
    "experiment", "method", "schedule", "source", "dataset", "epochs", "n",
    "evaluations", "scoring_evaluations", "evaluations_pct",
    "top1_mean", "top1_std", "ci95_low", "ci95_high", "top1_delta",
    "n_paired", "can_claim", "p_paired", "p_wilcoxon", "p_holm", "effect_size",
    "margin", "tost_p", "equivalent", "mde", "seeds_needed",
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
        _adjust_and_power(rows, groups, margin)
    for row in rows:
        _compare_twins(row, groups)
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
        row[column] = float(group[source].mean())
    return row


def _source(name: str, group: pd.DataFrame) -> str:
    """The runs' ``lessdata.source``; for runs from before the tag, the name's."""
    tagged = group["source"].dropna() if "source" in group else pd.Series(dtype=object)
    return str(tagged.iloc[0]) if len(tagged) else source_of(name)


def _paired(group: pd.DataFrame, other: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Best top-1 of the seeds both groups have, aligned by seed (sorted)."""
    a = group.groupby("seed")["best_top1"].mean()
    b = other.groupby("seed")["best_top1"].mean()
    seeds = a.index.intersection(b.index).sort_values()
    return a.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float)


def _compare(row: dict[str, Any], bench: dict[str, Any], group: pd.DataFrame,
             bench_group: pd.DataFrame, margin: float) -> None:
    row["evaluations_pct"] = _ratio_pct(_cost(row), _cost(bench))
    row["top1_delta"] = 100.0 * (row["top1_mean"] - bench["top1_mean"])
    for column, (_, change) in _MEANS.items():
        if change is not None:
            row[change] = _ratio_pct(row[column], bench[column]) - 100.0
    top1, bench_top1 = _paired(group, bench_group)
    row["n_paired"] = len(top1)
    row["can_claim"] = len(top1) >= MIN_SEEDS
    row["margin"] = margin
    if row["experiment"] == BENCHMARK:
        return
    row["effect_size"] = _hedges_g(group["best_top1"].to_numpy(float),
                                   bench_group["best_top1"].to_numpy(float))  # descriptive
    if not row["can_claim"]:
        return
    row["p_paired"] = paired_t_p(top1, bench_top1)
    row["p_wilcoxon"] = wilcoxon_p(top1, bench_top1)
    row["tost_p"] = tost_p(100 * top1, 100 * bench_top1, margin)  # points, like the margin
    row["equivalent"] = bool(row["tost_p"] < ALPHA)


def _adjust_and_power(rows: list[dict[str, Any]], groups: dict[str, pd.DataFrame],
                      margin: float) -> None:
    """Holm over this report's paired p-values; power from the grid's pooled paired spread.

    The spread is the standard deviation of the per-seed differences from the Benchmark,
    pooled over every experiment with 2 or more seeds paired (each weighs by its degrees of
    freedom): with 2 seeds per experiment one experiment alone has a single degree of
    freedom, the grid has many.
    """
    for row, p in zip(rows, holm([r["p_paired"] for r in rows]), strict=True):
        row["p_holm"] = p
    squares, dof = 0.0, 0
    for row in rows:
        if row["experiment"] == BENCHMARK or row["n_paired"] < 2:
            continue
        top1, bench_top1 = _paired(groups[row["experiment"]], groups[BENCHMARK])
        diff = 100 * (top1 - bench_top1)  # points
        squares += float(np.sum((diff - diff.mean()) ** 2))
        dof += len(diff) - 1
    spread = math.sqrt(squares / dof) if dof else math.nan
    for row in rows:
        if row["experiment"] != BENCHMARK:
            row["mde"] = detectable_difference(spread, row["n_paired"])
            row["seeds_needed"] = seeds_needed(margin, spread)


def _cost(row: dict[str, Any]) -> float:
    """Images forwarded: training evaluations plus scoring passes."""
    return float(row["evaluations"]) + float(row["scoring_evaluations"])


def _compare_twins(row: dict[str, Any], groups: dict[str, pd.DataFrame]) -> None:
    """X vs X-uniform and X-short: Δ top-1 (points), paired p and Hedges' g, where present.

    The twins run X's seeds (the same initial weights), so they pair by seed like the
    Benchmark comparison; the p-value needs ``MIN_SEEDS`` pairs. Not Holm-adjusted: each
    twin comparison answers its own question about X, not one of the report's family.
    """
    group = groups[row["experiment"]]
    top1 = group["best_top1"].to_numpy(float)
    for kind in TWINS:
        twin = groups.get(f"{row['experiment']}-{kind}")
        if twin is None:
            continue
        twin_top1 = twin["best_top1"].to_numpy(float)
        row[f"delta_vs_{kind}"] = 100.0 * (float(top1.mean()) - float(twin_top1.mean()))
        paired, twin_paired = _paired(group, twin)
        if len(paired) >= MIN_SEEDS:
            row[f"p_vs_{kind}"] = paired_t_p(paired, twin_paired)
        row[f"effect_vs_{kind}"] = _hedges_g(top1, twin_top1)


def _std(values: np.ndarray) -> float:
    """Sample std (ddof=1); 0 for a single value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _ratio_pct(value: float, reference: float) -> float:
    ok = math.isfinite(value) and math.isfinite(reference) and reference != 0
    return 100.0 * value / reference if ok else math.nan


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


def claim_note(table: pd.DataFrame) -> str | None:
    """One line on what this grid's statistics can claim; None without comparisons.

    Where some experiment has fewer than ``MIN_SEEDS`` seeds paired with the Benchmark,
    it starts by saying that no claim can be made for it, with the smallest difference
    the grid could detect and the seeds a difference of the margin's size needs (both at
    the grid's measured spread). Then it names the test, the Holm family and the margin.
    """
    compared = table[(table["experiment"] != BENCHMARK) & table["margin"].notna()]
    if compared.empty:
        return None
    margin = float(compared["margin"].iloc[0])
    tested = int(compared["p_holm"].notna().sum())
    parts = []
    short = compared[~compared["can_claim"].astype(bool)]
    if len(short):
        names = list(short["experiment"])
        which = ", ".join(names) if len(names) <= 4 else f"{len(names)} experiments"
        seeds = "/".join(str(v) for v in sorted(set(short["n_paired"].astype(int))))
        parts.append(f"no claim can be made for {which}: {seeds} seed(s) paired with the "
                     f"Benchmark, at least {MIN_SEEDS} needed")
        mde, needed = float(short["mde"].max()), float(short["seeds_needed"].max())
        if math.isfinite(mde):
            parts.append(f"at this grid's spread the smallest difference they could detect "
                         f"is {mde:.3g} points")
        if math.isfinite(needed):
            parts.append(f"a difference of {margin:g} points needs {needed:.0f} seeds")
    if tested:
        parts.append(f"paired t-test vs Benchmark by seed, Holm-adjusted over {tested} "
                     f"comparisons; equivalent: TOST p < {ALPHA:g} at ±{margin:g} points")
        mde = float(compared.loc[compared["can_claim"].astype(bool), "mde"].max())
        if not len(short) and math.isfinite(mde):
            parts.append(f"smallest difference detectable: {mde:.3g} points")
    return "; ".join(parts) or None


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
