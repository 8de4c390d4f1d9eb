"""The paper-style report of a grid, on the driver: table, JSON rows, files, MLflow artifacts.

Everything here reads the two tables of ``orchestrator/aggregate.py``; nothing recomputes
statistics. ``make_report`` is what ``lessdata report`` calls.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from orchestrator import provenance, record
from orchestrator.aggregate import (
    DEFAULT_MARGIN,
    claim_note,
    experiment_order,
    experiment_table,
    hardware_warning,
    trial_table,
)
from orchestrator.record import Kind, Tag
from trainers.errors import TrackingError
from trainers.experiments import SOURCE_LEGEND

if TYPE_CHECKING:
    from pydantic import TypeAdapter
    from rich.console import Console

    from orchestrator.plan import Plan
    from trainers.schedule import Schedule

__all__ = ["log_report", "make_report", "render", "report_rows", "schedule_summary",
           "with_aliases", "write_outputs"]

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


@functools.cache
def _adapter() -> TypeAdapter[Schedule]:
    from pydantic import TypeAdapter

    from trainers.schedule import Schedule

    return TypeAdapter(Schedule)


def _pct(x: float) -> str:
    return f"{100 * x:g}%"


def schedule_summary(schedule_json: str) -> str:
    """'d=25% e=75%', 's=50%', 'n=9', 'full data', or piecewise 'from 0%: 25%, from 50%: 100%'."""
    from pydantic import ValidationError

    try:
        s = _adapter().validate_json(schedule_json)
    except (ValidationError, ValueError, TypeError):
        return str(schedule_json)
    if s.method == "data_step":
        return f"d={_pct(s.d)} e={_pct(s.e)}"
    if s.method == "data_increment":
        return f"s={_pct(s.s)}"
    if s.method == "data_cut":
        return f"n={s.n}"
    if s.method == "piecewise":
        return ", ".join(f"from {_pct(b.at)}: {_pct(b.fraction)}" for b in s.breakpoints)
    return "full data"


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _num(value: Any, fmt: str) -> str:
    return format(float(value), fmt) if _finite(value) else DASH


def _with_change(value: Any, change: Any, fmt: str) -> str:
    """'120.5 (-50.0%)'; the change is left out where there is no Benchmark to compare to."""
    text = _num(value, fmt)
    return f"{text} ({float(change):+.1f}%)" if text != DASH and _finite(change) else text


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


def _caption(table: pd.DataFrame, twins: bool) -> str:
    notes = [claim_note(table)]
    if "note" in table:  # identical schedules: one line each
        notes += [str(n) for n in table["note"] if isinstance(n, str)]
    if "source" in table and (table["source"] == "ours").any():
        notes.append(SOURCE_LEGEND)
    return NOTE + (TWIN_NOTE if twins else "") + "".join(f"\n{n}" for n in notes if n)


def with_aliases(table: pd.DataFrame, plan: Plan | None) -> pd.DataFrame:
    """The table with a row per alias of the plan (``Plan.identical``): the representative's
    numbers under the alias's name, schedule and source, with ``same_as`` and ``note`` set.

    Aliases are added after the statistics: a copy is not a second test (Holm) nor a
    second point to plot. Without a plan the two columns are empty.
    """
    table = table.assign(same_as=None, note=None)
    if plan is None or table.empty:
        return table
    plans = plan.grid.plans()
    rows = table.to_dict("records")
    by_name = {row["experiment"]: row for row in rows}
    for alias, group in plan.aliases().items():
        if group.representative not in by_name:
            continue  # nothing of it finished yet
        own = plans[alias]
        note = next(n for n in group.notes() if n.startswith(f"{alias}:"))
        rows.append({**by_name[group.representative], "experiment": alias,
                     "schedule": own.schedule.model_dump_json(), "method": own.schedule.method,
                     "source": own.source, "same_as": group.representative, "note": note})
    rows.sort(key=lambda row: experiment_order(str(row["experiment"])))
    return pd.DataFrame(rows, columns=table.columns).astype(table.dtypes.to_dict())


def _cells(row: dict[str, Any], twins: bool = False) -> dict[str, str]:
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
        "Runtime s": _with_change(row["runtime_s_mean"], row["runtime_change_pct"], ".1f"),
        "Energy kWh": _with_change(row["energy_kwh_mean"], row["energy_change_pct"], ".4g"),
        "CO2 kg": _with_change(row["emissions_kg_mean"], row["emissions_change_pct"], ".4g"),
    }


def render(table: pd.DataFrame, console: Console) -> None:
    """Print the paper-style comparison table."""
    from rich.table import Table

    if table.empty:
        console.print("no finished trials yet")
        return
    twins = _has_twins(table)
    cells = [_cells(row, twins) for row in table.to_dict("records")]
    out = Table(caption=_caption(table, twins), caption_justify="left")
    for i, header in enumerate(cells[0]):
        out.add_column(header, justify="left" if i < 2 else "right", no_wrap=i != 1)
    for row in cells:
        out.add_row(*row.values())
    console.print(out)


def markdown(table: pd.DataFrame) -> str:
    """The same table as GitHub Markdown."""
    twins = _has_twins(table)
    cells = [_cells(row, twins) for row in table.to_dict("records")]
    if not cells:
        return "no finished trials yet\n"
    headers = list(cells[0])
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row.values()) + " |"
              for row in cells]
    return "\n".join(lines) + f"\n\n{_caption(table, twins)}\n"


# -- files ---------------------------------------------------------------------------------


def write_outputs(trials: pd.DataFrame, table: pd.DataFrame, out_dir: Path,
                  epochs: pd.DataFrame | None = None) -> list[Path]:
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
    paths[2].write_text(markdown(table))
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


def make_report(tracking_uri: str, grid: str, out_dir: Path | None,
                margin: float = DEFAULT_MARGIN, plan: Plan | None = None
                ) -> tuple[pd.DataFrame, list[dict[str, Any]], str | None]:
    """Both tables from MLflow; with ``out_dir``, the files written and logged to MLflow.

    ``margin``: the equivalence margin in accuracy points (``experiment_table``);
    ``plan``: the submitted plan, whose aliases get rows of their own (``with_aliases``).
    """
    trials = trial_table(tracking_uri, grid)
    table = with_aliases(experiment_table(trials, margin=margin), plan)
    if out_dir is not None:
        log_report(tracking_uri, grid, write_outputs(trials, table, Path(out_dir)))
    return table, report_rows(table), hardware_warning(trials)
