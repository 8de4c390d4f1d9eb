"""The trainable Tune is given: a name the driver can import without torch.

The driver only ships this function to the workers; torch, the model and the training loop
are imported on the worker, where the trial runs (``orchestrator.trainable``). A driver
that never imports torch starts about 1.5 s sooner, on every ``lessdata submit``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train_trial"]


def train_trial(params: dict[str, Any]) -> None:
    """Function trainable: one experiment x seed (see ``orchestrator.trainable``)."""
    from orchestrator import trainable

    trainable.train_trial(params)
