"""What a report says about its runtime and energy columns (on the driver).

One line above the table says whether the grid's runtimes compare
(``orchestrator.comparability`` on the training time, and on CPU time beside it); when
they do not, the changes carry a dagger and a footnote names the cause. The energy column
says which of its parts a sensor measured and which codecarbon estimated, from the
trials' ``lessdata.energy_source.*`` tags.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from orchestrator.comparability import Comparability, runtime_comparability

__all__ = ["DAGGER", "Notes", "energy_sources", "runtime_notes"]

DAGGER = "†"
PARTS = ("cpu", "gpu", "ram")


@dataclass(frozen=True)
class Notes:
    """What the report says about its runtime and energy columns."""

    runtime: Comparability
    """On the training time (``train_s``): decides the daggers."""
    runtime_cpu: Comparability
    """The same test on the process's CPU time (``train_cpu_s``)."""
    energy: str = ""
    """Which parts of the energy a sensor measured and which were estimated."""
    energy_header: str = "Energy Wh"

    def header_line(self) -> str:
        """The one line above the table."""
        return f"runtimes: {self.runtime.note}"

    def footnotes(self) -> list[str]:
        out = []
        if not self.runtime.comparable:
            out.append(f"{DAGGER} runtimes do not compare, so neither do energy and CO2: "
                       f"{self.runtime.note} (on CPU time: {self.runtime_cpu.note})")
        if self.energy:
            out.append(self.energy)
        return out


def energy_sources(trials: pd.DataFrame) -> tuple[str, str]:
    """(the energy column's header, a note saying what each part of the energy rests on).

    From the trials' source tags: a part is *measured* when every trial's source for it is
    a sensor, *estimated* otherwise. The note gives the estimated parts' share of the
    energy, so a reader sees how much of the figure is a model and not a reading.
    """
    columns = [f"energy_source_{p}" for p in PARTS]
    if trials.empty or not all(c in trials for c in columns) or trials[columns].isna().all(
            axis=None):
        return "Energy Wh", "energy: where its parts came from was not recorded"
    measured: list[str] = []
    estimated: list[str] = []
    for part in PARTS:
        sources = sorted(set(trials[f"energy_source_{part}"].dropna().astype(str)) - {"none"})
        if not sources:
            continue
        label = f"{part.upper()} ({', '.join(sources)})"
        (measured if all(v.startswith("sensor") for v in sources) else estimated).append(label)
    parts = [f"measured by a sensor: {'; '.join(measured) or 'none'}"]
    if estimated:
        total = trials["energy_kwh"].sum()
        est = sum(trials[f"{p}_energy_kwh"].fillna(0.0).sum() for p in PARTS
                  if any(label.startswith(p.upper()) for label in estimated))
        share = f", {100 * est / total:.0f}% of the energy" if total > 0 else ""
        parts.append(f"estimated: {'; '.join(estimated)}{share}")
    header = ("Energy Wh (est.)" if estimated and not measured
              else "Energy Wh (part est.)" if estimated else "Energy Wh")
    return header, "energy: " + "; ".join(parts)


def runtime_notes(trials: pd.DataFrame) -> Notes:
    """Whether the grid's runtimes compare (wall and CPU time), and what the energy rests on."""
    header, energy = energy_sources(trials)
    return Notes(runtime_comparability(trials, "train_s"),
                 runtime_comparability(trials, "train_cpu_s"), energy, header)
