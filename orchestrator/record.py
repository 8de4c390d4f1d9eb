"""The MLflow record of a grid: the one module that knows its shape.

Tag keys, run kinds and states, metric names, a trial's identity, the client, the one
paginated search (with a filter builder that quotes any value) and the one mean/std over
seeds. Every reader and writer (tracking, aggregate, report, status, submit, callbacks)
goes through here. See docs/tracking.md for what each tag, param and metric means.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import statistics
import tempfile
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.results import EPOCH_METRICS, FINAL_METRICS
from trainers.errors import TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = [
    "ENERGY_SOURCE_TAGS",
    "EPOCH_METRICS",
    "EXPERIMENT_KIND",
    "FINAL_METRICS",
    "HARDWARE_TAGS",
    "N_SEEDS",
    "VIEW_KEY",
    "Kind",
    "State",
    "Stop",
    "Tag",
    "client",
    "default_tracking_uri",
    "experiment_id",
    "flatten",
    "last_epoch",
    "last_step",
    "mean_std",
    "run_filter",
    "runs_url",
    "search",
    "std_name",
    "trial_key",
    "view_state",
]

VIEW_KEY = "lessdata"
"""The name of the runs table's view saved on every grid's experiment (``view_state``)."""


class Tag(StrEnum):
    """Every tag lessdata sets (``lessdata.*``) or reads (``mlflow.*``)."""

    KIND = "lessdata.kind"
    GRID = "lessdata.grid"
    EXPERIMENT = "lessdata.experiment"  # trial runs only: "group by experiment" stays clean
    PARENT_OF = "lessdata.parent_of"  # the experiment a parent run summarises
    TRIAL_KEY = "lessdata.trial_key"
    SEED = "lessdata.seed"
    METHOD = "lessdata.method"
    SCHEDULE = "lessdata.schedule"
    DATASET = "lessdata.dataset"
    SELECTION = "lessdata.selection"
    SOURCE = "lessdata.source"  # paper | ours: whose reading the run's schedule is
    STATE = "lessdata.state"
    TUNE_TRIAL_ID = "lessdata.tune_trial_id"
    ERROR = "lessdata.error"  # failed trials: one line, the error's type and message
    STOP = "lessdata.stop"  # failed trials: why it was not retried again (``Stop``)
    EMISSIONS_ATTRIBUTION = "lessdata.emissions_attribution"
    ENERGY_SOURCE_CPU = "lessdata.energy_source.cpu"  # 'sensor: ...' / 'estimate: ...' / 'none'
    ENERGY_SOURCE_GPU = "lessdata.energy_source.gpu"
    ENERGY_SOURCE_RAM = "lessdata.energy_source.ram"
    NODE = "lessdata.node"
    NODE_IP = "lessdata.node_ip"
    NODE_ID = "lessdata.node_id"
    CPU_MODEL = "lessdata.cpu_model"
    GPU_MODEL = "lessdata.gpu_model"
    HARDWARE = "lessdata.hardware"
    PARENT_RUN = "mlflow.parentRunId"
    GIT_COMMIT = "mlflow.source.git.commit"
    USER = "mlflow.user"
    EXPERIMENT_KIND = "mlflow.experimentKind"  # an experiment's tag, not a run's
    VIEW = f"mlflow.sharedViewState.{VIEW_KEY}"  # an experiment's tag: ``view_state``


EXPERIMENT_KIND = "custom_model_development"
"""Marks an MLflow experiment as model training (not GenAI) for the UI."""
ENERGY_SOURCE_TAGS = {  # energy part -> the tag naming where it came from
    "cpu": Tag.ENERGY_SOURCE_CPU, "gpu": Tag.ENERGY_SOURCE_GPU, "ram": Tag.ENERGY_SOURCE_RAM,
}  # fmt: skip
HARDWARE_TAGS = {  # Hardware field -> tag
    "node": Tag.NODE, "node_ip": Tag.NODE_IP, "node_id": Tag.NODE_ID,
    "cpu_model": Tag.CPU_MODEL, "gpu_model": Tag.GPU_MODEL, "hardware": Tag.HARDWARE,
}  # fmt: skip


class Kind(StrEnum):
    """``lessdata.kind``: what a run is."""

    TRIAL = "trial"  # one experiment x seed
    EXPERIMENT = "experiment"  # the parent of an experiment's trials: mean and std over seeds
    GRID = "grid"  # the grid's report files


class State(StrEnum):
    """``lessdata.state`` of a trial run (a trial with no run yet is pending)."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class Stop(StrEnum):
    """``lessdata.stop`` of a failed trial: why no further attempt was made."""

    NOT_RETRYABLE = "not_retryable"  # an error no retry can fix (bad config, data, device)
    SAME_ERROR = "same_error"  # its retry failed exactly as the attempt before
    RETRIES_EXHAUSTED = "retries_exhausted"  # ``max_failures`` retries, each failing


N_SEEDS = "n_seeds"
"""Parent runs: the finished seeds their means and stds are over."""


def std_name(metric: str) -> str:
    """A parent's std over seeds of ``metric`` (the mean keeps the child's name)."""
    return f"{metric}_std"


VIEW_METRICS = ("best_top1", std_name("best_top1"), N_SEEDS, "final_top1", "evaluations",
                "train_s", "energy_kwh")
"""The metric columns the saved view shows: a parent's mean and std over seeds first."""


def view_state() -> str:
    """The runs table as the links open it (MLflow's shared view state, JSON): the metric
    columns of ``VIEW_METRICS`` and the dataset shown, the parents' trials nested under
    them. The UI's own "Group by" still groups the trials by ``Tag.EXPERIMENT``."""
    columns = ["attributes.`Dataset`", *(f"metrics.`{m}`" for m in VIEW_METRICS)]
    return json.dumps({"selectedColumns": columns})


def trial_key(grid: str, experiment: str, seed: int) -> str:
    """The deterministic identity of a trial (and of its MLflow run)."""
    return f"{grid}/{experiment}/seed={seed}"


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for one value) over seeds; NaNs for none."""
    data = [float(v) for v in values]
    if not data:
        return math.nan, math.nan
    return statistics.fmean(data), statistics.stdev(data) if len(data) > 1 else 0.0


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {'model.width': '0.25', ...} for MLflow params; None is left out."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif value is not None:
            out[name] = str(value)
    return out


# -- the store -----------------------------------------------------------------------------


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else a local SQLite store under ./runs (no server needed)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path('runs/mlflow.db').resolve()}"


def client(uri: str) -> MlflowClient:
    """The MLflow client every lessdata reader and writer uses."""
    from mlflow import MlflowClient

    # A server away must not block the driver for minutes in MLflow's own retries: the
    # writer's queue retries instead.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    # Keep stdout for the CLI's own output (--json); MLflow would print run links there.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow: MlflowClient, name: str, create: bool = False) -> str | None:
    """The grid's experiment (made when ``create``, and then tagged as model training with
    the runs table's saved view)."""
    tags: dict[str, str] = {Tag.EXPERIMENT_KIND: EXPERIMENT_KIND, Tag.VIEW: view_state()}
    found = mlflow.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "active":
        for key, value in tags.items():
            if create and found.tags.get(key) != value:
                mlflow.set_experiment_tag(found.experiment_id, key, value)
        return str(found.experiment_id)
    if not create:
        return None
    if found is not None:  # deleted in the UI: in MLflow's trash, its name still taken
        raise TrackingError(
            f"the MLflow experiment of grid {name!r} was deleted (it is in MLflow's trash, id "
            f"{found.experiment_id}): restore it (`mlflow experiments restore --experiment-id "
            f"{found.experiment_id}`) or submit under another --name")
    return str(mlflow.create_experiment(name, tags=tags))


_UNQUOTABLE = ("'", '"', "\\")  # MLflow's filter parser has no escape for these


def run_filter(tags: Mapping[str, str]) -> str:
    """An MLflow filter: every tag equal to its value.

    MLflow strips a value's quotes but never unescapes it, so a value holding a quote or
    a backslash cannot be written exactly: it becomes a LIKE pattern with ``_`` (any one
    character) in their place, and ``search`` keeps only the exact matches.
    """
    terms = []
    for key, value in tags.items():
        if any(c in value for c in _UNQUOTABLE):
            pattern = "".join("_" if c in _UNQUOTABLE else c for c in value)
            terms.append(f"tags.`{key}` LIKE '{pattern}'")
        else:
            terms.append(f"tags.`{key}` = '{value}'")
    return " and ".join(terms)


def search(mlflow: MlflowClient, experiment: str, tags: Mapping[str, str],
           order_by: list[str] | None = None) -> list[Run]:
    """Every run of ``experiment`` whose tags equal ``tags`` (all pages)."""
    flt = run_filter(tags)
    runs: list[Run] = []
    token = None
    while True:
        page = mlflow.search_runs([experiment], filter_string=flt, max_results=1000,
                                  order_by=order_by, page_token=token)
        runs.extend(r for r in page
                    if all(r.data.tags.get(k) == v for k, v in tags.items()))
        token = page.token
        if not token:
            return runs


def last_step(mlflow: MlflowClient, run_id: str) -> int:
    """The last epoch a trial run holds (0: none)."""
    history = mlflow.get_metric_history(run_id, "evaluations")
    return max((m.step for m in history), default=0)


def last_epoch(mlflow: MlflowClient, run: Run) -> int:
    """The last epoch a trial run (from a search) holds: a finished run says it in its
    final metrics, so only an unfinished one costs a request (``last_step``)."""
    if run.data.tags.get(Tag.STATE) == State.FINISHED and "epochs_trained" in run.data.metrics:
        return int(run.data.metrics["epochs_trained"])
    if "evaluations" not in run.data.metrics:
        return 0
    return last_step(mlflow, run.info.run_id)


def log_texts(mlflow: MlflowClient, artifact_uri: str, texts: Mapping[str, str]) -> None:
    """Text files (``name`` may hold folders) into the run whose artifacts are at
    ``artifact_uri``, through a repository made for this upload and then dropped:
    ``MlflowClient.log_text`` reads the run first (a request per file) and keeps a
    repository per run, with its own thread pool and queue, in a process-wide cache of
    up to 1,024 runs (driver memory growing with every trial of a grid)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(artifact_uri, tracking_uri=mlflow.tracking_uri)
    with tempfile.TemporaryDirectory(prefix="lessdata-artifact-") as tmp:
        for i, (name, text) in enumerate(texts.items()):
            path = posixpath.normpath(name)
            local = Path(tmp, str(i), posixpath.basename(path))
            local.parent.mkdir()
            local.write_text(text)
            repo.log_artifact(str(local), posixpath.dirname(path) or None)


def runs_url(uri: str, experiment: str) -> str:
    """The UI's training-runs table of a grid in its saved view (``view_state``); for a
    local store, once `mlflow ui` serves it."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment}/runs?viewStateShareKey={VIEW_KEY}"
