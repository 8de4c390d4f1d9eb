"""Statistics that can carry a claim about an experiment vs the Benchmark: pure functions.

Trials of one seed share their initial weights and data order across experiments, so an
experiment's accuracies and the Benchmark's are *paired* by seed: the tests here take two
arrays aligned by seed and work on their differences. Units are the caller's: every
function is unit-free except ``mean_ci95``, which clips to the range it is given.

- ``paired_t_p``: two-sided paired t-test (``scipy.stats.ttest_rel``).
- ``wilcoxon_p``: Wilcoxon signed-rank, the distribution-free check, from 6 pairs up
  (below 6 its smallest two-sided p is 1/16 > 0.05: it could never reject).
- ``holm``: Holm's step-down adjustment of one family of p-values.
- ``tost_p``: equivalence by two one-sided paired t-tests against ``±margin``.
- ``mean_ci95``: the t-interval of a mean, clipped to the possible range.
- ``detectable_difference`` / ``seeds_needed``: the paired t-test's power calculation
  (two-sided, alpha 0.05, power 0.8): the smallest true difference found 80% of the time
  with n seeds, and the seeds needed to find a given difference.

Degenerate inputs give NaN, never an exception: fewer than 2 pairs (no spread), or a
p-value asked of a test that cannot run. Where every difference is the same number the
spread is 0 and the t statistics are infinite: the p-values are then their limits (the
paired p is 0 for a non-zero difference and 1 for none; TOST's is 0 inside the margin and
1 on or outside it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "ALPHA",
    "MIN_SEEDS",
    "POWER",
    "WILCOXON_MIN_PAIRS",
    "detectable_difference",
    "holm",
    "mean_ci95",
    "paired_t_p",
    "seeds_needed",
    "tost_p",
    "wilcoxon_p",
]

ALPHA = 0.05
POWER = 0.8
MIN_SEEDS = 3  # below this a comparison carries no claim (a t-test on 2 pairs has 1 dof)
WILCOXON_MIN_PAIRS = 6
_MAX_SEEDS = 100_000  # seeds_needed gives up (NaN) past this


def _differences(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and aligned: {a.shape=} {b.shape=}")
    return a - b


def paired_t_p(x: ArrayLike, y: ArrayLike) -> float:
    """Two-sided p of the paired t-test of mean(x - y) = 0; NaN below 2 pairs."""
    from scipy import stats

    diff = _differences(x, y)
    if len(diff) < 2:
        return math.nan
    if np.ptp(diff) == 0:  # no spread: the limit of t -> ±inf, or 0/0 read as "no difference"
        return 1.0 if diff[0] == 0 else 0.0
    return float(stats.ttest_1samp(diff, 0.0).pvalue)


def wilcoxon_p(x: ArrayLike, y: ArrayLike) -> float:
    """Two-sided Wilcoxon signed-rank p of x - y; NaN below ``WILCOXON_MIN_PAIRS`` pairs."""
    from scipy import stats

    diff = _differences(x, y)
    if len(diff) < WILCOXON_MIN_PAIRS:
        return math.nan
    if not np.any(diff):  # every pair tied: nothing to rank
        return 1.0
    return float(stats.wilcoxon(diff).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order; NaN stays NaN and is not counted.

    The i-th smallest of m p-values is multiplied by (m - i), i = 0..m-1, then made
    non-decreasing in that order and capped at 1.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, float(p[index]) * (m - i)))
        adjusted[index] = running
    return [float(v) for v in adjusted]


def tost_p(x: ArrayLike, y: ArrayLike, margin: float) -> float:
    """p of the two one-sided paired t-tests that mean(x - y) lies inside (-margin, margin).

    Small p: the difference is within the margin (equivalence shown). NaN below 2 pairs.
    """
    from scipy import stats

    if not margin > 0:
        raise ValueError(f"the equivalence margin must be positive: {margin=}")
    diff = _differences(x, y)
    n = len(diff)
    if n < 2:
        return math.nan
    mean = float(diff.mean())
    if np.ptp(diff) == 0:
        return 0.0 if abs(mean) < margin else 1.0
    se = float(diff.std(ddof=1)) / math.sqrt(n)
    p_low = stats.t.sf((mean + margin) / se, n - 1)  # H0: mean <= -margin
    p_high = stats.t.cdf((mean - margin) / se, n - 1)  # H0: mean >= +margin
    return float(max(p_low, p_high))


def mean_ci95(values: ArrayLike, low: float = 0.0, high: float = 100.0
              ) -> tuple[float, float]:
    """The 95% t-interval of the mean of ``values``, clipped to [low, high]; NaNs below 2."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    n = len(v)
    if n < 2:
        return (math.nan, math.nan)
    mean = float(v.mean())
    half = float(stats.t.ppf(0.975, n - 1)) * float(v.std(ddof=1)) / math.sqrt(n)
    return (min(max(mean - half, low), high), max(min(mean + half, high), low))


def _power(effect: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample (paired) t-test at standardised effect ``effect``."""
    from scipy import stats

    df = n - 1
    crit = float(stats.t.isf(alpha / 2, df))
    shift = effect * math.sqrt(n)
    upper = float(stats.nct.sf(crit, df, shift))
    lower = float(stats.nct.cdf(-crit, df, shift))  # NaN when it underflows, far from 0
    return upper + (lower if math.isfinite(lower) else 0.0)


def detectable_difference(sd_diff: float, n: int, alpha: float = ALPHA,
                          power: float = POWER) -> float:
    """The smallest mean paired difference that ``n`` seeds find with ``power``.

    ``sd_diff`` is the standard deviation of the paired differences (the measured spread);
    the result is in its units. NaN below 2 seeds or without a finite spread; 0 when the
    spread is 0.
    """
    from scipy import optimize

    if n < 2 or not math.isfinite(sd_diff) or sd_diff < 0:
        return math.nan
    if sd_diff == 0:
        return 0.0
    hi = 1.0
    while _power(hi, n, alpha) < power:  # bracket the root: power rises with the effect
        hi *= 2.0
    effect = optimize.brentq(lambda d: _power(d, n, alpha) - power, 0.0, hi, xtol=1e-12)
    return float(effect) * sd_diff


def seeds_needed(difference: float, sd_diff: float, alpha: float = ALPHA,
                 power: float = POWER) -> float:
    """Seeds (pairs) the paired t-test needs to find ``difference`` with ``power``.

    Same units for ``difference`` and ``sd_diff``. At least 2; NaN when either is not a
    positive finite number (no spread measured, or no difference asked), or past 100,000.
    """
    ok = math.isfinite(difference) and math.isfinite(sd_diff) and difference != 0
    if not ok or sd_diff <= 0:
        return math.nan
    effect = abs(difference) / sd_diff
    lo, hi = 1, 2  # power(lo) < power <= power(hi), power rising with n
    while _power(effect, hi, alpha) < power:
        lo, hi = hi, hi * 2
        if hi > _MAX_SEEDS:
            return math.nan
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _power(effect, mid, alpha) >= power else (mid, hi)
    return float(hi)
