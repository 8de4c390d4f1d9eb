"""GPU-hours of a grid, for the dry run: planned evaluations over a measured images/s.

Runs on the driver; pure arithmetic. The images/s is a trial's training images per second
on one GPU, measured (``bash bench/gpu.sh`` prints it; ``lessdata submit ... --dry-run
--images-per-s N`` passes it in), or measured by the dry run's own probe when the machine
it runs on has a GPU. On one GPU the trials run one after another; packed ``PACKED`` to a
GPU (a grid asking ``gpu: 0.25`` per trial) they share it, and the GPU's aggregate
throughput is ``packed_speedup`` times one trial's: ``PACKED_SPEEDUP`` is the goal
docs/benchmarks.md sets for bench/gpu.sh's packing row, an assumption until that row is
measured, and the output says so.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PACKED", "PACKED_SPEEDUP", "GpuEstimate", "estimate_gpu_hours"]

PACKED = 4
PACKED_SPEEDUP = 2.5
"""Aggregate throughput of 4 packed trials over one trial's: docs/benchmarks.md's goal for
bench/gpu.sh's packing row (>= 2.5x), not a measurement."""


@dataclass(frozen=True)
class GpuEstimate:
    """GPU-hours of a grid's training evaluations, and what they rest on."""

    images_per_s: float
    source: str
    gpu_hours: float
    """On one GPU, one trial at a time."""
    packed: int
    packed_speedup: float
    packed_gpu_hours: float
    test_share: float
    """Test images evaluated over training evaluations: what the test passes add, at most,
    at the training rate (forward-only, so less)."""

    def lines(self) -> list[str]:
        return [
            f"GPU estimate: {self.gpu_hours:,.1f} GPU-hours on one GPU (one trial at a "
            f"time); {self.packed_gpu_hours:,.1f} GPU-hours with {self.packed} trials packed "
            f"per GPU",
            f"  basis: training evaluations / {self.images_per_s:,.0f} training images/s "
            f"({self.source}); packed: {self.packed_speedup:g}x one trial's throughput per "
            f"GPU (docs/benchmarks.md's goal for 4 packed trials, not yet measured); test "
            f"passes add at most {self.test_share:.0%} more; selection scoring, checkpoints "
            f"and start-up not included",
        ]


def estimate_gpu_hours(evaluations: int, test_images: int, images_per_s: float, source: str,
                       packed: int = PACKED, packed_speedup: float = PACKED_SPEEDUP
                       ) -> GpuEstimate:
    """GPU-hours of ``evaluations`` training images at ``images_per_s`` (one trial on one
    GPU), alone and ``packed`` per GPU at ``packed_speedup`` times the throughput."""
    if not images_per_s > 0:
        raise ValueError(f"images per second must be positive: {images_per_s=}")
    if not 1 <= packed_speedup <= packed:
        raise ValueError(f"packing speedup must be in [1, {packed}]: {packed_speedup=}")
    hours = evaluations / images_per_s / 3600
    return GpuEstimate(images_per_s, source, hours, packed, packed_speedup,
                       hours / packed_speedup, test_images / max(1, evaluations))
