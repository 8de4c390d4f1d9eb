"""The report's figures, on the driver: each one a PNG and a PDF, drawn from the tidy tables.

- ``accuracy_vs_evaluations`` / ``accuracy_vs_energy``: mean top-1 per experiment with its
  95% CI (clipped to [0, 100]) as error bars, the Benchmark's mean and CI as a band, the
  Pareto front (cheaper and at least as accurate), one label per point placed where it
  overprints no other label, point or legend (``orchestrator.labels``). Points of equal
  cost are spread apart sideways so that each bar shows (the axis label says so).
- ``accuracy_per_epoch``: test top-1 per epoch, mean ± std over seeds, one panel per
  experiment with the Benchmark's in every panel, from an epoch table (``EPOCH_COLUMNS``).
- ``schedules``: the fraction of the data each epoch trains on, one panel per experiment.

Titles name the dataset, the epochs and the seeds (n). Reads ``experiment_table``'s columns
only (``orchestrator.aggregate``); no pyplot, so no global figure state.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from orchestrator.aggregate import BENCHMARK, experiment_order, pareto_mask
from orchestrator.labels import place_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["EPOCH_COLUMNS", "accuracy_figure", "epochs_figure", "schedules_figure", "subtitle",
           "write_figures"]

# The per-epoch table: one row per trial x epoch; epoch counts from 1; test_top1 is the
# test accuracy after that epoch as a fraction (0-1), as in the trial table.
EPOCH_COLUMNS = ("experiment", "seed", "epoch", "test_top1")
FORMATS = ("png", "pdf")
DPI = 150
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink", "tab:olive", "tab:cyan")


def write_figures(table: pd.DataFrame, out_dir: Path, epochs: pd.DataFrame | None = None
                  ) -> list[Path]:
    """Every figure as PNG and PDF under ``out_dir``; the per-epoch one only with ``epochs``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    relative = bool(table["evaluations_pct"].notna().any()) if len(table) else False
    x_col, x_label = (("evaluations_pct", "evaluations (% of Benchmark)") if relative
                      else ("evaluations", "evaluations (images trained on)"))
    figures = {
        "accuracy_vs_evaluations": accuracy_figure(table, x_col, x_label),
        "accuracy_vs_energy": accuracy_figure(table, "energy_kwh_mean",
                                              "energy (Wh, mean over seeds)", scale=1000.0),
        "schedules": schedules_figure(table),
    }
    if epochs is not None:
        figures["accuracy_per_epoch"] = epochs_figure(epochs, table)
    paths = []
    for name, fig in figures.items():
        for fmt in FORMATS:
            path = out_dir / f"{name}.{fmt}"
            fig.savefig(path, dpi=DPI)
            paths.append(path)
    return paths


# -- titles --------------------------------------------------------------------------------


def _seeds(counts: Sequence[int]) -> str:
    low, high = min(counts), max(counts)
    return f"n = {low} seed{'s' * (high != 1)}" if low == high else f"n = {low}-{high} seeds"


def subtitle(table: pd.DataFrame, seeds: bool = True) -> str:
    """'mnist, 4 epochs, n = 3 seeds': what a figure's numbers come from."""
    if table.empty:
        return "no finished trials"
    datasets = sorted({str(d) for d in table["dataset"] if isinstance(d, str) and d})
    bench = table[table["experiment"] == BENCHMARK]
    epochs = pd.to_numeric((bench if len(bench) else table)["epochs"], errors="coerce").max()
    parts = [", ".join(datasets) or "dataset unknown"]
    if math.isfinite(epochs):
        parts.append(f"{int(epochs)} epochs")
    if seeds:
        parts.append(_seeds([int(n) for n in table["n"]]))
    return ", ".join(parts)


def _figure(width: float = 8.0, height: float = 5.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure text with
    return fig


def _freeze_layout(fig: Figure) -> None:
    """Lay the figure out once and keep it: labels placed after this stay where they are."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


# -- accuracy vs a cost --------------------------------------------------------------------


def _spread_equal(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """x with points of (nearly) equal value moved apart sideways; whether any moved."""
    shifted, moved = x.astype(float).copy(), False
    if len(x) == 0:
        return shifted, moved
    step = 0.012 * (float(np.ptp(x)) or abs(float(x[0])) or 1.0)  # of the span, else the size
    order = np.argsort(x, kind="stable")
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] - x[order[i]] <= 0.5 * step:
            j += 1
        if j > i:  # a run of k equal points: centred on their value, one step apart
            k = j - i + 1
            for rank, index in enumerate(order[i:j + 1]):
                shifted[index] = x[index] + (rank - (k - 1) / 2) * step
            moved = True
        i = j + 1
    return shifted, moved


def accuracy_figure(table: pd.DataFrame, x_col: str, x_label: str, scale: float = 1.0
                    ) -> Figure:
    """Mean top-1 with 95% CI bars vs the cost ``x_col`` (times ``scale``); Pareto front."""
    fig = _figure()
    ax = fig.add_subplot()
    name = x_label.split(" (")[0]
    ax.set(ylabel="top-1 accuracy (%, best epoch)",
           title=f"accuracy vs {name}: {subtitle(table)}")
    ax.grid(alpha=0.3)
    ok = (np.isfinite(table[x_col].astype(float)) & np.isfinite(table["top1_mean"].astype(float))
          if len(table) else np.array([], dtype=bool))
    data = table[ok]
    if data.empty:
        ax.set_xlabel(x_label)
        ax.text(0.5, 0.5, f"no data for {x_label}", transform=ax.transAxes, ha="center")
        return fig
    cost = scale * data[x_col].to_numpy(float)
    y = 100 * data["top1_mean"].to_numpy(float)
    low = np.nan_to_num(data["ci95_low"].to_numpy(float), nan=0.0)
    high = np.nan_to_num(data["ci95_high"].to_numpy(float), nan=0.0)
    has_ci = np.isfinite(data["ci95_low"].to_numpy(float))
    yerr = np.where(has_ci, [np.maximum(y - low, 0), np.maximum(high - y, 0)], 0.0)
    x, moved = _spread_equal(cost)
    ax.set_xlabel(x_label + ("; equal values spread apart" if moved else ""))
    _benchmark_band(ax, data)
    ax.errorbar(x, y, yerr=yerr, fmt="o", ms=5, capsize=3, color="tab:blue", zorder=3,
                label="mean top-1 (95% CI)")
    front = np.array(pareto_mask(list(cost), list(y)))
    order = np.argsort(x[front])
    ax.plot(x[front][order], y[front][order], "--s", mfc="none", ms=11, color="tab:red",
            zorder=2, label="Pareto front")
    ax.margins(x=0.1, y=0.15)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    _freeze_layout(fig)
    bottom, top = ax.get_ylim()
    ax.set(xlim=ax.get_xlim(), ylim=(max(bottom, -0.5), min(top, 100.5)))  # no 102% ticks
    place_labels(ax, [str(n) for n in data["experiment"]], x, y, yerr)
    return fig


def _benchmark_band(ax: Axes, data: pd.DataFrame) -> None:
    bench = data[data["experiment"] == BENCHMARK]
    if bench.empty:
        return
    mean = 100 * float(bench["top1_mean"].iloc[0])
    ax.axhline(mean, color="0.4", lw=0.8, ls=":", zorder=1, label="Benchmark mean, 95% CI")
    low, high = float(bench["ci95_low"].iloc[0]), float(bench["ci95_high"].iloc[0])
    if math.isfinite(low) and math.isfinite(high):
        ax.axhspan(low, high, color="0.5", alpha=0.12, lw=0, zorder=0)


# -- accuracy per epoch --------------------------------------------------------------------


def _panels(count: int, width: float = 2.6, height: float = 2.0
            ) -> tuple[Figure, list[Axes]]:
    cols = max(1, min(5, count))
    rows = max(1, math.ceil(count / cols))
    fig = _figure(width * cols + 0.6, height * rows + 0.9)
    grid = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[count:]:
        ax.set_visible(False)
    for ax in axes[max(0, count - cols):count]:  # nothing below: the epochs show here
        ax.xaxis.set_tick_params(labelbottom=True)
    return fig, axes[:count]


def _epoch_stats(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and epoch: mean, std (0 with one seed) and n of top-1, in percent."""
    stats = (epochs.assign(top1=100 * epochs["test_top1"].astype(float))
             .groupby(["experiment", "epoch"])["top1"].agg(["mean", "std", "count"])
             .reset_index())
    return stats.assign(std=stats["std"].fillna(0.0))


def _band(ax: Axes, stats: pd.DataFrame, color: str, style: str, label: str) -> None:
    epoch = stats["epoch"].to_numpy(float)
    mean, std = stats["mean"].to_numpy(float), stats["std"].to_numpy(float)
    ax.fill_between(epoch, np.clip(mean - std, 0, 100), np.clip(mean + std, 0, 100),
                    color=color, alpha=0.18, lw=0)
    ax.plot(epoch, mean, ls=style, color=color, lw=1.4, label=label)


def epochs_figure(epochs: pd.DataFrame, table: pd.DataFrame) -> Figure:
    """Test top-1 per epoch, mean ± std over seeds: a panel per experiment, Benchmark in each."""
    from matplotlib.ticker import MaxNLocator

    missing = [c for c in EPOCH_COLUMNS if c not in epochs]
    if missing:
        raise ValueError(f"the epoch table lacks {missing}; it needs {list(EPOCH_COLUMNS)}")
    stats = _epoch_stats(epochs)
    names = sorted(stats["experiment"].unique(), key=experiment_order)
    shown = [n for n in names if n != BENCHMARK] or names
    fig, axes = _panels(len(shown) or 1)
    seeds = epochs.groupby("experiment")["seed"].nunique()
    bench = stats[stats["experiment"] == BENCHMARK]
    reference = f"; grey dashed: {BENCHMARK}" if len(bench) and shown != [BENCHMARK] else ""
    fig.suptitle(f"test top-1 per epoch (mean ± std over seeds): {subtitle(table)}{reference}")
    if not shown:
        axes[0].text(0.5, 0.5, "no epochs recorded", transform=axes[0].transAxes, ha="center")
        return fig
    for i, (ax, name) in enumerate(zip(axes, shown, strict=True)):
        if len(bench) and name != BENCHMARK:
            _band(ax, bench, "0.35", "--", BENCHMARK)
        _band(ax, stats[stats["experiment"] == name], _COLORS[i % len(_COLORS)], "-", name)
        ax.set_title(f"{name} (n = {seeds.get(name, 0)})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
    top = min(100.0, float((stats["mean"] + stats["std"]).max()) + 0.5)
    bottom = max(0.0, float((stats["mean"] - stats["std"]).min()) - 0.5)
    axes[0].set_ylim(bottom, top)
    fig.supxlabel("epoch", fontsize=9)
    fig.supylabel("test top-1 (%)", fontsize=9)
    return fig


# -- schedules -----------------------------------------------------------------------------


def schedules_figure(table: pd.DataFrame) -> Figure:
    """The per-epoch training fraction of every experiment: one panel each, none hidden."""
    from matplotlib.ticker import MaxNLocator
    from pydantic import TypeAdapter

    from orchestrator.report import schedule_summary  # lazy: report imports this module
    from trainers.schedule import Schedule, fractions

    adapter: TypeAdapter[Schedule] = TypeAdapter(Schedule)
    rows = [r for r in table.to_dict("records")
            if _whole(r["epochs"]) and int(r["epochs"]) >= 1]
    fig, axes = _panels(len(rows) or 1, height=1.7)
    fig.suptitle("data schedules (fraction of the training set per epoch): "
                 + subtitle(table, seeds=False))
    if not rows:
        axes[0].text(0.5, 0.5, "no schedules", transform=axes[0].transAxes, ha="center")
        return fig
    for i, (ax, row) in enumerate(zip(axes, rows, strict=True)):
        epochs = int(row["epochs"])
        values = [100 * f for f in fractions(adapter.validate_json(row["schedule"]), epochs)]
        color = _COLORS[i % len(_COLORS)]
        ax.fill_between(range(1, epochs + 1), values, step="mid", color=color, alpha=0.2, lw=0)
        ax.plot(range(1, epochs + 1), values, drawstyle="steps-mid", color=color, lw=1.5,
                marker="." if epochs <= 30 else None)
        title = f"{row['experiment']}: {schedule_summary(row['schedule'])}"
        ax.set_title(textwrap.fill(title, 36), fontsize=8)  # a long piecewise one wraps
        ax.set_ylim(0, 105)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    fig.supxlabel("epoch", fontsize=9)
    fig.supylabel("training data used (%)", fontsize=9)
    return fig


def _whole(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
