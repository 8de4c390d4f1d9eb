"""orchestrator.statistics on fixed data against scipy and statsmodels, and at its boundaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from orchestrator.statistics import (
    detectable_difference,
    holm,
    mean_ci95,
    paired_t_p,
    seeds_needed,
    tost_p,
    wilcoxon_p,
)

# top-1 (fraction) of an experiment and the Benchmark, seeds 0..7 in order
X = np.array([0.9912, 0.9895, 0.9921, 0.9903, 0.9930, 0.9881, 0.9910, 0.9899])
B = np.array([0.9905, 0.9901, 0.9904, 0.9890, 0.9911, 0.9893, 0.9902, 0.9894])


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_paired_t_equals_scipy_ttest_rel(n: int) -> None:
    assert paired_t_p(X[:n], B[:n]) == pytest.approx(stats.ttest_rel(X[:n], B[:n]).pvalue)
    assert paired_t_p(B[:n], X[:n]) == pytest.approx(paired_t_p(X[:n], B[:n]))  # two-sided


def test_paired_t_is_not_welch() -> None:  # pairing by seed is the point: it must differ
    assert paired_t_p(X, B) != pytest.approx(stats.ttest_ind(X, B, equal_var=False).pvalue)


@pytest.mark.parametrize("n", [6, 7, 8])
def test_wilcoxon_equals_scipy_from_six_pairs(n: int) -> None:
    assert wilcoxon_p(X[:n], B[:n]) == pytest.approx(stats.wilcoxon(X[:n], B[:n]).pvalue)


def test_wilcoxon_is_nan_below_six_pairs() -> None:
    assert math.isnan(wilcoxon_p(X[:5], B[:5]))


@pytest.mark.parametrize("p", [
    [0.01, 0.04, 0.03, 0.005],
    [0.2, 0.2, 0.01],  # ties
    [0.5, 0.9, 0.8, 0.7, 0.6],  # caps at 1
    [0.001],
])
def test_holm_equals_statsmodels(p: list[float]) -> None:
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_holm_leaves_nan_out_of_the_count() -> None:
    adjusted = holm([0.01, math.nan, 0.04, 0.03])
    assert math.isnan(adjusted[1])
    expected = multipletests([0.01, 0.04, 0.03], method="holm")[1]
    assert [adjusted[0], adjusted[2], adjusted[3]] == pytest.approx(list(expected))
    assert holm([]) == [] and all(math.isnan(v) for v in holm([math.nan, math.nan]))


@pytest.mark.parametrize("margin", [0.0005, 0.001, 0.003])
@pytest.mark.parametrize("n", [3, 8])
def test_tost_equals_statsmodels_ttost_paired(margin: float, n: int) -> None:
    expected = ttost_paired(X[:n], B[:n], -margin, margin)[0]
    assert tost_p(X[:n], B[:n], margin) == pytest.approx(float(expected))


def test_tost_finds_equivalence_only_inside_a_wide_enough_margin() -> None:
    assert tost_p(X, B, 0.003) < 0.05  # mean difference 0.0007, sd 0.0007
    assert tost_p(X, B, 0.0005) > 0.5  # the mean difference is outside this margin


def test_tost_refuses_a_non_positive_margin() -> None:
    with pytest.raises(ValueError, match="margin=0"):
        tost_p(X, B, 0)


def test_misaligned_pairs_are_refused() -> None:
    with pytest.raises(ValueError, match="aligned"):
        paired_t_p(X[:3], B[:4])


@pytest.mark.parametrize("function", [paired_t_p, lambda x, y: tost_p(x, y, 0.001)])
def test_below_two_pairs_there_is_no_test(function: object) -> None:
    assert callable(function)
    assert math.isnan(function(X[:1], B[:1])) and math.isnan(function(X[:0], B[:0]))


def test_zero_spread_gives_the_limits() -> None:
    same = np.array([0.99, 0.98, 0.97])
    assert paired_t_p(same, same) == 1.0 and wilcoxon_p(np.ones(6), np.ones(6)) == 1.0
    assert paired_t_p(same + 0.001, same) == 0.0
    assert tost_p(same + 0.0005, same, 0.001) == 0.0
    assert tost_p(same + 0.001, same, 0.001) == 1.0  # on the margin is not inside it


@pytest.mark.parametrize("values", [
    [99.9, 100.0, 100.0], [100.0, 100.0], [0.0, 0.1, 0.0], [50.0, 99.0, 1.0], [10.0, 11.0],
])
def test_ci_stays_in_range_and_holds_the_mean(values: list[float]) -> None:
    low, high = mean_ci95(values)
    assert 0.0 <= low <= np.mean(values) <= high <= 100.0


def test_ci_equals_the_t_interval_away_from_the_bounds() -> None:
    v = 100 * X
    expected = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert mean_ci95(v) == pytest.approx(expected)
    assert all(math.isnan(end) for end in mean_ci95(v[:1]))
    assert mean_ci95([0.999, 1.0, 1.0], 0.0, 1.0)[1] == 1.0  # fractions clip at 1


@pytest.mark.parametrize("n", [2, 3, 5, 10, 40])
def test_detectable_difference_equals_statsmodels(n: int) -> None:
    effect = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8)
    assert detectable_difference(0.002, n) == pytest.approx(effect * 0.002, rel=1e-6)


def test_detectable_difference_boundaries() -> None:
    assert math.isnan(detectable_difference(0.002, 1))
    assert math.isnan(detectable_difference(math.nan, 5))
    assert detectable_difference(0.0, 5) == 0.0
    assert detectable_difference(0.002, 3) > detectable_difference(0.002, 4)  # more seeds, less


@pytest.mark.parametrize("difference", [0.003, 0.001, -0.001, 0.0005])
def test_seeds_needed_is_statsmodels_rounded_up(difference: float) -> None:
    nobs = TTestPower().solve_power(effect_size=abs(difference) / 0.002, alpha=0.05, power=0.8)
    assert seeds_needed(difference, 0.002) == math.ceil(nobs)


def test_seeds_needed_boundaries() -> None:
    assert seeds_needed(1.0, 0.002) == 2  # a huge effect still needs two pairs for a spread
    assert math.isnan(seeds_needed(0.0, 0.002)) and math.isnan(seeds_needed(0.001, 0.0))
    assert math.isnan(seeds_needed(0.001, math.nan)) and math.isnan(seeds_needed(1e-7, 0.002))
    n = int(seeds_needed(0.001, 0.002))
    assert detectable_difference(0.002, n) <= 0.001 < detectable_difference(0.002, n - 1)
