"""Aggregation on fixed numbers vs scipy/statsmodels: the paired statistics vs the Benchmark,
budget-matched twins, scoring passes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from orchestrator.aggregate import TRIAL_COLUMNS, claim_note, experiment_table
from orchestrator.report import markdown, report_rows
from trainers.errors import ConfigError

TOP1 = {
    "Benchmark": [0.990, 0.992, 0.991],
    "E3": [0.985, 0.987, 0.984],
    "E3-uniform": [0.983, 0.982, 0.986],
    "E3-short": [0.979, 0.981, 0.980, 0.978],
    "E1": [0.991, 0.993],  # no twins
}
EVALS = {"Benchmark": 4000, "E3": 1750, "E3-uniform": 1752, "E3-short": 2000, "E1": 3250}


def _trials(scoring: dict[str, float] | None = None,
            top1s: dict[str, list[float]] = TOP1) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for name, values in top1s.items():
        for seed, top1 in enumerate(values):
            row: dict[str, Any] = dict.fromkeys(TRIAL_COLUMNS, math.nan)
            row.update(experiment=name, method="x", schedule='{"method":"benchmark"}',
                       seed=seed, dataset="mnist", epochs=4, train_size=1000,
                       best_top1=top1, final_top1=top1, evaluations=EVALS.get(name, 4000),
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
    # the twins run X's seeds: paired by seed (E3-short's seed 3 has no E3 partner)
    assert row[f"p_vs_{kind}"] == pytest.approx(stats.ttest_rel(x, twin[:3]).pvalue)
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
    p = stats.ttest_rel(TOP1["E3"], TOP1["E3-uniform"]).pvalue
    assert f"(p {p:.3g})" in with_twins
    without = markdown(experiment_table(_trials()[lambda t: ~t["experiment"].str.contains("-")]))
    assert "vs uniform" not in without and "budget-matched" not in without


# -- the paired statistics vs the Benchmark -------------------------------------------------

SEEDS6 = {  # 6 seeds: Wilcoxon runs; X1 is equivalent at 0.1 points, X2 is not
    "Benchmark": [0.9905, 0.9901, 0.9904, 0.9890, 0.9911, 0.9893],
    "X1": [0.9906, 0.9899, 0.9905, 0.9892, 0.9910, 0.9895],
    "X2": [0.9880, 0.9890, 0.9871, 0.9869, 0.9895, 0.9860],
    "X3": [0.9915, 0.9912, 0.9899, 0.9905, 0.9921, 0.9890],
    "X4": [0.9903, 0.9899],  # 2 seeds: no claim
}


def _paired_table(margin: float = 0.1) -> pd.DataFrame:
    trials = _trials(top1s=SEEDS6).sample(frac=1.0, random_state=1)  # any row order
    return experiment_table(trials, margin=margin)


def test_paired_p_and_wilcoxon_match_scipy_by_seed() -> None:
    table, bench = _paired_table(), np.array(SEEDS6["Benchmark"])
    for name in ("X1", "X2", "X3"):
        row, x = _row(table, name), np.array(SEEDS6[name])
        assert row["n_paired"] == 6 and row["can_claim"]
        assert row["p_paired"] == pytest.approx(stats.ttest_rel(x, bench).pvalue)
        assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(x, bench).pvalue)


def test_pairs_are_matched_by_seed_not_by_row() -> None:
    trials = _trials(top1s=SEEDS6)
    dropped = trials[~((trials["experiment"] == "Benchmark") & (trials["seed"] == 0))]
    row = _row(experiment_table(dropped), "X2")
    x, bench = np.array(SEEDS6["X2"]), np.array(SEEDS6["Benchmark"])
    assert row["n"] == 6 and row["n_paired"] == 5
    assert row["p_paired"] == pytest.approx(stats.ttest_rel(x[1:], bench[1:]).pvalue)
    assert math.isnan(row["p_wilcoxon"])  # 5 pairs: below Wilcoxon's 6


def test_holm_over_the_reports_comparisons_matches_statsmodels() -> None:
    table = _paired_table()
    tested = table[table["p_paired"].notna()]
    assert list(tested["experiment"]) == ["X1", "X2", "X3"]  # not Benchmark, not X4
    expected = multipletests(tested["p_paired"], method="holm")[1]
    assert list(tested["p_holm"]) == pytest.approx(list(expected))
    assert table["p_holm"].isna().tolist() == table["p_paired"].isna().tolist()


@pytest.mark.parametrize("margin", [0.1, 0.05, 0.3])
def test_tost_in_points_matches_statsmodels_in_fractions(margin: float) -> None:
    table, bench = _paired_table(margin), np.array(SEEDS6["Benchmark"])
    for name in ("X1", "X2", "X3"):
        row, x = _row(table, name), np.array(SEEDS6[name])
        expected = ttost_paired(x, bench, -margin / 100, margin / 100)[0]
        assert row["tost_p"] == pytest.approx(float(expected))
        assert row["equivalent"] == (expected < 0.05) and row["margin"] == margin


def test_equivalence_at_the_default_margin() -> None:
    table = _paired_table()
    assert _row(table, "X1")["equivalent"]
    assert not _row(table, "X2")["equivalent"]


@pytest.mark.parametrize("margin", [0.0, -0.1, math.nan, math.inf])
def test_a_bad_margin_is_refused(margin: float) -> None:
    with pytest.raises(ConfigError, match="margin"):
        experiment_table(_trials(), margin=margin)


def test_ci95_is_the_t_interval_in_points_clipped_to_100() -> None:
    table = _paired_table()
    x = 100 * np.array(SEEDS6["X2"])
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert (_row(table, "X2")["ci95_low"], _row(table, "X2")["ci95_high"]) == pytest.approx(
        (low, high))
    perfect = experiment_table(_trials(top1s={"Benchmark": [1.0, 0.999, 1.0], "E1": [1.0]}))
    assert _row(perfect, "Benchmark")["ci95_high"] == 100.0
    assert _row(perfect, "Benchmark")["ci95_low"] < 100.0
    assert math.isnan(_row(perfect, "E1")["ci95_low"])  # one seed: no interval


def test_below_three_seeds_no_claim_but_the_detectable_difference() -> None:
    table = _paired_table()
    x4 = _row(table, "X4")
    assert x4["n_paired"] == 2 and not x4["can_claim"]
    assert all(math.isnan(x4[k]) for k in ("p_paired", "p_holm", "tost_p", "p_wilcoxon"))
    assert pd.isna(x4["equivalent"])
    # the grid's spread: paired differences (points) pooled over X1..X4 by their dof
    bench = 100 * np.array(SEEDS6["Benchmark"])
    diffs = [100 * np.array(SEEDS6[n]) - bench[: len(SEEDS6[n])] for n in ("X1", "X2", "X3", "X4")]
    spread = math.sqrt(sum(((d - d.mean()) ** 2).sum() for d in diffs)
                       / sum(len(d) - 1 for d in diffs))
    power = TTestPower()
    assert x4["mde"] == pytest.approx(power.solve_power(nobs=2, alpha=0.05, power=0.8) * spread,
                                      rel=1e-6)
    assert _row(table, "X1")["mde"] == pytest.approx(
        power.solve_power(nobs=6, alpha=0.05, power=0.8) * spread, rel=1e-6)
    needed = power.solve_power(effect_size=0.1 / spread, alpha=0.05, power=0.8)
    assert x4["seeds_needed"] == math.ceil(needed)
    note = claim_note(table)
    assert note is not None and note.startswith("no claim can be made for X4:") and "\n" not in note
    assert "Holm-adjusted over 3 comparisons" in note  # X1..X3 still tested
    assert f"{x4['mde']:.3g} points" in note and f"needs {math.ceil(needed)} seeds" in note


def test_claim_note_names_test_and_margin_when_every_experiment_has_three_seeds() -> None:
    trials = _trials(top1s={k: v for k, v in SEEDS6.items() if k != "X4"})
    note = claim_note(experiment_table(trials, margin=0.2))
    assert note is not None and "no claim" not in note
    assert "Holm-adjusted over 3 comparisons" in note and "±0.2 points" in note
    assert claim_note(experiment_table(_trials(top1s={"Benchmark": [0.9, 0.91]}))) is None


def test_without_benchmark_nothing_is_compared() -> None:
    table = experiment_table(_trials(top1s={"X1": SEEDS6["X1"]}))
    row = _row(table, "X1")
    assert row["n_paired"] == 0 and not row["can_claim"] and pd.isna(row["equivalent"])
    assert math.isnan(row["mde"]) and claim_note(table) is None


def test_json_rows_carry_the_statistics() -> None:
    rows = {r["experiment"]: r for r in report_rows(_paired_table())}
    for key in ("p_paired", "p_holm", "tost_p", "equivalent", "ci95_low", "ci95_high", "n",
                "mde", "n_paired", "can_claim", "margin", "seeds_needed", "p_wilcoxon"):
        assert all(key in row for row in rows.values()), key
    assert rows["X1"]["equivalent"] is True and rows["X2"]["equivalent"] is False
    assert rows["X4"]["equivalent"] is None and rows["X4"]["p_paired"] is None
    assert rows["X4"]["can_claim"] is False and rows["X1"]["n_paired"] == 6
