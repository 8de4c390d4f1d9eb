"""The benchmark harness: goals, result rows, interleaved timing and the common CLI.

Every figure a benchmark reports is a ratio of two things measured side by side in the
same process and the same minutes: repetitions are interleaved (A, B, A, B, ...) and
medians taken, so load from other work on a shared machine falls on both sides. No
benchmark asserts an absolute time.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

__all__ = [
    "Goal",
    "Options",
    "Row",
    "format_table",
    "interleave",
    "main",
    "median",
    "median_ratio",
    "synchronize",
    "timed",
]

# The benchmarks start their services with the tests' module (tests/services.py): the
# scripts run as `python bench/NAME.py`, so the repo root goes on the path for it.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))

Op = Literal[">=", "<=", "<", "within"]


@dataclass(frozen=True)
class Goal:
    """What a ratio must satisfy: ``ratio op target``, or ``|ratio - target| <= tolerance``."""

    op: Op
    target: float
    tolerance: float = 0.0

    def met(self, ratio: float) -> bool:
        if self.op == ">=":
            return ratio >= self.target
        if self.op == "<=":
            return ratio <= self.target
        if self.op == "<":
            return ratio < self.target
        return abs(ratio - self.target) <= self.tolerance

    def __str__(self) -> str:
        if self.op == "within":
            return f"{self.target:.4f} ± {self.tolerance:g}"
        return f"{self.op} {self.target:g}"


@dataclass(frozen=True)
class Row:
    """One line of the table: a measured ratio against its goal, and what was measured."""

    name: str
    ratio: float
    goal: str
    met: bool
    detail: str = ""

    @classmethod
    def judged(cls, name: str, ratio: float, goal: Goal, detail: str = "") -> Row:
        return cls(name, ratio, str(goal), goal.met(ratio), detail)


@dataclass(frozen=True)
class Options:
    """The flags every benchmark script takes."""

    quick: bool
    device: torch.device
    json_path: Path | None


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device | None = None) -> float:
    """Seconds ``fn`` takes, its device work included."""
    if device is not None:
        synchronize(device)
    start = time.perf_counter()
    fn()
    if device is not None:
        synchronize(device)
    return time.perf_counter() - start


def interleave(measures: Sequence[Callable[[], float]], reps: int) -> list[list[float]]:
    """Run the measures round-robin ``reps`` times (A, B, A, B, ...); one list per measure.

    Each measure returns the seconds it measured (it may subtract parts it excludes).
    """
    samples: list[list[float]] = [[] for _ in measures]
    for _ in range(reps):
        for i, measure in enumerate(measures):
            samples[i].append(measure())
    return samples


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of the pairwise ratios of side-by-side repetitions."""
    return median([n / d for n, d in zip(numerators, denominators, strict=True)])


def format_table(rows: Sequence[Row]) -> str:
    """A fixed-width table: row, ratio, goal, met."""
    width = max([len("row"), *(len(r.name) for r in rows)])
    lines = [f"{'row':<{width}}  {'ratio':>10}  {'goal':<17}  met",
             f"{'-' * width}  {'-' * 10}  {'-' * 17}  ---"]
    for r in rows:
        shown = "error" if r.ratio != r.ratio else f"{r.ratio:.4g}"
        lines.append(f"{r.name:<{width}}  {shown:>10}  {r.goal:<17}  {'yes' if r.met else 'no'}")
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None, description: str) -> Options:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    return Options(quick=args.quick, device=torch.device(args.device), json_path=args.json)


def main(measure: Callable[[Options], list[Row]], description: str,
         argv: Sequence[str] | None = None) -> int:
    """Parse the flags, measure, print the rows (and their details), write JSON if asked."""
    from tests.services import quiet_services  # after REPO is on the path

    quiet_services()  # what the benchmarks start must not phone home
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = _parse(argv, description)
    rows = measure(options)
    print(format_table(rows))
    for r in rows:
        if r.detail:
            print(f"  {r.name}: {r.detail}")
    if options.json_path is not None:
        options.json_path.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    sys.stdout.flush()
    return 0
