"""One training run from a config: load data, train, track emissions.

The entry point that both ``lessdata train`` (in-process) and the Ray trainable call.
Neither this module nor the loop imports ray or mlflow.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainers.config import TrainConfig
from trainers.data import Split, dataset_info
from trainers.emissions import EmissionsReading, track_emissions
from trainers.plugins import load_data
from trainers.train import EpochResult, Trainer, TrainResult

__all__ = ["RunSummary", "build_trainer", "nvml_index", "run_training"]

log = logging.getLogger(__name__)

EpochHook = Callable[[EpochResult, Trainer], None]


@dataclass(frozen=True)
class RunSummary:
    """Everything a finished run reports."""

    result: TrainResult
    emissions: EmissionsReading
    history: list[EpochResult] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Final metrics, with units in the names; measured and estimated CO2 apart."""
        e = self.emissions
        return {
            **self.result.metrics(),
            "energy_kwh": e.energy_kwh,
            "emissions_kg": e.emissions_kg,
            "emissions_estimate_kg": e.estimate_kg,
            "emissions_measured": float(e.measured),
            "emissions_share": e.share,
            "tracked_s": e.duration_s,
        }


def build_trainer(
    config: TrainConfig, data: tuple[Split, Split] | None = None, *, download: bool = False
) -> Trainer:
    """Load both splits once through the data set's factory (a built-in set's files are
    checked first), and build the trainer.

    ``data`` is (train, test) already loaded (or made) for the built-in ``config.dataset``:
    tests and benchmarks that build many trainers load the splits once and pass them here.
    """
    if data is not None:
        assert isinstance(config.dataset, str), "pre-loaded splits are for built-in sets"
        return Trainer(config, *data, dataset_info(config.dataset))
    loaded = load_data(config.dataset, config.data_dir, download=download)
    return Trainer(config, loaded.train, loaded.test, loaded.info, loaded.transforms)


def nvml_index(device: torch.device) -> int | None:
    """The NVML index of a CUDA ``device`` (its processes are counted for the GPU share).

    CUDA numbers the visible devices only; NVML numbers every device of the machine. Under
    ``CUDA_VISIBLE_DEVICES`` (Ray sets it) CUDA's index i is the i-th listed one; a list of
    UUIDs cannot be mapped here (None: the trial's static share stands). None off CUDA.
    """
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
               if v.strip()]
    if not visible:
        return index
    if index < len(visible) and visible[index].isdigit():
        return int(visible[index])
    return None


def run_training(
    config: TrainConfig,
    output_dir: Path,
    *,
    on_epoch: EpochHook | None = None,
    trainer: Trainer | None = None,
    restore: dict[str, Any] | None = None,
    emissions_so_far: EmissionsReading | None = None,
) -> RunSummary:
    """Train ``config`` to its last epoch under an emissions tracker.

    ``restore`` is a ``Trainer.state_dict`` to continue from; ``emissions_so_far`` what
    earlier pieces of the same run consumed (summed into the result).
    """
    trainer = trainer if trainer is not None else build_trainer(config)
    if restore is not None:
        trainer.load_state_dict(restore)
        log.info("restored at epoch %d (%d evaluations)", trainer.epoch, trainer.evaluations)
    hook = None if on_epoch is None else (lambda r: on_epoch(r, trainer))
    with track_emissions(config.emissions, output_dir / "codecarbon",
                         gpu_index=nvml_index(trainer.device)) as reading:
        result = trainer.fit(hook)
    total = reading if emissions_so_far is None else emissions_so_far.add(reading)
    return RunSummary(result=result, emissions=total, history=list(trainer.history))
