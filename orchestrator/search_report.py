"""The report of a schedule search, on the driver: the front, the cheapest schedule that
holds the constraint, the plot, the JSON. ``lessdata report NAME`` calls it for a grid with
a ``search:`` block; it reads ``aggregate``'s tables and ``orchestrator.pareto`` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from orchestrator.aggregate import claim_note, experiment_table, trial_table
from orchestrator.pareto import (
    SearchPoint,
    best_constrained,
    fixed_points,
    front,
    search_points,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

    from orchestrator.plan import Plan

__all__ = ["SearchReport", "front_figure", "make_search_report", "print_search_report",
           "render_search"]

FIGURE = "search_front"


@dataclass(frozen=True)
class SearchReport:
    """A search's points, its front and what the statistics can claim."""

    plan: Plan
    margin: float
    points: list[SearchPoint]
    fixed: list[SearchPoint]
    pareto: list[SearchPoint]
    best: SearchPoint | None
    table: pd.DataFrame
    paths: list[Path] = field(default_factory=list)

    def _power(self, column: str) -> float | None:
        rows = self.table[self.table["experiment"].isin([p.experiment for p in self.points])]
        values = pd.to_numeric(rows[column], errors="coerce").dropna() if len(rows) else []
        return float(max(values)) if len(values) else None

    def as_json(self) -> dict[str, Any]:
        """What ``lessdata report --json`` prints for a search."""
        search = self.plan.grid.search
        assert search is not None
        return {
            "search": {"algorithm": search.algorithm, "samples": search.samples,
                       "seeds": search.seed_count(), "objectives": search.objectives,
                       "tried": len(self.points)},
            "constraint": (search.constraint.model_dump() if search.constraint else None),
            "margin": self.margin,
            "pareto": [_entry(p) for p in self.pareto],
            "best_constrained": _entry(self.best) if self.best else None,
            "points": [p.as_dict() for p in self.points],
            "fixed_points": [p.as_dict() for p in self.fixed],
            "mde": self._power("mde"),
            "seeds_needed": self._power("seeds_needed"),
            "claim_note": claim_note(self.table) if not self.table.empty else None,
        }


def _entry(p: SearchPoint) -> dict[str, Any]:
    return {"experiment": p.experiment, "schedule": p.schedule,
            "evaluation_ratio": p.evaluation_ratio, "top1_mean": p.top1_mean,
            "top1_std": p.top1_std, "n": p.n, "equivalent": p.equivalent}


def make_search_report(tracking_uri: str, plan: Plan, out_dir: Path | None,
                       margin: float) -> SearchReport:
    """The search's report from MLflow; with ``out_dir``, the plot and CSV written (and
    logged to the grid's report run). The constraint's margin, when the search has one,
    is the equivalence margin; else ``margin``."""
    search = plan.grid.search
    assert search is not None
    margin = search.constraint.margin if search.constraint else margin
    trials = trial_table(tracking_uri, plan.name)
    table = experiment_table(trials, margin=margin)
    points = search_points(table, trials)
    fixed = fixed_points(table, trials)
    best = best_constrained(points) if search.constraint else None
    report = SearchReport(plan, margin, points, fixed, front(points), best, table)
    if out_dir is None:
        return report
    from orchestrator.report import log_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "search.csv"
    pd.DataFrame([{**p.as_dict(), "pareto": p in report.pareto}
                  for p in [*fixed, *points]]).to_csv(csv, index=False)
    paths = [csv]
    figure = front_figure(report)
    for fmt in ("png", "pdf"):
        paths.append(out / f"{FIGURE}.{fmt}")
        figure.savefig(paths[-1], dpi=150)
    log_report(tracking_uri, plan.name, paths)
    return SearchReport(plan, margin, points, fixed, report.pareto, best, table, paths)


def _xy(points: list[SearchPoint]) -> tuple[list[float], list[float], list[float]]:
    x = [100 * (p.evaluation_ratio if p.evaluation_ratio is not None else math.nan)
         for p in points]
    return x, [100 * p.top1_mean for p in points], [100 * (p.top1_std or 0.0) for p in points]


def front_figure(report: SearchReport) -> Figure:
    """Every tried schedule faded, the front on top (mean ± std over seeds), the fixed
    points (Benchmark, included experiments) labelled beside them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x, y, err = _xy(report.points)
    ax.errorbar(x, y, yerr=err, fmt="o", color="tab:blue", alpha=0.25,
                label=f"tried ({len(report.points)})")
    x, y, err = _xy(report.pareto)
    ax.errorbar(x, y, yerr=err, fmt="o", color="tab:blue", capsize=3, label="Pareto front")
    ax.plot(x, y, drawstyle="steps-post", color="tab:blue", linewidth=1)
    for p, px, py in zip(report.pareto, x, y, strict=True):
        ax.annotate(p.experiment, (px, py), textcoords="offset points", xytext=(4, -10),
                    fontsize=7)
    x, y, err = _xy(report.fixed)
    ax.errorbar(x, y, yerr=err, fmt="D", color="black", capsize=3, label="grid experiments")
    for p, px, py in zip(report.fixed, x, y, strict=True):
        ax.annotate(p.experiment, (px, py), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    if report.best is not None:
        (bx,), (by,), _ = _xy([report.best])
        ax.scatter([bx], [by], s=180, facecolors="none", edgecolors="tab:red",
                   label=f"cheapest equivalent ({report.best.experiment})")
    search = report.plan.grid.search
    assert search is not None
    ax.set(xlabel="evaluations (% of Benchmark)", ylabel="top-1 accuracy (%, best epoch)",
           title=f"schedule search ({search.algorithm}, {len(report.points)} schedules, "
                 f"n = {search.seed_count()} seeds): {report.plan.grid.dataset}, "
                 f"{report.plan.grid.epochs} epochs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def render_search(report: SearchReport, console: Console) -> None:
    """The front as a table, then the constrained answer and what can be claimed."""
    from rich.table import Table

    search = report.plan.grid.search
    assert search is not None
    console.print(f"schedule search {report.plan.name}: {len(report.points)} of "
                  f"{search.samples} schedules tried ({search.algorithm}, "
                  f"{search.seed_count()} seeds each)")
    if not report.points:
        console.print("no finished schedule yet")
        return
    out = Table(title="Pareto front: accuracy vs evaluations (mean ± std over seeds)",
                caption="front among the search's schedules; grid experiments are fixed "
                        "points; equivalent: TOST vs Benchmark at ±"
                        f"{report.margin:g} points", caption_justify="left")
    for header in ("Schedule", "In words", "Evaluations % of B", "Top-1 % (n)", "Equivalent"):
        out.add_column(header, justify="left" if header in ("Schedule", "In words")
                       else "right")
    for p in [*report.fixed, *report.pareto]:
        std = "—" if p.top1_std is None else f"{100 * p.top1_std:.2f}"
        top1 = f"{100 * p.top1_mean:.2f} ± {std} ({p.n})"
        ratio = None if p.evaluation_ratio is None else 100 * p.evaluation_ratio
        equivalent = "—" if p.equivalent is None else ("yes" if p.equivalent else "no")
        out.add_row(p.experiment, p.schedule, _cell(ratio, ".1f"), top1, equivalent)
    console.print(out)
    if search.constraint is not None:
        if report.best is not None:
            ratio = 100 * (report.best.evaluation_ratio or math.nan)
            console.print(f"cheapest schedule equivalent to the Benchmark (±{report.margin:g} "
                          f"points): {report.best.experiment} {report.best.schedule}, "
                          f"{ratio:.1f}% of its evaluations")
        else:
            console.print(f"no schedule is shown equivalent to the Benchmark at "
                          f"±{report.margin:g} points")
    note = claim_note(report.table) if not report.table.empty else None
    if note:
        console.print(note)


def print_search_report(tracking_uri: str, plan: Plan, out_dir: Path | None, margin: float,
                        as_json: bool) -> int:
    """``lessdata report NAME`` for a search: prints it, returns the exit code."""
    import json

    from rich.console import Console

    report = make_search_report(tracking_uri, plan, out_dir, margin)
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
        return 0
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    render_search(report, console)
    if out_dir:
        console.print(f"wrote {out_dir}/ (search.csv, {FIGURE}.png/.pdf; also logged to MLflow)")
    return 0
