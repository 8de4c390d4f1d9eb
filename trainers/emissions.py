"""Energy and CO2 of a training run: measured by codecarbon, estimated the paper's way.

*Measured*: codecarbon's ``OfflineEmissionsTracker`` (no network; the country's carbon
intensity is configured) around the training. Its energy has three parts, kept apart
(``cpu_energy_kwh``, ``gpu_energy_kwh``, ``ram_energy_kwh``), each with where it came
from (``energy_sources``): a *sensor* (Intel RAPL, NVML for an NVIDIA GPU) or an
*estimate* (CPU: TDP x load or a constant; RAM: codecarbon's power model, always an
estimate). A figure that rests on estimates says so in the report.

codecarbon sees whole devices (all of a GPU, the machine's CPU and RAM), so each trial is
attributed ``share`` of what was measured. On a GPU the share is *time-weighted*: the
device's compute processes are counted every ``measure_power_secs`` and the trial is
charged 1 / count for each interval, so a trial that shared its GPU for half its run and
had it alone for the other half pays 0.75, not its fractional request. Where there is no
such count (CPU), the share is the trial's CPU request over the machine's CPUs.

*Estimated* (the paper's method): runtime x a configured average device power x the grid
carbon intensity, times the same share.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from trainers.config import EmissionsConfig

__all__ = [
    "EmissionsReading",
    "energy_sources",
    "estimate_kg",
    "time_weighted_share",
    "track_emissions",
]

log = logging.getLogger(__name__)

ATTRIBUTION = "share of whole-device codecarbon measurement (trial's resource fraction)"
TIME_WEIGHTED = ("share of whole-device codecarbon measurement (time-weighted 1 / number of "
                 "compute processes on the GPU)")
SENSOR_CPU_MODES = ("intel_rapl", "intel_power_gadget", "windows_emi", "apple_powermetrics")


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
    cpu_energy_kwh: float = 0.0
    gpu_energy_kwh: float = 0.0
    ram_energy_kwh: float = 0.0
    energy_sources: dict[str, str] = field(default_factory=dict)
    """Part -> 'sensor: RAPL', 'estimate: TDP x load', 'none' ... (see ``energy_sources``)."""
    csv_path: Path | None = None

    @property
    def sensor_energy_kwh(self) -> float:
        """The part of ``energy_kwh`` that a sensor measured (the rest is estimated)."""
        parts = {"cpu": self.cpu_energy_kwh, "gpu": self.gpu_energy_kwh,
                 "ram": self.ram_energy_kwh}
        return sum(v for k, v in parts.items()
                   if self.energy_sources.get(k, "").startswith("sensor"))

    def add(self, other: EmissionsReading) -> EmissionsReading:
        """Sum of two spans (a run resumed from a checkpoint is tracked in pieces)."""
        total = self.duration_s + other.duration_s
        share = ((self.share * self.duration_s + other.share * other.duration_s) / total
                 if total > 0 else other.share)
        return EmissionsReading(
            duration_s=total,
            energy_kwh=self.energy_kwh + other.energy_kwh,
            emissions_kg=self.emissions_kg + other.emissions_kg,
            estimate_kg=self.estimate_kg + other.estimate_kg,
            measured=self.measured or other.measured,
            share=share,
            attribution=other.attribution,
            cpu_energy_kwh=self.cpu_energy_kwh + other.cpu_energy_kwh,
            gpu_energy_kwh=self.gpu_energy_kwh + other.gpu_energy_kwh,
            ram_energy_kwh=self.ram_energy_kwh + other.ram_energy_kwh,
            energy_sources=other.energy_sources or self.energy_sources,
            csv_path=other.csv_path or self.csv_path,
        )


def time_weighted_share(samples: Sequence[tuple[float, int]], end_s: float) -> float | None:
    """Time-weighted mean of 1 / count over ``samples`` of (time, processes on the device).

    Each sample holds until the next one (the last until ``end_s``); a count of 0 (our
    process not yet seen) counts as 1. None when there are no samples or no time.
    """
    if not samples:
        return None
    weighted = span = 0.0
    for (t, count), (t_next, _) in zip(samples, [*samples[1:], (end_s, 0)], strict=True):
        dt = max(0.0, t_next - t)
        weighted += dt / max(1, count)
        span += dt
    return weighted / span if span > 0 else 1.0 / max(1, samples[-1][1])


def energy_sources(hardware: Sequence[object]) -> dict[str, str]:
    """Where each part of codecarbon's energy comes from, read off its detected hardware.

    codecarbon keeps no public record of it: its hardware objects' class names (CPU, GPU,
    RAM, AppleSiliconChip) and the CPU's mode are read, defensively.
    """
    sources = {"cpu": "none", "gpu": "none", "ram": "none"}
    for item in hardware:
        kind = type(item).__name__
        if kind == "CPU":
            mode = str(getattr(item, "_mode", "unknown"))
            sources["cpu"] = (f"sensor: {mode}" if mode in SENSOR_CPU_MODES
                              else f"estimate: {mode}")
        elif kind == "GPU":
            sources["gpu"] = "sensor: NVML (whole device)"
        elif kind == "RAM":
            sources["ram"] = "estimate: codecarbon RAM power model"
        elif kind == "AppleSiliconChip":
            sources["cpu"] = sources["gpu"] = "sensor: powermetrics"
    return sources


class _ProcessCounter:
    """Counts the compute processes on one CUDA device every ``every_s`` (a thread)."""

    def __init__(self, count: Callable[[], int], every_s: float) -> None:
        self._count = count
        self._every_s = every_s
        self._stop = threading.Event()
        self.samples: list[tuple[float, int]] = []
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="lessdata-gpu-share")

    def _loop(self) -> None:
        while True:
            try:
                self.samples.append((time.monotonic(), self._count()))
            except Exception:  # noqa: BLE001 - no count: the static share stands
                return
            if self._stop.wait(self._every_s):
                return

    def __enter__(self) -> _ProcessCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _gpu_process_counter(device_index: int | None) -> Callable[[], int] | None:
    """A function counting compute processes on the CUDA device, or None (no NVML)."""
    if device_index is None:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
    except Exception:  # noqa: BLE001 - no NVIDIA driver or library
        return None

    def count() -> int:
        return len(pynvml.nvmlDeviceGetComputeRunningProcesses(handle))

    return count


@contextmanager
def track_emissions(
    config: EmissionsConfig, output_dir: Path, project_name: str = "lessdata",
    gpu_index: int | None = None,
) -> Iterator[EmissionsReading]:
    """Track the enclosed block; the yielded reading is complete once the block exits.

    ``gpu_index``: the CUDA device the block uses; its processes are counted for the
    time-weighted share. The tracker is always stopped, also when the block raises.
    """
    reading = EmissionsReading(share=config.share)
    counter = _gpu_process_counter(gpu_index) if config.enabled else None
    sampler = _ProcessCounter(counter, config.measure_power_secs) if counter else None
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
    if sampler is not None:
        sampler.__enter__()
    try:
        yield reading
    finally:
        reading.duration_s = time.perf_counter() - start
        share = config.share
        if sampler is not None:
            sampler.__exit__(None, None, None)
            measured_share = time_weighted_share(sampler.samples, time.monotonic())
            if measured_share is not None:
                share = measured_share
                reading.attribution = TIME_WEIGHTED
        reading.share = share
        reading.estimate_kg = estimate_kg(reading.duration_s, config) / config.share * share
        if tracker is not None:
            emissions = tracker.stop()
            data = tracker.final_emissions_data
            if emissions is not None and data is not None:
                reading.measured = True
                reading.emissions_kg = float(emissions) * share
                reading.energy_kwh = float(data.energy_consumed) * share
                reading.cpu_energy_kwh = float(data.cpu_energy) * share
                reading.gpu_energy_kwh = float(data.gpu_energy) * share
                reading.ram_energy_kwh = float(data.ram_energy) * share
                reading.energy_sources = energy_sources(getattr(tracker, "_hardware", []))
                reading.csv_path = output_dir / "emissions.csv"
            else:
                log.warning("codecarbon returned no measurement; only the estimate is set")
