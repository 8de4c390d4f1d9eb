"""What crosses Ray: the trial's spec in, its per-epoch and final reports out.

A trial's reports are small typed records, defined here once. The trainable (on a worker)
sends them through ``tune.report`` with ``to_result``; the driver's callbacks read them
back with ``from_result``; nothing else reads a Tune result by key. The trial's param
dict is written by ``trial_param`` and read by ``trial_spec`` in the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.grid import TrialSpec

__all__ = [
    "EPOCH_METRICS",
    "FINAL_METRICS",
    "EpochReport",
    "FailedReport",
    "FinalReport",
    "Hardware",
    "REPORT_KEY",
    "Report",
    "from_result",
    "failure_of",
    "is_final",
    "param_space",
    "trial_key",
    "to_result",
    "trial_spec",
]

REPORT_KEY = "lessdata_report"  # the one Tune result key that holds a serialised record
_TRIAL = "trial"  # the one param-space key that holds the TrialSpec


@dataclass(frozen=True)
class Hardware:
    """Where a trial ran (runtimes compare only on like hardware)."""

    node: str
    node_ip: str
    node_id: str
    cpu_model: str
    gpu_model: str
    hardware: str


@dataclass(frozen=True)
class EpochReport:
    """One epoch of a trial (step = ``epoch``, 1-based). Counts are cumulative where named so."""

    epoch: int
    fraction: float
    samples: int
    evaluations: int
    """Training images so far (cumulative); its last value is the trial's total."""
    scoring_evaluations: int
    """Extra forward passes spent on scoring so far (cumulative)."""
    train_loss: float
    train_top1: float
    test_loss: float
    top1: float
    """Test top-1 of the EMA weights after this epoch."""
    lr: float
    epoch_s: float
    hardware: Hardware | None = None
    """Sent with the first epoch of every (re)start."""
    started_ms: int = 0
    """On the first report of every (re)start of the trainable: when it started (Unix ms,
    the trial's run starts then); 0 on the others."""
    replayed: bool = False
    """An epoch from before a checkpoint, sent again in case the driver never logged it."""

    def metrics(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in EPOCH_METRICS}


@dataclass(frozen=True)
class FinalReport:
    """A finished trial. Its evaluation totals are the last values of the epoch series."""

    best_top1: float
    best_epoch: int
    final_top1: float
    epochs_trained: int
    train_s: float
    """The training work only (the batches' augmentation, forward, backward, optimizer
    steps), every epoch and every piece of the trial summed: the runtime compared."""
    trial_s: float
    """The whole trial in this process, data loading included, warm-up excluded."""
    tracked_s: float
    """Time under the emissions tracker."""
    energy_kwh: float
    emissions_kg: float
    emissions_estimate_kg: float
    emissions_measured: float
    emissions_share: float
    hardware: Hardware
    eval_s: float = 0.0
    """The per-epoch test passes."""
    select_s: float = 0.0
    """The selection stage (scoring passes included)."""
    train_cpu_s: float = 0.0
    """CPU time of this process during the training work (other jobs inflate it less)."""
    train_gpu_s: float = 0.0
    """On a GPU: CUDA-event time of the training steps (0 on CPU)."""
    warmup_s: float = 0.0
    """This worker's warm-up before the trial's clocks started (0 when already warm)."""
    cpu_energy_kwh: float = 0.0
    gpu_energy_kwh: float = 0.0
    ram_energy_kwh: float = 0.0
    """The parts of ``energy_kwh`` (charged by share); where each came from: ``energy_sources``."""
    energy_sources: dict[str, str] = field(default_factory=dict)
    """Part (cpu, gpu, ram) -> 'sensor: ...' or 'estimate: ...' (``trainers.emissions``)."""
    emissions_attribution: str = ""
    codecarbon_csv: str = ""

    def metrics(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in FINAL_METRICS}


@dataclass(frozen=True)
class FailedReport:
    """A trial ended failed by its trainable, for a failure no retry can fix: Tune sees
    the trial end and does not retry it (``orchestrator.retry`` judges the failure)."""

    error: str
    """One line: the error's type and the first line of its message."""
    why: str
    """Why it is not retried: a ``orchestrator.record.Stop`` value."""

    def line(self) -> str:
        """The error and why it was not retried, in one line (the summary shows it)."""
        why = {"not_retryable": "not retried: no retry can fix it",
               "same_error": "not retried again: its retry failed the same way"}
        return f"{self.error} ({why.get(self.why, self.why)})"


def _numeric(cls: type) -> tuple[str, ...]:
    skip = {"epoch", "hardware", "started_ms", "replayed", "emissions_attribution",
            "codecarbon_csv", "energy_sources"}
    return tuple(f.name for f in fields(cls) if f.name not in skip)


EPOCH_METRICS = _numeric(EpochReport)
FINAL_METRICS = _numeric(FinalReport)
assert not set(EPOCH_METRICS) & set(FINAL_METRICS), "one name per fact"


Report = EpochReport | FinalReport | FailedReport


def to_result(report: Report) -> dict[str, Any]:
    """The dict ``tune.report`` takes: the record as JSON, and the epoch for Tune's own view."""
    kind = {EpochReport: "epoch", FinalReport: "final", FailedReport: "failed"}[type(report)]
    out: dict[str, Any] = {REPORT_KEY: json.dumps({"kind": kind, **asdict(report)})}
    if isinstance(report, EpochReport):
        out["epoch"] = report.epoch
    return out


def from_result(result: dict[str, Any]) -> Report:
    """The record inside a Tune result (the inverse of ``to_result``)."""
    data = json.loads(result[REPORT_KEY])
    kind = data.pop("kind")
    if kind == "failed":
        return FailedReport(**data)
    hardware = data.pop("hardware")
    hw = Hardware(**hardware) if hardware else None
    if kind == "epoch":
        return EpochReport(**data, hardware=hw)
    assert hw is not None, "a final report always names its hardware"
    return FinalReport(**data, hardware=hw)


def is_final(result: dict[str, Any] | None) -> bool:
    return (result is not None and REPORT_KEY in result
            and isinstance(from_result(result), FinalReport))


def failure_of(result: dict[str, Any] | None) -> FailedReport | None:
    """The failure a trial ended with (``None`` when its last result is not one)."""
    if result is None or REPORT_KEY not in result:
        return None
    report = from_result(result)
    return report if isinstance(report, FailedReport) else None


def param_space(specs: list[TrialSpec]) -> dict[str, Any]:
    """Tune's param space: one trial per spec."""
    from ray import tune

    return {_TRIAL: tune.grid_search([spec.model_dump(mode="json") for spec in specs])}


def trial_key(config: dict[str, Any]) -> str:
    """The key of the trial whose Tune config this is (no parsing of the whole spec)."""
    return str(config[_TRIAL]["key"])


def trial_spec(config: dict[str, Any]) -> TrialSpec:
    """The TrialSpec inside a Tune trial's config (the inverse of ``param_space``)."""
    from orchestrator.grid import TrialSpec

    return TrialSpec.model_validate(config[_TRIAL])
