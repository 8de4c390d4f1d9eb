"""lessdata's training side: schedules, selection, data, the model and the loop.

``from trainers import ScheduledSampler`` gives the selection stage as a torch ``Sampler``
for any PyTorch loop. Importing this package imports nothing heavy: torch is imported
when ``ScheduledSampler`` is first asked for, Ray and MLflow never.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainers.sampler import ScheduledSampler

__all__ = ["ScheduledSampler"]


def __getattr__(name: str) -> Any:
    if name == "ScheduledSampler":
        from trainers.sampler import ScheduledSampler

        return ScheduledSampler
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")
