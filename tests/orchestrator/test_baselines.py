"""Budget-matched baselines in closed form: the same totals as summing every epoch, in time
that does not grow with the epochs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from orchestrator.baselines import planned_evaluations, uniform_schedule
from trainers.budget import annealing, first_annealed_epoch, planned_counts
from trainers.experiments import EXPERIMENTS
from trainers.schedule import Breakpoint, DataIncrement, Piecewise, counts

SCHEDULES = [EXPERIMENTS[name] for name in ("Benchmark", "E1", "E5", "E12", "E20")] + [
    DataIncrement(s=0.3),
    Piecewise(breakpoints=[Breakpoint(at=0.0, fraction=0.2), Breakpoint(at=0.6, fraction=0.9)]),
]


@pytest.mark.parametrize("anneal", [0.1, 0.5, 0.7, 0.875, 1.0])
@pytest.mark.parametrize("selection", ["fixed", "loss_soft"])
def test_first_annealed_epoch_is_where_annealing_starts(selection: str, anneal: float) -> None:
    for epochs in range(1, 120):
        per_epoch = [t for t in range(epochs) if annealing(selection, anneal, t, epochs)]
        assert first_annealed_epoch(selection, anneal, epochs) == (
            per_epoch[0] if per_epoch else epochs), (epochs, anneal)
        assert per_epoch == list(range(per_epoch[0], epochs)) if per_epoch else True


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.method)
@pytest.mark.parametrize(("selection", "anneal"), [("fixed", 0.875), ("loss_soft", 0.75),
                                                   ("loss_soft", 0.3), ("loss_soft", 1.0)])
def test_planned_evaluations_sum_the_per_epoch_budgets(schedule: object, selection: str,
                                                       anneal: float) -> None:
    for n, epochs in [(1, 1), (7, 3), (100, 10), (60_000, 300), (1000, 4097)]:
        spelled = sum(planned_counts(selection, anneal,
                                     counts(schedule, n, epochs), n))  # type: ignore[arg-type]
        assert planned_evaluations(schedule, selection, anneal, n,  # type: ignore[arg-type]
                                   epochs) == spelled, (n, epochs)


@pytest.mark.parametrize("selection", ["fixed", "loss_soft"])
def test_uniform_twin_matches_a_billion_epochs_in_constant_time(selection: str) -> None:
    n, epochs = 100, 10**9
    start = time.perf_counter()
    for name in ("E1", "E5", "E12"):
        total = planned_evaluations(EXPERIMENTS[name], selection, 0.875, n, epochs)
        twin = uniform_schedule(total, n, epochs, selection, 0.875)
        assert abs(planned_evaluations(twin, selection, 0.875, n, epochs) - total) <= epochs / 2
    assert time.perf_counter() - start < 1.0


def test_planning_twins_never_imports_torch() -> None:
    """Budget-matched twins are planned on the driver: no torch (seconds of import)."""
    script = ("import sys\nfrom orchestrator.grid import load_grid\n"
              "grid = load_grid('budget-matched')\n"
              "assert any(p.twin_of for p in grid.plans().values()) and grid.trials()\n"
              "assert 'torch' not in sys.modules, 'torch imported'\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
