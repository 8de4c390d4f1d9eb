"""The order trials run in: no experiment gains or loses by its place in the grid.

Trials run seed-major (every experiment's seed 0, then every experiment's seed 1 ...),
and inside each seed the experiments are shuffled by a generator seeded from the grid's
``order_seed`` and the seed: every experiment's seeds are spread over the whole grid, the
Benchmark is not always first (it would pay every cold start and the machine's busiest
minute), and a re-run of the same grid runs in the same order. Pure, on the driver.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["interleave"]


class _Trial(Protocol):
    @property
    def experiment(self) -> str: ...

    @property
    def seed(self) -> int: ...


T = TypeVar("T", bound=_Trial)


def interleave(trials: Sequence[T], order_seed: int) -> list[T]:
    """``trials`` seed-major, experiments shuffled per seed from (``order_seed``, seed)."""
    by_seed: dict[int, list[T]] = {}
    for trial in trials:
        by_seed.setdefault(trial.seed, []).append(trial)
    ordered: list[T] = []
    for seed in sorted(by_seed):
        group = sorted(by_seed[seed], key=lambda t: t.experiment)  # input order never counts
        random.Random(f"lessdata-order/{order_seed}/{seed}").shuffle(group)
        ordered.extend(group)
    return ordered
