"""The selection stage as a ``torch.utils.data.Sampler``, for any PyTorch training loop.

``ScheduledSampler`` hands a ``DataLoader`` exactly the indices, in exactly the order, that
lessdata's ``Trainer.run_epoch`` trains on for the same (schedule, N, epochs, seed,
selection): it calls the same functions (``fraction_at``, ``count_for``, ``budget``,
``make_selector(...).select`` and the (seed, "order", epoch) generator's permutation), so
evaluation counts and subsets are those of a lessdata run. Nothing here imports Ray or
MLflow; it runs wherever the loop runs.

Informed strategies (``loss_soft``, ``hardest``, ``easiest``, ``forgetting``) read the
per-sample state the loop feeds with ``update(indices, losses, correct)`` after each step,
as the Trainer records it in its training pass; ``weights(indices)`` gives loss_soft's
rescaling weights (1 elsewhere).

Sharding (``rank``/``world_size``): every rank computes the same epoch order and takes
every ``world_size``-th position from ``rank`` on, as ``DistributedSampler`` does, but with
no padding and no dropping: the ranks' shards are disjoint and their union is the epoch's
subset, so total evaluations are unchanged; shard sizes differ by at most one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from pydantic import TypeAdapter, ValidationError
from torch.utils.data import Sampler

from trainers.config import TrainConfig
from trainers.errors import ConfigError
from trainers.experiments import experiment as registered_experiment
from trainers.rng import generator
from trainers.schedule import Schedule, count_for, fraction_at
from trainers.selection import SELECTIONS, SampleView, budget, make_selector

__all__ = ["ScheduledSampler", "resolve_schedule"]

ANNEAL = TrainConfig.model_fields["anneal"].default
_SCHEDULE = TypeAdapter(Schedule)


def resolve_schedule(experiment: str | Mapping[str, Any] | Schedule) -> Schedule:
    """A schedule from an experiment name (``"E3"``), a schedule mapping or a Schedule."""
    if isinstance(experiment, str):
        return registered_experiment(experiment)
    if isinstance(experiment, Mapping):
        try:
            return _SCHEDULE.validate_python(dict(experiment))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                f"bad schedule {dict(experiment)!r}: {where + ': ' if where else ''}{first['msg']}"
            ) from None
    return _SCHEDULE.validate_python(experiment)


class ScheduledSampler(Sampler[int]):
    """Indices of a training set of ``n`` samples, epoch by epoch, as lessdata selects them.

    Call ``set_epoch(epoch)`` before each epoch: that is the selection stage (informed
    strategies read the state ``update`` fed so far). ``len(sampler)`` is the epoch's count
    on this rank; ``evaluations`` counts the indices handed out so far. ``device`` is where
    the per-sample state of the informed strategies lives: the device of your losses.
    """

    def __init__(
        self,
        n: int,
        experiment: str | Mapping[str, Any] | Schedule = "Benchmark",
        *,
        epochs: int,
        seed: int = 0,
        selection: str = "fixed",
        labels: torch.Tensor | list[int] | None = None,
        anneal: float = ANNEAL,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self.schedule = resolve_schedule(experiment)
        _check_args(n, epochs, seed, selection, anneal, rank, world_size)
        self.n, self.epochs, self.seed = n, epochs, seed
        self.selection, self.anneal = selection, anneal
        self.rank, self.world_size = rank, world_size
        label_tensor = _labels(labels, n, selection)
        self.selector = make_selector(selection, label_tensor, seed)
        # Per-sample state as the Trainer keeps it, on the device the loop's losses are on
        # (no host sync per step): last loss (+inf: never seen), correct at the last visit,
        # forgetting events. Selection reads it once per epoch.
        self.device = torch.device(device)
        self.sample_loss = torch.full((n,), float("inf"), device=self.device)
        self.sample_correct = torch.zeros(n, dtype=torch.bool, device=self.device)
        self.forgettings = torch.zeros(n, dtype=torch.long, device=self.device)
        self.evaluations = 0
        self.epoch = 0
        self._order: torch.Tensor | None = None  # [count] the epoch's order (all ranks)
        self._weights = torch.ones(n)  # [N] loss weight of each sample this epoch

    # -- the selection stage ---------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s (0-based) subset and order, as ``Trainer.run_epoch`` does."""
        if not 0 <= epoch < self.epochs:
            raise ValueError(f"epoch must be in [0, {self.epochs}), got {epoch=}")
        self.epoch = epoch
        scheduled = count_for(fraction_at(self.schedule, epoch, self.epochs), self.n)
        count = budget(self.selection, self.anneal, scheduled, self.n, epoch, self.epochs)
        chosen = self.selector.select(epoch, count, self.sample_view())
        shuffle = torch.randperm(count, generator=generator(self.seed, "order", epoch))
        self._order = chosen.indices[shuffle]  # [count]
        self._weights = torch.ones(self.n)
        if chosen.weights is not None:
            self._weights[chosen.indices] = chosen.weights

    @property
    def epoch_indices(self) -> torch.Tensor:
        """This epoch's whole subset, in training order (every rank's shard interleaved)."""
        if self._order is None:
            self.set_epoch(self.epoch)
        assert self._order is not None
        return self._order

    @property
    def indices(self) -> torch.Tensor:
        """[len(self)] CPU int64: this rank's indices in the order ``__iter__`` yields them.

        Batch ``k`` of a ``DataLoader(batch_size=B)`` is ``indices[k * B:(k + 1) * B]``.
        """
        return self.epoch_indices[self.rank :: self.world_size]

    def __len__(self) -> int:
        return int(self.indices.numel())

    def __iter__(self) -> Iterator[int]:
        for index in self.indices.tolist():
            self.evaluations += 1
            yield index

    # -- informed selection ------------------------------------------------------------------

    def sample_view(self) -> SampleView:
        """The per-sample state the selection strategies read."""
        return SampleView(self.sample_loss, self.sample_correct, self.forgettings)

    @torch.no_grad()
    def update(
        self,
        indices: torch.Tensor,
        losses: torch.Tensor,
        correct: torch.Tensor | None = None,
    ) -> None:
        """Record the per-sample ``losses`` [B] (and ``correct`` [B] bool) of a training step.

        As the Trainer's ``_record``: the last loss, and for ``forgetting`` the correctness
        at this visit and the forgetting events (correct before, wrong now). ``indices``
        must be distinct (one batch). With ``device`` the losses' device, nothing waits for
        the device; otherwise the values are copied over (a sync per call from a GPU).
        """
        idx = torch.as_tensor(indices).to(self.device, non_blocking=True).long()
        loss = losses.detach().float().reshape(-1).to(self.device)
        if loss.numel() != idx.numel():
            raise ValueError(f"{idx.numel()} indices for {loss.numel()} losses")
        self.sample_loss[idx] = loss
        if correct is None:
            if self.selection == "forgetting":
                raise ValueError("selection='forgetting' needs update(..., correct=hits)")
            return
        hit = correct.detach().bool().reshape(-1).to(self.device)
        self.forgettings[idx] += (self.sample_correct[idx] & ~hit).long()
        self.sample_correct[idx] = hit

    def weights(self, indices: torch.Tensor) -> torch.Tensor:
        """[B] float32 loss weights of ``indices`` this epoch (loss_soft's 1 / (1 - p); else 1).

        On the device of ``indices``; the loss to back-propagate is ``(w * losses).mean()``.
        """
        idx = torch.as_tensor(indices)
        return self._weights[idx.long().cpu()].to(idx.device)

    # -- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What a resumed loop needs: the per-sample state, the epoch and the evaluations."""
        return {
            "epoch": self.epoch,
            "evaluations": self.evaluations,
            "sample_loss": self.sample_loss.clone(),
            "sample_correct": self.sample_correct.clone(),
            "forgettings": self.forgettings.clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sample_loss.copy_(state["sample_loss"])
        self.sample_correct.copy_(state["sample_correct"])
        self.forgettings.copy_(state["forgettings"])
        self.epoch, self.evaluations = int(state["epoch"]), int(state["evaluations"])
        self._order = None


def _check_args(
    n: int, epochs: int, seed: int, selection: str, anneal: float, rank: int, world_size: int
) -> None:
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n=}")
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs=}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed=}")
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown selection {selection!r}; expected one of: "
                          f"{', '.join(SELECTIONS)}")
    if not 0.0 < anneal <= 1.0:
        raise ConfigError(f"anneal must be in (0, 1], got {anneal=}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"need 0 <= rank < world_size, got {rank=}, {world_size=}")


def _labels(labels: torch.Tensor | list[int] | None, n: int, selection: str) -> torch.Tensor:
    """CPU int64 [N] labels; only ``stratified`` reads them (the others: zeros)."""
    if labels is None:
        if selection == "stratified":
            raise ConfigError("selection='stratified' needs labels=[the N training labels]")
        return torch.zeros(n, dtype=torch.long)
    tensor = torch.as_tensor(labels).long().cpu().reshape(-1)
    if tensor.numel() != n:
        raise ConfigError(f"labels has {tensor.numel()} entries for {n=} samples")
    if tensor.numel() and int(tensor.min()) < 0:
        raise ConfigError(f"labels must be >= 0, found {int(tensor.min())}")
    return tensor
