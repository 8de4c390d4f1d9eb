"""MLflow system metrics (CPU, memory, disk, network, GPU) of a trial, on its worker.

Only with ``lessdata submit --system-metrics``: the one case where a worker writes to
MLflow itself, since the driver cannot see the worker's machine. The trial's run is made
by the driver when the trial starts; the worker finds it by the trial's key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator import record
from orchestrator.record import Kind, Tag

__all__ = ["SAMPLING_S", "system_metrics"]

log = logging.getLogger(__name__)

SAMPLING_S = 5.0


def _find_run(uri: str, grid: str, key: str, wait_s: float) -> str | None:
    client = record.client(uri)
    deadline = time.monotonic() + wait_s
    while True:
        experiment = record.experiment_id(client, grid)
        if experiment is not None:
            runs = record.search(client, experiment, {Tag.GRID: grid, Tag.KIND: Kind.TRIAL,
                                                      Tag.TRIAL_KEY: key})
            if runs:
                return str(runs[0].info.run_id)
        if time.monotonic() > deadline:
            return None
        time.sleep(1.0)


@contextmanager
def system_metrics(uri: str | None, grid: str, key: str, wait_s: float = 60.0
                   ) -> Iterator[None]:
    """Sample this machine into the trial's run while the block runs (no-op without a URI)."""
    if uri is None:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    run_id = _find_run(uri, grid, key, wait_s)
    if run_id is None:
        log.warning("no MLflow run for %s after %.0f s: no system metrics", key, wait_s)
        yield
        return
    monitor = SystemMetricsMonitor(run_id, sampling_interval=SAMPLING_S, resume_logging=True,
                                   tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
