"""Aggregation vs budget-matched twins and with scoring passes, on fixed numbers vs scipy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from orchestrator.aggregate import TRIAL_COLUMNS, experiment_table
from orchestrator.report import markdown

TOP1 = {
    "Benchmark": [0.990, 0.992, 0.991],
    "E3": [0.985, 0.987, 0.984],
    "E3-uniform": [0.983, 0.982, 0.986],
    "E3-short": [0.979, 0.981, 0.980, 0.978],
    "E1": [0.991, 0.993],  # no twins
}
EVALS = {"Benchmark": 4000, "E3": 1750, "E3-uniform": 1752, "E3-short": 2000, "E1": 3250}


def _trials(scoring: dict[str, float] | None = None) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for name, values in TOP1.items():
        for seed, top1 in enumerate(values):
            row: dict[str, Any] = dict.fromkeys(TRIAL_COLUMNS, math.nan)
            row.update(experiment=name, method="x", schedule='{"method":"benchmark"}',
                       seed=seed, dataset="mnist", epochs=4, train_size=1000,
                       best_top1=top1, final_top1=top1, evaluations=EVALS[name],
                       scoring_evaluations=(scoring or {}).get(name, 0.0), train_s=1.0)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))


def _row(table: pd.DataFrame, name: str) -> dict[str, Any]:
    return table.set_index("experiment").loc[name].to_dict()


def _g(a: np.ndarray, b: np.ndarray) -> float:
    dof = len(a) + len(b) - 2
    pooled = math.sqrt(((len(a) - 1) * np.var(a, ddof=1) + (len(b) - 1) * np.var(b, ddof=1))
                       / dof)
    return (a.mean() - b.mean()) / pooled * (1 - 3 / (4 * (len(a) + len(b)) - 9))


@pytest.mark.parametrize("kind", ["uniform", "short"])
def test_p_value_and_effect_vs_each_twin_equal_scipy(kind: str) -> None:
    row = _row(experiment_table(_trials()), "E3")
    x, twin = np.array(TOP1["E3"]), np.array(TOP1[f"E3-{kind}"])
    assert row[f"p_vs_{kind}"] == pytest.approx(stats.ttest_ind(x, twin, equal_var=False).pvalue)
    assert row[f"effect_vs_{kind}"] == pytest.approx(_g(x, twin))
    assert row[f"delta_vs_{kind}"] == pytest.approx(100 * (x.mean() - twin.mean()))


def test_experiments_without_twins_have_no_twin_columns() -> None:
    table = experiment_table(_trials())
    for name in ("Benchmark", "E1", "E3-uniform", "E3-short"):
        row = _row(table, name)
        assert all(math.isnan(row[f"{stat}_vs_{kind}"]) for stat in ("delta", "p", "effect")
                   for kind in ("uniform", "short")), name


def test_scoring_passes_count_in_the_evaluations_compared() -> None:
    plain = _row(experiment_table(_trials()), "E3")
    scored = experiment_table(_trials({"E3": 250.0}))
    assert plain["evaluations_pct"] == pytest.approx(43.75)
    assert _row(scored, "E3")["scoring_evaluations"] == 250.0
    assert _row(scored, "E3")["evaluations_pct"] == pytest.approx(50.0)  # (1750 + 250) / 4000
    assert _row(scored, "E3")["evaluations"] == 1750.0  # training images stay apart
    assert "2,000 scoring" not in markdown(scored) and "250 scoring" in markdown(scored)


def test_runs_without_a_scoring_metric_count_none() -> None:
    trials = _trials().assign(scoring_evaluations=math.nan)
    assert _row(experiment_table(trials), "E3")["evaluations_pct"] == pytest.approx(43.75)
    legacy = _trials().drop(columns="scoring_evaluations")
    assert _row(experiment_table(legacy), "E3")["scoring_evaluations"] == 0.0


def test_report_shows_twin_columns_only_when_there_are_twins() -> None:
    with_twins = markdown(experiment_table(_trials()))
    assert "| vs uniform | vs short |" in with_twins and "budget-matched" in with_twins
    p = stats.ttest_ind(TOP1["E3"], TOP1["E3-uniform"], equal_var=False).pvalue
    assert f"(p {p:.3g})" in with_twins
    without = markdown(experiment_table(_trials()[lambda t: ~t["experiment"].str.contains("-")]))
    assert "vs uniform" not in without and "budget-matched" not in without
