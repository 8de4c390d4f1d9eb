"""Energy and CO2 of a training run: measured by codecarbon, estimated the paper's way.

*Measured*: codecarbon's ``OfflineEmissionsTracker`` (no network; the country's carbon
intensity is configured) around the training. It sees whole devices (all of a GPU, the
machine's CPU and RAM), so when several trials share one device each trial is attributed
``share`` of what was measured: its fractional GPU (or CPU) request over the device.

*Estimated* (the paper's method): runtime x a configured average device power x the grid
carbon intensity, times the same share.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from trainers.config import EmissionsConfig

__all__ = ["EmissionsReading", "estimate_kg", "track_emissions"]

log = logging.getLogger(__name__)

ATTRIBUTION = "share of whole-device codecarbon measurement (trial's resource fraction)"


def estimate_kg(duration_s: float, config: EmissionsConfig) -> float:
    """The paper-style estimate: runtime x device power x carbon intensity x share."""
    energy_kwh = duration_s / 3600.0 * config.device_power_w / 1000.0
    return energy_kwh * config.carbon_intensity_g_per_kwh / 1000.0 * config.share


@dataclass
class EmissionsReading:
    """What one tracked span consumed; filled in when the span ends."""

    duration_s: float = 0.0
    energy_kwh: float = 0.0
    """Measured by codecarbon, attributed by share."""
    emissions_kg: float = 0.0
    """Measured by codecarbon (kg CO2eq), attributed by share."""
    estimate_kg: float = 0.0
    """Paper-style estimate (kg CO2eq), not measured."""
    measured: bool = False
    share: float = 1.0
    attribution: str = ATTRIBUTION
    csv_path: Path | None = None
    details: dict[str, float] = field(default_factory=dict)

    def add(self, other: EmissionsReading) -> EmissionsReading:
        """Sum of two spans (a run resumed from a checkpoint is tracked in pieces)."""
        return EmissionsReading(
            duration_s=self.duration_s + other.duration_s,
            energy_kwh=self.energy_kwh + other.energy_kwh,
            emissions_kg=self.emissions_kg + other.emissions_kg,
            estimate_kg=self.estimate_kg + other.estimate_kg,
            measured=self.measured or other.measured,
            share=other.share,
            csv_path=other.csv_path or self.csv_path,
        )


@contextmanager
def track_emissions(
    config: EmissionsConfig, output_dir: Path, project_name: str = "lessdata"
) -> Iterator[EmissionsReading]:
    """Track the enclosed block; the yielded reading is complete once the block exits.

    The tracker is always stopped, also when the block raises.
    """
    reading = EmissionsReading(share=config.share)
    tracker = None
    if config.enabled:
        from codecarbon import OfflineEmissionsTracker  # heavy import, only when used

        output_dir.mkdir(parents=True, exist_ok=True)
        tracker = OfflineEmissionsTracker(
            project_name=project_name,
            country_iso_code=config.country_iso_code,
            measure_power_secs=config.measure_power_secs,
            output_dir=str(output_dir),
            output_file="emissions.csv",
            save_to_file=True,
            log_level="error",
            allow_multiple_runs=True,  # concurrent trials on one machine each run a tracker
        )
        tracker.start()
    start = time.perf_counter()
    try:
        yield reading
    finally:
        reading.duration_s = time.perf_counter() - start
        reading.estimate_kg = estimate_kg(reading.duration_s, config)
        if tracker is not None:
            emissions = tracker.stop()
            data = tracker.final_emissions_data
            if emissions is not None and data is not None:
                reading.measured = True
                reading.emissions_kg = float(emissions) * config.share
                reading.energy_kwh = float(data.energy_consumed) * config.share
                reading.details = {
                    "cpu_energy_kwh": float(data.cpu_energy) * config.share,
                    "gpu_energy_kwh": float(data.gpu_energy) * config.share,
                    "ram_energy_kwh": float(data.ram_energy) * config.share,
                }
                reading.csv_path = output_dir / "emissions.csv"
            else:
                log.warning("codecarbon returned no measurement; only the estimate is set")
