"""MLflow tracking, on the driver: deterministic run identity, buffered writes.

Every trial's run is found again by its tag ``lessdata.trial_key`` (grid/experiment/seed):
a resumed or re-submitted grid never makes a second run for the same trial. Writes go
through a queue that one writer thread sends in order: Tune's event loop never waits on
the server, and when the server is away the writes wait and are sent once it is back, so
a tracking outage never fails a trial. Steps already in MLflow are never logged
again. See docs/tracking.md for every tag, param and metric.
"""

from __future__ import annotations

import functools
import logging
import os
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from trainers.errors import TrackingError

__all__ = [
    "FINAL_METRICS",
    "Tracker",
    "check_tracking",
    "default_tracking_uri",
    "flatten",
    "git_sha",
    "package_version",
    "require_store",
]

log = logging.getLogger(__name__)

T = "lessdata."  # tag prefix
FINAL_METRICS = (
    "best_top1",
    "final_top1",
    "total_evaluations",
    "scoring_evaluations",
    "train_s",
    "trial_s",
    "energy_kwh",
    "emissions_kg",
    "emissions_estimate_kg",
)
EPOCH_METRICS = (
    "fraction", "samples", "evaluations", "train_loss", "train_top1",
    "test_loss", "test_top1", "lr", "epoch_s", "scoring_evaluations",
)  # fmt: skip


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else a local SQLite store under ./runs (no server needed)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path('runs/mlflow.db').resolve()}"


def check_tracking(uri: str, timeout_s: float = 20.0) -> None:
    """Refuse an unreachable or unauthorised tracking server before any compute."""
    if not uri.startswith(("http://", "https://")):
        return  # a local store: created on first use, after every other check passed
    base = uri.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout_s) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"tracking server {uri} is unreachable: {reason}") from None
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/experiments/search?max_results=1", headers=_auth_headers()
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            hint = (
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                if "MLFLOW_TRACKING_USERNAME" not in os.environ
                else "check MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
            )
            raise TrackingError(
                f"tracking server {uri} refused the credentials (HTTP {exc.code}): {hint}"
            ) from None
        raise TrackingError(f"tracking server {uri} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(f"tracking server {uri} is unreachable: {exc}") from None


def require_store(uri: str) -> None:
    """For reading commands: a local SQLite store must exist (never create an empty one)."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise TrackingError(f"no MLflow store at {uri} (nothing was submitted there)")
    check_tracking(uri)


def _auth_headers() -> dict[str, str]:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if not user:
        return {}
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lessdata")
    except PackageNotFoundError:
        return "unknown"


def git_sha() -> str:
    """The code's commit ($LESSDATA_GIT_SHA in images without .git)."""
    if sha := os.environ.get("LESSDATA_GIT_SHA"):
        return sha
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {'model.width': '0.25', ...} for MLflow params."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


class Tracker:
    """The driver's MLflow writer for one grid.

    Runs are found or made synchronously (``ensure_runs``, before any trial starts); every
    later write is queued and sent in order by one writer thread. Callers are Tune's
    callbacks, which Tune calls serially.
    """

    RETRY_S = 2.0

    def __init__(self, uri: str, grid: str) -> None:
        import mlflow
        from mlflow import MlflowClient

        # A server away must not block the driver for minutes in MLflow's own retries:
        # our queue retries instead.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        # Keep stdout for the CLI's own output (--json); MLflow would print run links there.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.uri = uri
        self.grid = grid
        self.client = MlflowClient(tracking_uri=uri)
        self._mlflow = mlflow
        existing = self.client.get_experiment_by_name(grid)
        self.experiment_id = (
            existing.experiment_id if existing else self.client.create_experiment(grid)
        )
        self.runs: dict[str, str] = {}  # trial key -> run id
        self.parents: dict[str, str] = {}  # experiment label -> parent run id
        self.last_step: dict[str, int] = {}  # run id -> last epoch already in MLflow
        # Writes wait here, in order, for one writer thread (started on the first write):
        # a slow or absent server never stalls Tune's event loop, so never the trials.
        self._pending: deque[tuple[str, Callable[[], Any]]] = deque()
        self._cond = threading.Condition()
        self._writer: threading.Thread | None = None
        self._inflight: tuple[str, Callable[[], Any]] | None = None

    # -- finding runs ----------------------------------------------------------------------

    def search(self, kind: str, extra: str = "") -> list[Any]:
        flt = f"tags.`{T}grid` = '{_quote(self.grid)}' and tags.`{T}kind` = '{kind}'"
        if extra:
            flt += f" and {extra}"
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=flt, max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def ensure_runs(self, trials: Iterable[Any], train_size: int | None = None) -> None:
        """Find or create the parent run of every experiment and the run of every trial.

        Runs are made now, before any trial starts (their ids are the trials' identity);
        their params follow through the write queue.
        """
        trials = list(trials)
        found = {r.data.tags[f"{T}trial_key"]: r for r in self.search("trial")}
        parents = {r.data.tags[f"{T}experiment"]: r.info.run_id for r in self.search("experiment")}
        for spec in trials:
            if spec.experiment not in parents:
                parents[spec.experiment] = self.client.create_run(
                    self.experiment_id,
                    run_name=f"{spec.experiment}",
                    tags=self._tags(spec, kind="experiment"),
                ).info.run_id
            self.parents[spec.experiment] = parents[spec.experiment]
            if spec.key in found:
                run = found[spec.key]
                self.runs[spec.key] = run.info.run_id
                history = self.client.get_metric_history(run.info.run_id, "evaluations")
                self.last_step[run.info.run_id] = max((m.step for m in history), default=0)
        common = {"lessdata_version": package_version(), "git_sha": git_sha()}
        if train_size is not None:
            common["train_size"] = str(train_size)
        for spec in trials:
            if spec.key in found:
                continue
            run_id = self._create_trial_run(spec)
            params = flatten(spec.config.model_dump(mode="json"))
            params.update(common, checkpoint_every=str(spec.checkpoint_every))
            self._enqueue(f"params of {spec.key}",
                          functools.partial(self._mlflow_params, run_id, params))
            self.runs[spec.key] = run_id
            self.last_step[run_id] = 0

    def _create_trial_run(self, spec: Any) -> str:
        tags = {
            **self._tags(spec, kind="trial"),
            "mlflow.parentRunId": self.parents[spec.experiment],
            f"{T}state": "pending",
        }
        return str(self.client.create_run(
            self.experiment_id, run_name=f"{spec.experiment}-seed{spec.seed}", tags=tags
        ).info.run_id)

    def _tags(self, spec: Any, kind: str) -> dict[str, str]:
        cfg = spec.config
        tags = {
            f"{T}kind": kind,
            f"{T}grid": self.grid,
            f"{T}experiment": spec.experiment,
            f"{T}method": cfg.schedule.method,
            f"{T}schedule": cfg.schedule.model_dump_json(),
            f"{T}dataset": cfg.dataset,
            f"{T}selection": cfg.selection,
        }
        if kind == "trial":
            tags.update({f"{T}trial_key": spec.key, f"{T}seed": str(spec.seed)})
        return tags

    def _mlflow_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100], synchronous=True)

    def finished_keys(self) -> set[str]:
        return {
            r.data.tags[f"{T}trial_key"]
            for r in self.search("trial", f"tags.`{T}state` = 'finished'")
        }

    # -- buffered writes -------------------------------------------------------------------

    def _enqueue(self, what: str, op: Callable[[], Any]) -> None:
        """Queue a write for the writer thread; Tune's event loop never waits on MLflow."""
        with self._cond:
            self._pending.append((what, op))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                                 name=f"lessdata-mlflow-{self.grid}")
                self._writer.start()
            self._cond.notify_all()

    def _write_loop(self) -> None:
        """Send queued writes in order; while the server is away, retry every ``RETRY_S``."""
        away_since: float | None = None
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.notify_all()  # wakes flush()
                    self._cond.wait()
                self._inflight = self._pending.popleft()
            what, op = self._inflight
            try:
                op()
            except Exception as exc:  # noqa: BLE001 - any failure means: try again later
                with self._cond:  # first in line again
                    self._pending.appendleft(self._inflight)
                    self._inflight = None
                if away_since is None:
                    away_since = time.monotonic()
                    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                    log.warning("tracking server unavailable (%s); %d writes wait: %s",
                                what, self.pending, first or type(exc).__name__)
                with self._cond:
                    self._cond.wait(timeout=self.RETRY_S)
                continue
            with self._cond:
                self._inflight = None
            if away_since is not None:
                log.warning("tracking server back after %.0f s; sending %d queued writes",
                            time.monotonic() - away_since, self.pending)
                away_since = None

    def flush(self, timeout_s: float = 120.0) -> bool:
        """Wait up to ``timeout_s`` for every queued write to reach the server."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.notify_all()  # a writer waiting out RETRY_S tries again now
                self._cond.wait(timeout=min(left, self.RETRY_S))
        return True

    @property
    def pending(self) -> int:
        """Writes queued and not yet acknowledged by the server."""
        return len(self._pending) + (self._inflight is not None)

    def log_epoch(self, key: str, step: int, metrics: dict[str, float],
                  tags: dict[str, str] | None = None) -> None:
        """Per-epoch metrics at ``step`` (the epoch), and ``tags`` in the same write; a step
        already logged is skipped (its tags are still sent)."""
        from mlflow.entities import Metric, RunTag

        run_id = self.runs[key]
        items: list[Metric] = []
        if step > self.last_step.get(run_id, 0):
            self.last_step[run_id] = step
            now = int(time.time() * 1000)
            items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        labels = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        if not items and not labels:
            return
        self._enqueue(f"epoch {step} of {key}",
                      lambda: self.client.log_batch(run_id, metrics=items, tags=labels,
                                                    synchronous=True))

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        run_id = self.runs[key]
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        self._enqueue(f"tags of {key}",
                      lambda: self.client.log_batch(run_id, tags=items, synchronous=True))

    def log_final(self, key: str, metrics: dict[str, float],
                  artifacts: dict[str, str | Callable[[], str]],
                  tags: dict[str, str] | None = None) -> None:
        """Final metrics, ``tags`` and text artifacts (name -> content, or a function that
        makes it on the writer thread); marks the run finished."""
        from mlflow.entities import Metric, RunTag

        run_id = self.runs[key]
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        done = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        done.append(RunTag(f"{T}state", "finished"))

        def op() -> None:
            for name, text in artifacts.items():
                self.client.log_text(run_id, text if isinstance(text, str) else text(), name)
            self.client.log_batch(run_id, metrics=items, tags=done, synchronous=True)
            self.client.set_terminated(run_id, "FINISHED")

        self._enqueue(f"final metrics of {key}", op)

    def mark_failed(self, key: str, reason: str) -> None:
        run_id = self.runs[key]

        def op() -> None:
            self.client.set_tag(run_id, f"{T}state", "failed")
            self.client.set_tag(run_id, f"{T}error", reason[:5000])
            self.client.set_terminated(run_id, "FAILED")

        self._enqueue(f"failure of {key}", op)

    def update_parent(self, experiment: str) -> None:
        """Mean and std over the finished seeds of every final metric, on the parent run.

        It reads the finished seeds when it is sent, so an aggregate of the same experiment
        still waiting in the queue is dropped: the new one, last in line, counts them all.
        """
        what = f"aggregate of {experiment}"
        with self._cond:
            for item in [item for item in self._pending if item[0] == what]:
                self._pending.remove(item)
        self._enqueue(what, lambda: self._aggregate(experiment))

    def _aggregate(self, experiment: str) -> None:
        from mlflow.entities import Metric

        children = self.search(
            "trial",
            f"tags.`{T}experiment` = '{_quote(experiment)}' and tags.`{T}state` = 'finished'",
        )
        now = int(time.time() * 1000)
        items = [Metric("n_seeds", float(len(children)), now, 0)]
        for name in FINAL_METRICS:
            values = [c.data.metrics[name] for c in children if name in c.data.metrics]
            if not values:
                continue
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            items += [Metric(f"{name}_mean", statistics.fmean(values), now, 0),
                      Metric(f"{name}_std", std, now, 0)]
        self.client.log_batch(self.parents[experiment], metrics=items, synchronous=True)

    def close_parents(self) -> None:
        for run_id in self.parents.values():
            self._enqueue("close parent", functools.partial(self.client.set_terminated, run_id))
