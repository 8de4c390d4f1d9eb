"""The paper-style report of a grid, on the driver: table, JSON rows, files, MLflow artifacts.

Everything here reads the two tables of ``orchestrator/aggregate.py``; nothing recomputes
statistics. ``make_report`` is what ``lessdata report`` calls.

Above the table one line says whether the grid's runtimes compare
(``orchestrator.comparability`` on the training time; the same test on CPU time is in the
JSON); when they do not, the runtime, energy and CO2 changes carry a dagger and a footnote
names the cause. The energy column says which of its parts a sensor measured and which
codecarbon estimated (from the trials' ``lessdata.energy_source.*`` tags), and the CO2
column gives the paper's own figure beside the measured one: the paper computes CO2 from
runtime, so its change is the runtime change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from orchestrator import provenance, record
from orchestrator.aggregate import (
    DEFAULT_MARGIN,
    claim_note,
    experiment_table,
    hardware_warning,
    trial_table,
)
from orchestrator.aliases import with_aliases
from orchestrator.record import Kind, Tag
from orchestrator.report_notes import DAGGER, Notes, energy_sources, runtime_notes
from orchestrator.schedule_text import schedule_summary
from trainers.errors import TrackingError
from trainers.experiments import SOURCE_LEGEND

if TYPE_CHECKING:
    from rich.console import Console

    from orchestrator.plan import Plan

__all__ = ["Notes", "Report", "energy_sources", "epoch_table", "log_report", "make_report",
           "render", "report_rows", "runtime_notes", "schedule_summary", "with_aliases",
           "write_outputs"]

DASH = "—"
NOTE = ("top-1: best epoch, mean ± sample std over seeds; Δ: percentage points vs Benchmark; "
        "p: paired t-test vs Benchmark by seed, Holm-adjusted; equivalent: TOST at the margin; "
        "changes: vs Benchmark's mean")
TWIN_NOTE = ("; vs uniform / vs short: Δ top-1 (pp) and paired p of X vs its budget-matched "
             "twins X-uniform (constant fraction) and X-short (all data, fewer epochs)")


# -- rows and cells ------------------------------------------------------------------------


def report_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The experiment table as JSON-ready dicts (NaN and infinities become None)."""
    rows = []
    for entry in table.to_dict("records"):
        row = {str(k): _plain(v) for k, v in entry.items()}
        row["schedule_summary"] = schedule_summary(entry["schedule"])
        rows.append(row)
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _num(value: Any, fmt: str) -> str:
    return format(float(value), fmt) if _finite(value) else DASH


def _has_twins(table: pd.DataFrame) -> bool:
    columns = [c for c in ("p_vs_uniform", "p_vs_short", "delta_vs_uniform", "delta_vs_short")
               if c in table]
    return bool(columns) and bool(table[columns].notna().to_numpy().any())


def _vs_twin(row: dict[str, Any], kind: str) -> str:
    """'+0.120 (p 0.34)' vs the twin; a dash where X has no such twin."""
    delta = row.get(f"delta_vs_{kind}")
    if delta is None or not _finite(delta):
        return DASH
    return f"{float(delta):+.3f} (p {_num(row.get(f'p_vs_{kind}'), '.3g')})"


def _equivalent(row: dict[str, Any]) -> str:
    """'yes (p 0.012)' / 'no (p 0.34)' from the TOST; a dash where there is no test."""
    if row.get("equivalent") is None or row.get("equivalent") is pd.NA:
        return DASH
    return f"{'yes' if row['equivalent'] else 'no'} (p {_num(row['tost_p'], '.3g')})"


def _caption(table: pd.DataFrame, twins: bool, notes: Notes | None = None) -> str:
    lines = [NOTE + (TWIN_NOTE if twins else "") + ("; CO2 paper: the paper's estimate "
                                                     "(CO2 from runtime), its change the "
                                                     "runtime change")]
    extra = [claim_note(table)]
    if "note" in table:  # identical schedules: one line each
        extra += [str(n) for n in table["note"] if isinstance(n, str)]
    if "source" in table and (table["source"] == "ours").any():
        extra.append(SOURCE_LEGEND)
    lines += [n for n in extra if n]
    lines += notes.footnotes() if notes is not None else []
    return "\n".join(lines)


def _changes(row: dict[str, Any], notes: Notes | None) -> tuple[str, str, str]:
    """The runtime, energy and CO2 cells; a dagger on each change when runtimes don't compare."""
    mark = DAGGER if notes is not None and not notes.runtime.comparable else ""

    def cell(value: Any, change: Any, fmt: str, scale: float = 1.0, extra: str = "") -> str:
        text = _num(float(value) * scale if _finite(value) else value, fmt)
        if text == DASH or not _finite(change):
            return text
        return f"{text} ({float(change):+.1f}%{extra}){mark}"

    paper: Any = row.get("emissions_paper_change_pct")
    return (cell(row["train_s_mean"], row["runtime_change_pct"], ".1f"),
            cell(row["energy_kwh_mean"], row["energy_change_pct"], ".3g", 1000.0),
            cell(row["emissions_kg_mean"], row["emissions_change_pct"], ".4g",
                 extra=f"; paper {float(paper):+.1f}%" if _finite(paper) else ""))


def _cells(row: dict[str, Any], twins: bool = False,
           notes: Notes | None = None) -> dict[str, str]:
    """One experiment's display strings; the terminal and the Markdown table share them."""
    evaluations = _num(row["evaluations"], ",.0f")
    if _finite(row.get("scoring_evaluations")) and float(row["scoring_evaluations"]) > 0:
        evaluations += f" + {float(row['scoring_evaluations']):,.0f} scoring"
    if _finite(row["evaluations_pct"]):
        evaluations += f" ({row['evaluations_pct']:.4g}%)"
    top1 = (f"{_num(100 * row['top1_mean'], '.2f')} ± {_num(100 * row['top1_std'], '.2f')}"
            f" ({row['n']})")
    same_as = f" = {row['same_as']}" if isinstance(row.get("same_as"), str) else ""
    ours = " (ours)" if row.get("source") == "ours" else ""
    runtime, energy, co2 = _changes(row, notes)
    return {
        "Experiment": f"{row['experiment']}{same_as}",
        "Schedule": schedule_summary(row["schedule"]) + ours,
        "Evaluations (% of B)": evaluations,
        "Top-1 % (n)": top1,
        "Δ pp": _num(row["top1_delta"], "+.3f"),
        "p Holm": _num(row["p_holm"], ".3g"),
        "Equivalent": _equivalent(row),
        **({"vs uniform": _vs_twin(row, "uniform"), "vs short": _vs_twin(row, "short")}
           if twins else {}),
        "Training s": runtime,
        (notes.energy_header if notes is not None else "Energy Wh"): energy,
        "CO2 kg (paper)": co2,
    }


def render(table: pd.DataFrame, console: Console, notes: Notes | None = None) -> None:
    """Print the paper-style comparison table (with ``notes``: the runtime line above it)."""
    from rich.table import Table

    if table.empty:
        console.print("no finished trials yet")
        return
    twins = _has_twins(table)
    cells = [_cells(row, twins, notes) for row in table.to_dict("records")]
    if notes is not None:
        console.print(notes.header_line(), markup=False)
    out = Table(caption=_caption(table, twins, notes), caption_justify="left")
    for i, header in enumerate(cells[0]):
        out.add_column(header, justify="left" if i < 2 else "right", no_wrap=i != 1)
    for row in cells:
        out.add_row(*row.values())
    console.print(out)


def markdown(table: pd.DataFrame, notes: Notes | None = None) -> str:
    """The same table as GitHub Markdown."""
    twins = _has_twins(table)
    cells = [_cells(row, twins, notes) for row in table.to_dict("records")]
    if not cells:
        return "no finished trials yet\n"
    headers = list(cells[0])
    lines = [notes.header_line(), ""] if notes is not None else []
    lines += ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row.values()) + " |"
              for row in cells]
    return "\n".join(lines) + f"\n\n{_caption(table, twins, notes)}\n"


# -- files ---------------------------------------------------------------------------------


def write_outputs(trials: pd.DataFrame, table: pd.DataFrame, out_dir: Path,
                  epochs: pd.DataFrame | None = None, notes: Notes | None = None
                  ) -> list[Path]:
    """report.csv, trials.csv, report.md and the figures (``orchestrator.figures``).

    ``epochs``, a per-epoch table (``figures.EPOCH_COLUMNS``), adds the accuracy-per-epoch
    figure.
    """
    from orchestrator.figures import write_figures

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in ("report.csv", "trials.csv", "report.md")]
    table.to_csv(paths[0], index=False)
    trials.to_csv(paths[1], index=False)
    paths[2].write_text(markdown(table, notes))
    # An alias's point would sit on its representative's: plotted once.
    measured = table[table["same_as"].isna()] if "same_as" in table else table
    return paths + write_figures(measured, out_dir, epochs)


# -- MLflow --------------------------------------------------------------------------------


def log_report(tracking_uri: str, grid: str, paths: list[Path]) -> str:
    """Log ``paths`` as artifacts of the grid's report run.

    Each report makes a fresh run and deletes the earlier ones, so the run's duration is
    the upload's, not the time since the first report.
    """
    client = record.client(tracking_uri)
    experiment = record.experiment_id(client, grid)
    if experiment is None:
        raise TrackingError(f"no grid named {grid!r} at {tracking_uri}")
    tags: dict[str, str] = {Tag.KIND: Kind.GRID, Tag.GRID: grid}
    earlier = record.search(client, experiment, tags)
    run_id = client.create_run(experiment, run_name="report", tags={
        **tags, Tag.GIT_COMMIT: provenance.git_sha(), Tag.USER: provenance.user()}).info.run_id
    for path in paths:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    for run in earlier:
        client.delete_run(run.info.run_id)
    return str(run_id)


def epoch_table(tracking_uri: str, trials: pd.DataFrame) -> pd.DataFrame:
    """Test top-1 per epoch of every trial (``figures.EPOCH_COLUMNS``), from the runs' ``top1``
    series: one history read per trial run (MLflow pages it), nothing else."""
    from orchestrator.figures import EPOCH_COLUMNS

    client = record.client(tracking_uri)
    rows = [(trial.experiment, int(trial.seed), int(m.step), float(m.value))
            for trial in trials.itertuples()
            for m in client.get_metric_history(str(trial.run_id), "top1")]
    return pd.DataFrame(rows, columns=list(EPOCH_COLUMNS))


@dataclass(frozen=True)
class Report:
    """A grid's report: its two tables, what they can claim, and what the runtimes mean."""

    table: pd.DataFrame
    trials: pd.DataFrame
    notes: Notes
    margin: float
    warning: str | None = None
    paths: list[Path] = field(default_factory=list)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return report_rows(self.table)

    def as_json(self) -> dict[str, Any]:
        """What ``lessdata report --json`` prints."""
        return {
            "runtime_comparable": self.notes.runtime.comparable,
            "runtime_note": self.notes.runtime.note,
            "runtime_cpu_comparable": self.notes.runtime_cpu.comparable,
            "runtime_cpu_note": self.notes.runtime_cpu.note,
            "energy_note": self.notes.energy,
            "margin": self.margin,
            "claim_note": claim_note(self.table) if not self.table.empty else None,
            "hardware_warning": self.warning,
            "experiments": self.rows,
        }


def make_report(tracking_uri: str, grid: str, out_dir: Path | None,
                margin: float = DEFAULT_MARGIN, plan: Plan | None = None) -> Report:
    """Both tables from MLflow; with ``out_dir``, the files (and the per-epoch figure, from
    the runs' ``top1`` series) written and logged to MLflow.

    ``margin``: the equivalence margin in accuracy points (``experiment_table``);
    ``plan``: the submitted plan, whose aliases get rows of their own (``with_aliases``).
    """
    trials = trial_table(tracking_uri, grid)
    table = with_aliases(experiment_table(trials, margin=margin), plan)
    notes = runtime_notes(trials)
    paths: list[Path] = []
    if out_dir is not None:
        epochs = epoch_table(tracking_uri, trials) if not trials.empty else None
        epochs = epochs if epochs is not None and not epochs.empty else None
        paths = write_outputs(trials, table, Path(out_dir), epochs, notes)
        log_report(tracking_uri, grid, paths)
    return Report(table, trials, notes, margin, hardware_warning(trials), paths)
