"""Energy parts, where each came from, and the time-weighted GPU share (real codecarbon)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainers.config import EmissionsConfig
from trainers.emissions import (
    EmissionsReading,
    energy_sources,
    time_weighted_share,
    track_emissions,
)


def test_time_weighted_share_charges_each_interval_its_own_count() -> None:
    # shared by 2 for 5 s, then alone for 5 s: 0.5 * 0.5 + 0.5 * 1
    assert time_weighted_share([(0.0, 2), (5.0, 1)], 10.0) == pytest.approx(0.75)
    # alone, then shared by 4 for three quarters of the time
    assert time_weighted_share([(0.0, 1), (1.0, 4)], 4.0) == pytest.approx((1 + 3 / 4) / 4)
    assert time_weighted_share([(0.0, 3)], 9.0) == pytest.approx(1 / 3)


def test_time_weighted_share_edges() -> None:
    assert time_weighted_share([], 1.0) is None
    assert time_weighted_share([(0.0, 0)], 2.0) == 1.0  # our process not yet listed
    assert time_weighted_share([(3.0, 2)], 3.0) == 0.5  # no time elapsed: the last count


def test_real_tracker_keeps_parts_and_their_sources(tmp_path: Path) -> None:
    with track_emissions(EmissionsConfig(measure_power_secs=1), tmp_path) as reading:
        sum(i * i for i in range(2_000_000))
    assert reading.measured
    parts = reading.cpu_energy_kwh + reading.gpu_energy_kwh + reading.ram_energy_kwh
    assert parts == pytest.approx(reading.energy_kwh, rel=1e-6)
    assert reading.ram_energy_kwh > 0
    assert reading.energy_sources["ram"].startswith("estimate")
    assert set(reading.energy_sources) == {"cpu", "gpu", "ram"}
    # this machine has no RAPL and no GPU: nothing here is a sensor reading
    if not Path("/sys/class/powercap/intel-rapl").exists():
        assert reading.energy_sources["cpu"].startswith("estimate")
        assert reading.sensor_energy_kwh == 0.0


def test_share_scales_every_part(tmp_path: Path) -> None:
    config = EmissionsConfig(measure_power_secs=1, share=0.25)
    with track_emissions(config, tmp_path) as reading:
        sum(i * i for i in range(500_000))
    assert reading.share == 0.25
    whole = reading.energy_kwh / 0.25
    assert reading.ram_energy_kwh / 0.25 <= whole + 1e-12


def test_energy_sources_classifies_by_hardware_kind() -> None:
    class CPU:
        def __init__(self, mode: str) -> None:
            self._mode = mode

    class GPU:
        pass

    class RAM:
        pass

    assert energy_sources([CPU("intel_rapl"), GPU(), RAM()]) == {
        "cpu": "sensor: intel_rapl", "gpu": "sensor: NVML (whole device)",
        "ram": "estimate: codecarbon RAM power model"}
    assert energy_sources([CPU("cpu_load")])["cpu"] == "estimate: cpu_load"
    assert energy_sources([])["gpu"] == "none"


def test_add_sums_parts_and_time_weights_the_share() -> None:
    a = EmissionsReading(duration_s=10, energy_kwh=3, cpu_energy_kwh=1, ram_energy_kwh=2,
                         share=1.0, energy_sources={"cpu": "estimate: x"})
    b = EmissionsReading(duration_s=30, energy_kwh=6, cpu_energy_kwh=2, ram_energy_kwh=4,
                         share=0.5, energy_sources={"cpu": "sensor: intel_rapl"})
    total = a.add(b)
    assert (total.cpu_energy_kwh, total.ram_energy_kwh, total.energy_kwh) == (3, 6, 9)
    assert total.share == pytest.approx((10 * 1.0 + 30 * 0.5) / 40)
    assert total.energy_sources == {"cpu": "sensor: intel_rapl"}
