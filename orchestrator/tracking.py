"""MLflow tracking of one grid, on the driver: runs found by identity, written by one thread.

A trial's run is made when its trial starts (so its duration is the trial's) and found
again by its key ``lessdata.trial_key`` on every later resume, retry or re-submission:
never a second run for one trial. A parent run per experiment carries the grid's params
and the children's metric keys (mean under the same name, std as ``<name>_std``) and,
once every seed is in, the per-epoch mean and std series. Every write goes through
``orchestrator.writer``, in one lane per trial run (its writes in order, runs in
parallel) and one per experiment's parent; the record's shape comes from
``orchestrator.record``. Steps already in MLflow are never logged again. See
docs/tracking.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
import time
from array import array
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from orchestrator import provenance, record
from orchestrator.record import Kind, State, Tag
from orchestrator.results import EPOCH_METRICS, EpochReport, FinalReport, Hardware
from orchestrator.writer import Batch, Writer
from trainers.experiments import source_of
from trainers.factories import dataset_label

if TYPE_CHECKING:
    from mlflow.entities import RunInfo

    from orchestrator.grid import TrialSpec

__all__ = ["Tracker"]

_BATCH = 1000  # MLflow's limit of metrics per log_batch


def _now_ms() -> int:
    return int(time.time() * 1000)


def _hardware_tags(hw: Hardware | None) -> dict[str, str]:
    return {} if hw is None else {tag: getattr(hw, f) for f, tag in record.HARDWARE_TAGS.items()}


class Tracker:
    """The driver's MLflow writer for one grid; a context manager around its writer thread.

    Callers are Tune's callbacks, which Tune calls serially; they only queue writes.
    """

    def __init__(self, uri: str, grid: str, retry_s: float = 2.0, threads: int = 8) -> None:
        self.uri = uri
        self.grid = grid
        self.client = record.client(uri)
        experiment = record.experiment_id(self.client, grid, create=True)
        assert experiment is not None  # create=True
        self.experiment_id = experiment
        self.writer = Writer(f"lessdata-mlflow-{grid}", retry_s=retry_s, threads=threads)
        self.specs: dict[str, TrialSpec] = {}
        self.train_size: int | None = None
        self.runs: dict[str, str] = {}  # trial key -> run id (found, or made at its start)
        self._artifact_uris: dict[str, str] = {}  # trial key -> its run's artifacts, until final
        self.parents: dict[str, str] = {}  # experiment label -> parent run id
        self.last_step: dict[str, int] = {}  # trial key -> last epoch already in MLflow
        self._series_done: set[str] = set()  # parents whose per-epoch series are logged
        self._started: set[str] = set()  # experiments with a trial started by this driver
        self._undescribed: set[str] = set()  # runs made whose params are not sent yet
        self._ended: dict[str, int] = {}  # experiment -> last child end (ms)
        # What the parents aggregate, kept here so no aggregate reads MLflow per trial:
        self._finals: dict[str, dict[str, dict[str, float]]] = {}  # experiment -> key -> final
        self._epochs: dict[str, Series] = {}  # key -> its epochs sent, until its parent's series
        self._partial: set[str] = set()  # trials with epochs logged before this driver
        self._opening: set[str] = set()  # trials whose run making began (a retry looks first)
        self._run_of: dict[str, Callable[[], str]] = {}  # trial key -> its run id, when sent
        self._parent_lock = threading.Lock()  # one parent per experiment, whichever lane

    def __enter__(self) -> Tracker:
        self.writer.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.writer.__exit__(exc_type, exc, tb)

    @property
    def pending(self) -> int:
        return self.writer.pending

    def flush(self, timeout_s: float = 120.0) -> bool:
        return self.writer.flush(timeout_s)

    # -- finding runs (synchronous, before any trial starts) -------------------------------

    def search(self, kind: Kind, **tags: str) -> list[Any]:
        return record.search(self.client, self.experiment_id,
                             {Tag.GRID: self.grid, Tag.KIND: kind, **tags})

    def prepare(self, trials: Iterable[TrialSpec], train_size: int | None = None) -> set[str]:
        """Find the runs earlier submissions made; the keys of the trials already finished."""
        self.specs = {t.key: t for t in trials}
        self.train_size = train_size
        finished = set()
        for run in self.search(Kind.TRIAL):
            key = run.data.tags[Tag.TRIAL_KEY]
            if key in self.specs:
                self.runs[key] = run.info.run_id
                self.last_step[key] = record.last_epoch(self.client, run)
                if self.last_step[key]:
                    self._partial.add(key)
                if run.data.tags.get(Tag.STATE) == State.FINISHED:
                    finished.add(key)
                    self._finals.setdefault(self.specs[key].experiment, {})[key] = {
                        k: v for k, v in run.data.metrics.items() if k in record.FINAL_METRICS}
                else:  # runs again: its final's artifacts go there
                    self._artifact_uris[key] = run.info.artifact_uri
        for run in self.search(Kind.EXPERIMENT):
            self.parents[run.data.tags[Tag.PARENT_OF]] = run.info.run_id
        return finished

    # -- queued writes ---------------------------------------------------------------------

    def start_trial(self, key: str, tune_trial_id: str = "", start_ms: int | None = None
                    ) -> None:
        """The trial's run starts at ``start_ms`` (default: now): made, or found and marked
        running, when the writer reaches it."""
        start = start_ms or _now_ms()
        self.last_step.setdefault(key, 0)
        self._started.add(self.specs[key].experiment)
        self.writer.put(f"start of {key}", lambda: self._open(key, start, tune_trial_id),
                        lane=key)

    def log_epoch(self, key: str, report: EpochReport) -> None:
        """One epoch at step = epoch (skipped when MLflow has it), and its hardware tags."""
        from mlflow.entities import Metric

        items: list[Metric] = []
        if report.epoch > self.last_step.get(key, 0):
            self.last_step[key] = report.epoch
            now = _now_ms()
            self._epochs.setdefault(key, Series()).add(report.epoch, report.metrics())
            items = [Metric(k, v, now, report.epoch) for k, v in report.metrics().items()]
        tags = _run_tags(_hardware_tags(report.hardware))
        if items or tags:
            self.writer.put(f"epoch {report.epoch} of {key}",
                            Batch(self.client, self._run_id(key), tuple(items), (), tuple(tags)),
                            lane=key)

    def log_final(self, key: str, report: FinalReport,
                  artifacts: dict[str, str | Callable[[], str]]) -> None:
        """Final metrics at step = last epoch, tags, text artifacts (or functions making
        them on the writer thread), the share param; the run ends now."""
        from mlflow.entities import Metric, Param

        end, step = _now_ms(), report.epochs_trained
        metrics = [Metric(k, v, end, step) for k, v in report.metrics().items()]
        sources: dict[str, str] = {
            tag: report.energy_sources[part]
            for part, tag in record.ENERGY_SOURCE_TAGS.items() if part in report.energy_sources}
        tags = _run_tags({**_hardware_tags(report.hardware), Tag.STATE: State.FINISHED,
                          Tag.EMISSIONS_ATTRIBUTION: report.emissions_attribution, **sources})
        share = [Param("emissions.share", str(report.emissions_share))]
        experiment = self.specs[key].experiment
        self._ended[experiment] = max(end, self._ended.get(experiment, 0))

        def op() -> None:
            run_id = self.runs[key]
            texts = {name: text if isinstance(text, str) else text()
                     for name, text in artifacts.items()}
            artifact_uri = self._artifact_uris.get(key)
            if artifact_uri is None:  # not made nor found by this driver: MLflow knows it
                artifact_uri = self.client.get_run(run_id).info.artifact_uri
            record.log_texts(self.client, artifact_uri, texts)
            self.client.log_batch(run_id, metrics=metrics, params=share, tags=tags,
                                  synchronous=True)
            self.client.set_terminated(run_id, "FINISHED", end_time=end)
            self._artifact_uris.pop(key, None)
            self._finals.setdefault(experiment, {})[key] = report.metrics()  # for _aggregate

        self.writer.put(f"final metrics of {key}", op, lane=key)
        # After this final (and, by replacing, every queued one): counts every seed in.
        self.writer.put(f"aggregate of {experiment}", lambda: self._aggregate(experiment),
                        replace=True, lane=_parent_lane(experiment), after=[key])

    def mark_failed(self, key: str, reason: str, stop: str = "") -> None:
        """The run ends FAILED, with ``reason`` (one line) and why no retry followed."""
        end = _now_ms()
        tags: dict[str, str] = {Tag.STATE: State.FAILED, Tag.ERROR: reason[:5000]}
        if stop:
            tags[Tag.STOP] = stop

        def op() -> None:
            run_id = self.runs[key]
            self.client.log_batch(run_id, tags=_run_tags(tags), synchronous=True)
            self.client.set_terminated(run_id, "FAILED", end_time=end)

        self.writer.put(f"failure of {key}", op, lane=key)

    def close_parents(self) -> None:
        """End the parents of experiments this driver ran that did not finish every seed
        (the others ended with their last seed)."""
        for experiment in sorted(self._started):
            if experiment in self._series_done:
                continue
            self.writer.put(f"aggregate of {experiment}",  # a barrier: after every write
                            functools.partial(self._aggregate, experiment, closing=True),
                            replace=True)

    def complete_parent(self, experiment: str) -> None:
        """Aggregate ``experiment``'s parent again: for a parent whose last seed finished
        under a driver killed before it aggregated (its trials never run again to do it)."""
        self.writer.put(f"aggregate of {experiment}",  # a barrier: after every write
                        functools.partial(self._aggregate, experiment, closing=True),
                        replace=True)

    def _run_id(self, key: str) -> Callable[[], str]:
        """The trial's run id, read when a write is sent (one callable per trial, so the
        writer can merge its batches)."""
        if key not in self._run_of:
            self._run_of[key] = functools.partial(self.runs.__getitem__, key)
        return self._run_of[key]

    # -- on the writer's threads (one trial's writes on one at a time) ------------------------

    def _open(self, key: str, start_ms: int, tune_trial_id: str) -> None:
        """Find or make the trial's run; safe to retry after any step failed."""
        spec = self.specs[key]
        with self._parent_lock:
            parent = self._parent(spec, start_ms)
        state: dict[str, str] = {Tag.STATE: State.RUNNING, Tag.TUNE_TRIAL_ID: tune_trial_id}
        # prepare() found every run made before; only a retried start may have made one
        # whose answer was lost: look first then (no search per trial otherwise).
        found = self.search(Kind.TRIAL, **{Tag.TRIAL_KEY: key}) if (
            key not in self.runs and key in self._opening) else []
        self._opening.add(key)
        if key not in self.runs:
            if found:
                self.runs[key] = found[0].info.run_id
                self._artifact_uris[key] = found[0].info.artifact_uri
            else:
                tags = {**self._tags(spec, Kind.TRIAL), **state, Tag.PARENT_RUN: parent,
                        Tag.EXPERIMENT: spec.experiment, Tag.TRIAL_KEY: key,
                        Tag.SEED: str(spec.seed)}
                info = self._create(start_ms, tags, f"{spec.experiment}-seed{spec.seed}")
                self.runs[key], self._artifact_uris[key] = info.run_id, info.artifact_uri
        run_id = self.runs[key]
        if run_id in self._undescribed:
            self._describe(run_id, spec, exclude=set())
            self._undescribed.discard(run_id)
        else:
            self.client.update_run(run_id, status="RUNNING")
            self.client.log_batch(run_id, tags=_run_tags(state), synchronous=True)

    def _parent(self, spec: TrialSpec, start_ms: int) -> str:
        if spec.experiment not in self.parents:
            tags = {**self._tags(spec, Kind.EXPERIMENT), Tag.PARENT_OF: spec.experiment}
            self.parents[spec.experiment] = self._create(start_ms, tags, spec.experiment).run_id
        run_id = self.parents[spec.experiment]
        if run_id in self._undescribed:
            self._describe(run_id, spec, exclude={"seed"})
            self._undescribed.discard(run_id)
        return run_id

    def _create(self, start_ms: int, tags: dict[str, str], name: str) -> RunInfo:
        """A new run; its params and dataset follow (``_describe``), retried on their own."""
        info = self.client.create_run(self.experiment_id, start_time=start_ms, tags=tags,
                                      run_name=name).info
        self._undescribed.add(info.run_id)
        return info

    def _tags(self, spec: TrialSpec, kind: Kind) -> dict[str, str]:
        cfg = spec.config
        return {Tag.KIND: kind, Tag.GRID: self.grid, Tag.METHOD: cfg.schedule.method,
                Tag.SCHEDULE: cfg.schedule.model_dump_json(),
                Tag.DATASET: dataset_label(cfg.dataset),
                Tag.SELECTION: cfg.selection,
                Tag.SOURCE: spec.source or source_of(spec.experiment),
                Tag.GIT_COMMIT: provenance.git_sha(), Tag.USER: provenance.user()}

    def _describe(self, run_id: str, spec: TrialSpec, exclude: set[str]) -> None:
        """A run's params (the resolved config; the share comes with the final metrics)
        and its dataset input."""
        from mlflow.entities import Dataset, DatasetInput, InputTag, Param

        config = spec.config.model_dump(mode="json", exclude={"emissions": {"share"}})
        params = record.flatten(config)
        params.update(checkpoint_every=str(spec.checkpoint_every),
                      lessdata_version=provenance.package_version(),
                      git_sha=provenance.git_sha())
        if self.train_size is not None:
            params["train_size"] = str(self.train_size)
        items = [Param(k, v[:6000]) for k, v in params.items() if k not in exclude]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start:start + 100], synchronous=True)
        source = {"dataset": spec.config.model_dump(mode="json")["dataset"],
                  "train_subset": spec.config.train_subset,
                  "train_size": self.train_size}
        digest = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:8]
        dataset = Dataset(name=dataset_label(spec.config.dataset), digest=digest,
                          source_type="lessdata", source=json.dumps(source),
                          profile=json.dumps({"num_rows": self.train_size}))
        self.client.log_inputs(run_id, [DatasetInput(
            dataset, tags=[InputTag("mlflow.data.context", "training")])])

    def _aggregate(self, experiment: str, closing: bool = False) -> None:
        """The parent's mean and std over the finished seeds: those this driver sent and
        those earlier submissions finished (``prepare``), held here, not searched for."""
        from mlflow.entities import Metric

        if experiment not in self.parents:
            return  # no trial of it ever started
        parent = self.parents[experiment]
        children = dict(self._finals.get(experiment, {}))
        planned = [s for s in self.specs.values() if s.experiment == experiment]
        step, now = max(s.config.epochs for s in planned), _now_ms()
        items = [Metric(record.N_SEEDS, float(len(children)), now, step)]
        for name in record.FINAL_METRICS:
            values = [c[name] for c in children.values() if name in c]
            if values:
                mean, std = record.mean_std(values)
                items += [Metric(name, mean, now, step),
                          Metric(record.std_name(name), std, now, step)]
        complete = len(children) >= len(planned)
        # The series once, when every seed is in: a step logged twice would draw twice.
        if children and complete and experiment not in self._series_done:
            items += self._series(sorted(children), now)
            self._series_done.add(experiment)
            for key in children:  # sent: a grid keeps only its unfinished experiments' epochs
                self._epochs.pop(key, None)
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(parent, metrics=items[start:start + _BATCH],
                                  synchronous=True)
        if complete or closing:
            status = "FINISHED" if children else "FAILED"
            self.client.set_terminated(parent, status,
                                       end_time=self._ended.get(experiment, now))

    def _series(self, keys: list[str], now: int) -> list[Any]:
        """Per epoch: mean and std over seeds of every epoch metric (the UI's seed band);
        read from MLflow only for trials with epochs logged before this driver."""
        from mlflow.entities import Metric

        out = []
        for name in record.EPOCH_METRICS:
            by_step: dict[int, list[float]] = {}
            for key in keys:
                for epoch, value in self._history(key, name):
                    by_step.setdefault(epoch, []).append(value)
            for step, values in sorted(by_step.items()):
                mean, std = record.mean_std(values)
                out += [Metric(name, mean, now, step),
                        Metric(record.std_name(name), std, now, step)]
        return out

    def _history(self, key: str, name: str) -> list[tuple[int, float]]:
        if key in self._partial:
            return [(m.step, m.value)
                    for m in self.client.get_metric_history(self.runs[key], name)]
        series = self._epochs.get(key)
        return series.of(name) if series is not None else []


class Series:
    """One trial's epoch metrics as the driver sent them, packed: a step array and one
    value array, a row of the epoch metrics per epoch (8 bytes a value, two arrays per
    trial, not a dict per epoch or an array per metric), so a grid of many trials holds
    little until its experiments' seed bands are logged. An epoch without a value for a
    metric (or with NaN) is left out of that metric's series."""

    __slots__ = ("_steps", "_values")
    NAMES = EPOCH_METRICS
    _COLUMN = {name: i for i, name in enumerate(NAMES)}

    def __init__(self) -> None:
        self._steps: array[int] = array("l")
        self._values: array[float] = array("d")

    def add(self, epoch: int, metrics: dict[str, float]) -> None:
        row = [math.nan] * len(self.NAMES)
        for name, value in metrics.items():
            row[self._COLUMN[name]] = value  # KeyError: not an epoch metric
        self._steps.append(epoch)
        self._values.extend(row)

    def of(self, name: str) -> list[tuple[int, float]]:
        """``(epoch, value)`` of metric ``name``, in the order sent (increasing epochs)."""
        column, width = self._COLUMN[name], len(self.NAMES)
        values = self._values[column::width]
        return [(step, value) for step, value in zip(self._steps, values, strict=True)
                if not math.isnan(value)]


def _parent_lane(experiment: str) -> str:
    return f"parent of {experiment}"


def _run_tags(tags: dict[str, str]) -> list[Any]:
    from mlflow.entities import RunTag

    return [RunTag(k, v) for k, v in tags.items()]
