"""Tune callbacks on the driver: MLflow logging, the live progress view, each trial's
outcome (``OutcomeCallback``: the driver's summary comes from here, in memory, never from
Tune's result files), and letting go of what Tune keeps of an ended trial
(``ReleaseCallback``)."""

from __future__ import annotations

import csv
import functools
import io
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback
from rich.console import Console

from orchestrator.record import EPOCH_METRICS, Stop
from orchestrator.results import (
    REPORT_KEY,
    EpochReport,
    FailedReport,
    FinalReport,
    failure_of,
    from_result,
    is_final,
    trial_key,
    trial_spec,
)
from orchestrator.tracking import Tracker

__all__ = ["MlflowCallback", "OutcomeCallback", "ProgressCallback", "error_line"]

log = logging.getLogger(__name__)


def error_line(trial: Any) -> str:
    """The last failure of a trial Tune gave up on, in one line: the last line of the
    text Tune wrote to ``error.txt`` in the driver's own staging folder (read as text;
    Tune's ``error.pkl`` beside it is never loaded by lessdata)."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text(errors="replace") if path else ""
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else "no error text (see the Ray Tune trial log)"
    return last[:300]


def _history_csv(rows: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["epoch", *EPOCH_METRICS])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in ["epoch", *EPOCH_METRICS]})
    return buf.getvalue()


class MlflowCallback(Callback):
    """Logs each trial into its one deterministic MLflow run (runs on the driver)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.history: dict[str, list[dict[str, float]]] = {}
        self.started: set[str] = set()  # trials whose trainable's start is logged

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config; the live client stays with this driver.
        return {"history": {}, "started": set()}

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started.discard(trial_key(trial.config))  # the retry's first report starts it again

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        key = trial_key(trial.config)
        report = from_result(result)
        if key not in self.started:
            # The run starts when the trainable did (not when Tune placed the trial, which
            # waits for a worker): its duration is the trial's.
            started = report.started_ms if isinstance(report, EpochReport) else 0
            self.tracker.start_trial(key, trial.trial_id, started or None)
            self.started.add(key)
        if isinstance(report, FailedReport):
            self.tracker.mark_failed(key, report.error, report.why)
            return
        if isinstance(report, FinalReport):
            # Read (for a resumed trial, from MLflow) when the writer thread sends it.
            artifacts: dict[str, str | Callable[[], str]] = {
                "epochs.csv": functools.partial(self._epochs_csv, key)}
            if report.codecarbon_csv:
                artifacts["codecarbon/emissions.csv"] = report.codecarbon_csv
            self.tracker.log_final(key, report, artifacts)
            return
        self.history.setdefault(key, []).append({"epoch": report.epoch, **report.metrics()})
        self.tracker.log_epoch(key, report)

    def _epochs_csv(self, key: str) -> str:
        return _history_csv(self._full_history(key))

    def _full_history(self, key: str) -> list[dict[str, float]]:
        """Epochs seen by this driver, completed from MLflow for epochs logged earlier.
        Called once, as the trial's final record is sent: the trial's rows leave the
        driver's memory then (a grid of many long trials would otherwise keep every
        epoch of every trial until it ends)."""
        rows = {int(r["epoch"]): r for r in self.history.pop(key, [])}
        if len(rows) and min(rows) == 1:
            return [rows[e] for e in sorted(rows)]
        try:
            run_id = self.tracker.runs[key]
            for name in EPOCH_METRICS:
                for m in self.tracker.client.get_metric_history(run_id, name):
                    rows.setdefault(m.step, {"epoch": m.step})[name] = m.value
        except Exception as exc:  # noqa: BLE001 - the CSV is a convenience, not the record
            log.warning("could not read earlier epochs of %s: %s", key, exc)
        return [rows[e] for e in sorted(rows)]

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key = trial_key(trial.config)
        if key not in self.started:  # failed before its first report: its run says so
            self.tracker.start_trial(key, trial.trial_id)
            self.started.add(key)
        self.tracker.mark_failed(key, error_line(trial), Stop.RETRIES_EXHAUSTED)


class OutcomeCallback(Callback):
    """Each trial's outcome as the driver saw it: finished, failed (with its one-line
    reason) or, when Tune stopped before its end, neither (unfinished)."""

    def __init__(self) -> None:
        self.finished: set[str] = set()
        self.failed: dict[str, str] = {}  # trial key -> why, one line

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key = trial_key(trial.config)
        failure = failure_of(trial.last_result)
        if failure is not None:
            self.failed[key] = failure.line()
        elif is_final(trial.last_result):
            self.finished.add(key)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        times = getattr(trial, "num_failures", 1)
        attempts = f"{times} attempt{'s' if times != 1 else ''}"
        why = f"{error_line(trial)} ({attempts}: retries exhausted)"
        self.failed[trial_key(trial.config)] = why


class ProgressCallback(Callback):
    """One line per trial event and a periodic summary: done / running / failed, ETA."""

    def __init__(self, total: int, console: Console | None = None,
                 every_s: float = 10.0) -> None:
        self.total = total
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.every_s = every_s
        self.started = time.monotonic()
        self._last = 0.0
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.running: set[str] = set()
        self.epochs: dict[str, tuple[int, int]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["console"] = None  # holds locks; Tune pickles its run config
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def _summary(self) -> str:
        elapsed = time.monotonic() - self.started
        finished = len(self.done) + len(self.failed)
        progress = sum(e / max(1, n) for k, (e, n) in self.epochs.items() if k not in self.done)
        units = len(self.done) + progress
        eta = elapsed / units * (self.total - units) if units > 0 else float("nan")
        eta_s = "?" if eta != eta else f"{eta:,.0f}s"
        return (f"[{finished}/{self.total}] done={len(self.done)} running={len(self.running)} "
                f"failed={len(self.failed)} pending={self.total - finished - len(self.running)} "
                f"elapsed={elapsed:,.0f}s eta={eta_s}")

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key = trial_key(trial.config)
        self.running.add(key)
        self.console.print(f"start  {key}  {self._summary()}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        key = trial_key(trial.config)
        report = from_result(result)
        if isinstance(report, EpochReport):  # its total epochs: parsed once per trial
            total = (self.epochs[key][1] if key in self.epochs
                     else trial_spec(trial.config).config.epochs)
            self.epochs[key] = (report.epoch, total)
        if time.monotonic() - self._last > self.every_s:
            self._last = time.monotonic()
            self.console.print(f"       {self._summary()}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key = trial_key(trial.config)
        self.running.discard(key)
        self.epochs.pop(key, None)
        failure = failure_of(trial.last_result)
        if failure is not None:
            self.failed.add(key)
            self.console.print(f"[red]failed[/red] {key}: {failure.line()}  {self._summary()}")
            return
        self.done.add(key)
        last = from_result(trial.last_result) if is_final(trial.last_result) else None
        shown = f" best_top1={last.best_top1:.4f}" if isinstance(last, FinalReport) else ""
        self.console.print(f"done   {key}{shown}  {self._summary()}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key = trial_key(trial.config)
        self.running.discard(key)
        self.epochs.pop(key, None)
        self.failed.add(key)
        self.console.print(f"[red]failed[/red] {key}: {error_line(trial)}  {self._summary()}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.console.print(f"retry  {trial_key(trial.config)} (from its last checkpoint)")


RELEASED_KEYS = frozenset({REPORT_KEY, "config"})
"""What an ended trial's last result loses: lessdata's report and Tune's config copy."""


class ReleaseCallback(Callback):
    """Lets go of what Tune keeps of an ended trial that nobody reads after its end.

    Tune keeps every trial of a run until the run ends, and with it the trial's last
    result (for lessdata: the serialised report, a codecarbon CSV among it, and Tune's
    copy of the trial's config), running statistics of every number it reported, and the
    JSON of both, cached for its experiment-state saves: tens of KB per trial, a driver
    growing with the grid. lessdata's record is MLflow, its outcome what the callbacks saw
    at the trial's end; Tune's result grid is never read. So once an ended trial's events
    are all delivered, its last result keeps only Tune's own keys, and its statistics go.
    It acts at the end of the controller's step, after every callback (Tune's own among
    them) has had the trial's end, so its place in the list does not matter."""

    def __init__(self) -> None:
        self._ended: list[Any] = []

    def __getstate__(self) -> dict[str, Any]:
        return {"_ended": []}  # Tune pickles its run config: never the trials

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended.append(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended.append(trial)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        for trial in self._ended:
            meta = trial.run_metadata
            meta.last_result = {k: v for k, v in (meta.last_result or {}).items()
                                if k not in RELEASED_KEYS}
            meta.metric_analysis = {}
            meta.metric_n_steps = {}
            trial.invalidate_json_state()
        self._ended.clear()
