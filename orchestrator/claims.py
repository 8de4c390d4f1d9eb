"""What a grid's statistics can claim, on the driver: the paired comparisons by seed.

Beside ``orchestrator.aggregate``'s per-experiment summary: the pairing of two experiments'
seeds (``paired``), Hedges' g (``hedges_g``), Holm's adjustment over the report's paired
p-values with the grid's pooled power (``adjust_and_power``), each experiment X against its
budget-matched twins ``X-uniform`` / ``X-short`` (``compare_twins``), and the one line
a report prints on what can be claimed (``claim_note``). Each fills or reads the rows of
``aggregate.experiment_table``; the tests themselves are ``orchestrator.statistics``'.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from orchestrator import record
from orchestrator.baselines import BASELINES
from orchestrator.statistics import (
    ALPHA,
    MIN_SEEDS,
    detectable_difference,
    holm,
    paired_t_p,
    seeds_needed,
)

__all__ = ["BENCHMARK", "TWINS", "adjust_and_power", "claim_note", "compare_twins",
           "hedges_g", "paired"]

BENCHMARK = "Benchmark"
TWINS = BASELINES  # X-uniform, X-short: budget-matched baselines of X


def paired(group: pd.DataFrame, other: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Best top-1 of the seeds both groups have, aligned by seed (sorted)."""
    a = group.groupby("seed")["best_top1"].mean()
    b = other.groupby("seed")["best_top1"].mean()
    seeds = a.index.intersection(b.index).sort_values()
    return a.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float)


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised mean difference (a - b) / pooled std, small-sample corrected.

    NaN when either side has fewer than 2 seeds, like the p-value: one run has no spread
    of its own, and a g borrowed from the other side's spread alone would mislead.
    """
    if len(a) < 2 or len(b) < 2:
        return math.nan
    dof = len(a) + len(b) - 2
    var_a, var_b = record.mean_std(a)[1] ** 2, record.mean_std(b)[1] ** 2
    pooled = math.sqrt(((len(a) - 1) * var_a + (len(b) - 1) * var_b) / dof)
    if pooled == 0:
        return math.nan
    return (float(a.mean()) - float(b.mean())) / pooled * (1.0 - 3.0 / (4.0 * dof - 1.0))


def adjust_and_power(rows: list[dict[str, Any]], groups: dict[str, pd.DataFrame],
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
        top1, bench_top1 = paired(groups[row["experiment"]], groups[BENCHMARK])
        diff = 100 * (top1 - bench_top1)  # points
        squares += float(np.sum((diff - diff.mean()) ** 2))
        dof += len(diff) - 1
    spread = math.sqrt(squares / dof) if dof else math.nan
    for row in rows:
        if row["experiment"] != BENCHMARK:
            row["mde"] = detectable_difference(spread, row["n_paired"])
            row["seeds_needed"] = seeds_needed(margin, spread)


def compare_twins(row: dict[str, Any], groups: dict[str, pd.DataFrame]) -> None:
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
        ours, theirs = paired(group, twin)
        if len(ours) >= MIN_SEEDS:
            row[f"p_vs_{kind}"] = paired_t_p(ours, theirs)
        row[f"effect_vs_{kind}"] = hedges_g(top1, twin_top1)


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

