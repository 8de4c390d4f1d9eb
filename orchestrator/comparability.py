"""Whether a grid's runtimes compare: training time per image across its trials.

The paper's claim is a proportion between evaluations and runtime, so a report may print
a runtime saving only when the machine ran every experiment at the same speed. Per trial
the speed is ``train_s / evaluations`` (training work only: the test pass and selection
are timed apart). A grid's runtimes are *comparable* when

1. the speed varied little across all its trials (coefficient of variation at most
   ``MAX_CV``): a machine whose speed changed during the grid (other jobs, throttling, a
   cold start) fails here, whatever the order; and
2. no experiment's mean speed differs from the Benchmark's by more than the noise the
   seeds show (``SIGMAS`` standard errors of the ratio) and ``FLOOR`` together.

Otherwise the report marks its runtime, energy and CO2 changes and says why. The same
test on CPU time (``train_cpu_s``), which other work on a shared machine inflates far
less, is given beside it. Pure functions of a trial table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.claims import BENCHMARK

__all__ = ["MAX_CV", "Comparability", "runtime_comparability"]

MAX_CV = 0.10
"""Largest coefficient of variation of the per-image training time across a grid's trials."""
FLOOR = 0.05
"""Differences of per-image speed under 5% are never flagged (rounding, the last batch)."""
SIGMAS = 3.0


@dataclass(frozen=True)
class Comparability:
    comparable: bool
    note: str
    clock: str
    """'train_s' (wall time of the training work) or 'train_cpu_s'."""
    ratios: dict[str, float]
    """Experiment -> its mean per-image time over the Benchmark's."""
    cv: float


def _per_image(trials: pd.DataFrame, clock: str) -> pd.Series:
    evaluations = trials["evaluations"].astype(float)
    seconds = trials[clock].astype(float)
    ok = (evaluations > 0) & np.isfinite(seconds) & (seconds > 0)
    return (seconds / evaluations).where(ok)


def runtime_comparability(trials: pd.DataFrame, clock: str = "train_s") -> Comparability:
    """Decide from the trial table (experiment, evaluations, ``clock``) and say why."""
    if clock not in trials or trials.empty:
        return Comparability(False, f"no {clock} recorded: runtimes cannot be compared",
                             clock, {}, math.nan)
    per_image = _per_image(trials, clock)
    valid = per_image.dropna()
    if len(valid) < 2:
        return Comparability(False, f"fewer than 2 trials with a {clock} recorded: nothing "
                             "to compare", clock, {}, math.nan)
    cv = float(valid.std(ddof=1) / valid.mean())
    groups = {name: per_image[idx].dropna().to_numpy(float)
              for name, idx in trials.groupby("experiment", sort=False).groups.items()}
    bench = groups.get(BENCHMARK)
    if bench is None or len(bench) == 0:
        return Comparability(False, "no Benchmark trial: runtime changes have no reference",
                             clock, {}, cv)
    ratios = {name: float(v.mean() / bench.mean()) for name, v in groups.items() if len(v)}
    what = "training time per image" if clock == "train_s" else "CPU time per image"
    if cv > MAX_CV:
        spread = (valid.max() - valid.min()) / valid.min()
        # The experiment furthest from the Benchmark, named: one slowed experiment (a
        # contended slot, a sleep) shows there, a machine slowed for all shows in all.
        worst = max((n for n in ratios if n != BENCHMARK), key=lambda n: abs(ratios[n] - 1),
                    default=None)
        most = (f"; furthest from the Benchmark: {worst} ({100 * (ratios[worst] - 1):+.0f}%)"
                if worst is not None else "")
        return Comparability(
            False, f"{what} varied {100 * spread:.0f}% across trials (CV {100 * cv:.0f}%, "
            f"limit {100 * MAX_CV:.0f}%): the machine's speed changed during the grid{most}",
            clock, ratios, cv)
    worst_name, worst_excess = None, 0.0
    for name, values in groups.items():
        if name == BENCHMARK or not len(values):
            continue
        limit = max(FLOOR, SIGMAS * _ratio_se(values, bench))
        excess = abs(ratios[name] - 1.0) - limit
        if excess > worst_excess:
            worst_name, worst_excess = name, excess
    if worst_name is not None:
        change = 100 * (ratios[worst_name] - 1.0)
        return Comparability(
            False, f"{worst_name}'s {what} was {abs(change):.0f}% "
            f"{'above' if change > 0 else 'below'} the Benchmark's, more than the seeds' "
            "noise: runtime changes are not the schedule's alone", clock, ratios, cv)
    return Comparability(
        True, f"runtimes compare: {what} within {100 * cv:.1f}% (CV) across trials, every "
        f"experiment within the seeds' noise of the Benchmark ({clock})", clock, ratios, cv)


def _ratio_se(values: np.ndarray, bench: np.ndarray) -> float:
    """Standard error of mean(values) / mean(bench), by the delta method; 0 below 2 seeds."""
    if len(values) < 2 or len(bench) < 2:
        return 0.0
    cv_a = values.std(ddof=1) / values.mean() / math.sqrt(len(values))
    cv_b = bench.std(ddof=1) / bench.mean() / math.sqrt(len(bench))
    return float(values.mean() / bench.mean() * math.hypot(cv_a, cv_b))
