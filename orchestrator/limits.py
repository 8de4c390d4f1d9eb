"""Caps on the size of a grid, which ``--allow-large`` lifts.

A grid file can ask for any number of seeds, epochs and trials in a few bytes
(``seeds: [0, ..., 99999]``, ``epochs: 1000000000``); expanding it builds one validated
config per trial and the driver would plan, record and schedule them all. Past these caps
the grid is refused in one line naming the cap and the flag, before anything connects: a
mistyped zero costs nothing, a really large grid costs one flag.

Planning itself is O(1) in the epochs (``orchestrator.baselines``, ``trainers.schedule``),
so the caps bound what a run would cost, not what checking it costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainers.errors import ConfigError

if TYPE_CHECKING:
    from orchestrator.grid import Grid

__all__ = ["ALLOW_FLAG", "MAX_EPOCHS", "MAX_SEEDS", "MAX_TRIALS", "check_size"]

MAX_TRIALS = 2_000
"""Trials of one grid (experiments, twins included, x seeds)."""
MAX_EPOCHS = 10_000
"""Epochs of any one trial."""
MAX_SEEDS = 1_000
"""Seeds of a grid (a count or a list)."""
ALLOW_FLAG = "--allow-large"


def check_size(grid: Grid) -> None:
    """ConfigError (one line) when ``grid`` passes a cap; O(experiments), never per trial."""
    plans = grid.plans()
    seeds = grid.seeds if isinstance(grid.seeds, int) else len(grid.seeds)
    epochs = max(plan.epochs for plan in plans.values())
    longest = next(name for name, plan in plans.items() if plan.epochs == epochs)
    trials = len(plans) * seeds
    over = []
    if seeds > MAX_SEEDS:
        over.append(f"{seeds:,} seeds is over the cap of {MAX_SEEDS:,}")
    if epochs > MAX_EPOCHS:
        over.append(f"{epochs:,} epochs ({longest}) is over the cap of {MAX_EPOCHS:,}")
    if trials > MAX_TRIALS:
        kinds = f"{len(plans):,} experiment" + ("s" if len(plans) > 1 else "")
        over.append(f"{trials:,} trials ({kinds} x {seeds:,} seeds) is over the cap of "
                    f"{MAX_TRIALS:,} per grid")
    if over:
        raise ConfigError(f"grid {grid.name}: " + "; ".join(over)
                          + f"; pass {ALLOW_FLAG} to plan it anyway")
