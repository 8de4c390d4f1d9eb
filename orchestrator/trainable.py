"""The Ray Tune trainable: one trial = one experiment x seed. Runs on a Ray worker.

It turns the trial dict into a typed ``TrialSpec`` once, restores the trainer from the
trial's checkpoint when there is one, reports every epoch to Tune, checkpoints the whole
trainer state every ``checkpoint_every`` epochs, and reports the final metrics (with
emissions and the codecarbon CSV) as one last result marked ``final``.

Before the trial's clocks start, a worker process warms up once per kind of trainer
(``trainers.warmup``): Tune reuses one worker process per slot (``reuse_actors``), so only
its first trial of each (dataset, model, device, precision, compile) would otherwise pay
the first kernel calls, the allocator's first blocks and codecarbon's hardware probe inside
its training time. The cache of what was warmed is per process, like what it stands for.

Checkpoints live in ``spec.checkpoint_dir`` (one folder or bucket prefix per trial key, on
storage every node sees: ``orchestrator.storage``), not in Tune's trial folder: a Tune
retry, ``lessdata resume`` after a killed driver and a re-submission all find the same
state there.
"""

from __future__ import annotations

import io
import os
import platform
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from ray import tune

from orchestrator import retry
from orchestrator.grid import TrialSpec
from orchestrator.results import EpochReport, FinalReport, Hardware, to_result, trial_spec
from orchestrator.storage import Store, open_store
from orchestrator.sysmetrics import system_metrics
from trainers.emissions import EmissionsReading
from trainers.run import build_trainer, run_training
from trainers.train import EpochResult, Trainer
from trainers.warmup import warm_up

__all__ = ["epoch_report", "hardware", "train_trial", "warm_once"]

STATE_FILE = "trainer.pt"
_WARM: set[tuple[str, ...]] = set()  # what this worker process has warmed up already


def warm_once(trainer: Trainer) -> float:
    """Warm this process up for ``trainer``'s kind of work, once; the seconds it took.

    What is warm (kernels, their autotuning, a compiled graph, the allocator's blocks)
    depends on the data's shape, the model, the device, the precision and compilation:
    a new combination warms up again, a repeated one costs 0.
    """
    cfg = trainer.config
    key = (cfg.model_dump_json(include={"dataset", "model"}), str(trainer.device), cfg.precision,
           str(cfg.compile))
    if key in _WARM:
        return 0.0
    seconds = warm_up(trainer)
    _WARM.add(key)
    return seconds


def hardware(device: torch.device) -> Hardware:
    """Where a trial ran: node, CPU and GPU model (runtime compares only on like hardware)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    import ray

    return Hardware(
        node=socket.gethostname(),
        node_ip=ray.util.get_node_ip_address(),
        node_id=ray.get_runtime_context().get_node_id(),
        cpu_model=cpu,
        gpu_model=gpu,
        hardware=f"{cpu} | {gpu}",
    )


def _share(spec: TrialSpec, resources: dict[str, float]) -> float:
    """The part of the measured devices this trial is charged for."""
    gpu = resources.get("GPU", resources.get("gpu", 0.0))
    if gpu:
        return min(1.0, float(gpu))
    cpu = resources.get("CPU", resources.get("cpu", 1.0))
    return min(1.0, float(cpu) / (os.cpu_count() or 1))


def save_checkpoint(store: Store, state: dict[str, Any], so_far: EmissionsReading) -> None:
    """Published as a whole (``Store.publish``): a crash mid-write leaves the previous one;
    a full disk is a ``StorageError`` (folder, size, space free) and leaves no partial file."""
    carried = {k: v for k, v in so_far.__dict__.items() if k not in ("csv_path", "details")}
    buffer = io.BytesIO()  # its size is the space the write needs
    torch.save({**state, "emissions_so_far": carried}, buffer)
    store.publish(STATE_FILE, buffer.getvalue(), what="a checkpoint")


def load_checkpoint(
    store: Store, device: torch.device
) -> tuple[dict[str, Any] | None, EmissionsReading | None]:
    """(trainer state, emissions of earlier pieces) or (None, None) for a fresh trial."""
    data = store.read_published(STATE_FILE)
    if data is None:
        return None, None
    state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    return state, EmissionsReading(**state.pop("emissions_so_far"))


def _history(state: dict[str, Any]) -> list[EpochResult]:
    return [EpochResult(**row) for row in state["history"]]


def epoch_report(result: EpochResult, hw: Hardware | None = None, started_ms: int = 0,
                 replayed: bool = False) -> EpochReport:
    """The trainer's epoch as the trial reports it (its test top-1 is ``top1``)."""
    return EpochReport(
        epoch=result.epoch, fraction=result.fraction, samples=result.samples,
        evaluations=result.evaluations, scoring_evaluations=result.scoring_evaluations,
        train_loss=result.train_loss, train_top1=result.train_top1,
        test_loss=result.test_loss, top1=result.test_top1, lr=result.lr,
        epoch_s=result.epoch_s, hardware=hw, started_ms=started_ms, replayed=replayed,
    )


def train_trial(params: dict[str, Any]) -> None:
    """Function trainable (runs on a worker): a failure no retry can fix ends the trial
    failed (a ``FailedReport``), any other is raised for Tune to retry (``orchestrator.retry``).
    """
    spec = trial_spec(params)
    folder = open_store(spec.checkpoint_dir)
    try:
        _train(spec)
    except StopIteration:  # Ray's runner thread reads it as "stop, no error"
        raise
    except Exception as exc:
        failed = retry.judge(exc, folder)
        if failed is None:
            raise
        tune.report(to_result(failed))
        return
    retry.forget(folder)


def _train(spec: TrialSpec) -> None:
    start, started_ms = time.perf_counter(), int(time.time() * 1000)
    resources = tune.get_context().get_trial_resources().required_resources
    config = spec.config.model_copy(
        update={
            "emissions": spec.config.emissions.model_copy(
                update={"share": _share(spec, resources)}
            ),
            "threads": spec.config.threads or max(1, int(resources.get("CPU", 1))),
        }
    )
    trainer = build_trainer(config)
    warmup_s = warm_once(trainer)  # before any of the trial's clocks: charged to none
    started_ms += int(1000 * warmup_s)  # the run lasts trial_s, which the warm-up is not in
    ckpt_dir = open_store(spec.checkpoint_dir)
    restore, so_far = load_checkpoint(ckpt_dir, trainer.device)
    info = hardware(trainer.device)
    out_dir = Path(tempfile.mkdtemp(prefix="lessdata-trial-"))

    def on_epoch(result: EpochResult, tr: Trainer) -> None:
        first = result.epoch == restore_epoch + 1  # hardware, once per (re)start
        if result.epoch % spec.checkpoint_every == 0 or result.epoch == config.epochs:
            save_checkpoint(ckpt_dir, tr.state_dict(), so_far or EmissionsReading())
        tune.report(to_result(epoch_report(result, info if first else None,
                                           started_ms if first and restore is None else 0)))

    restore_epoch = int(restore["epoch"]) if restore else 0
    if restore is not None:
        # Epochs done before the checkpoint may not have reached the driver (it can die
        # between our checkpoint and its log): report them again; the driver skips every
        # step MLflow already holds.
        for i, earlier in enumerate(_history(restore)):
            tune.report(to_result(epoch_report(earlier, started_ms=started_ms if i == 0 else 0,
                                               replayed=True)))
    with system_metrics(spec.system_metrics_uri, spec.grid, spec.key):
        summary = run_training(
            config, out_dir, on_epoch=on_epoch, trainer=trainer, restore=restore,
            emissions_so_far=so_far,
        )
    # The finished state, with the emissions of every piece: a re-run of this trial (its
    # final metrics lost with the driver, say) only replays, it never trains again.
    save_checkpoint(ckpt_dir, trainer.state_dict(), summary.emissions)
    csv = summary.emissions.csv_path
    e, r = summary.emissions, summary.result
    tune.report(to_result(FinalReport(
        best_top1=r.best_top1, best_epoch=r.best_epoch, final_top1=r.final_top1,
        epochs_trained=r.epochs, train_s=r.train_s,
        trial_s=time.perf_counter() - start - warmup_s,
        tracked_s=e.duration_s, energy_kwh=e.energy_kwh, emissions_kg=e.emissions_kg,
        emissions_estimate_kg=e.estimate_kg, emissions_measured=float(e.measured),
        emissions_share=e.share, hardware=info, eval_s=r.eval_s, select_s=r.select_s,
        train_cpu_s=r.train_cpu_s, train_gpu_s=r.train_gpu_s, warmup_s=warmup_s,
        cpu_energy_kwh=e.cpu_energy_kwh, gpu_energy_kwh=e.gpu_energy_kwh,
        ram_energy_kwh=e.ram_energy_kwh, energy_sources=dict(e.energy_sources),
        emissions_attribution=e.attribution,
        codecarbon_csv=csv.read_text() if csv and csv.exists() else "",
    )))
