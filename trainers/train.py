"""The training loop: a selection stage before every epoch, exact accounting.

``Trainer`` holds one run's state (model, optimizer, weight EMA, counters) and trains
epoch by epoch; it knows nothing about Ray or MLflow and calls back with an
``EpochResult``. Its ``state_dict`` is the whole state: a run restored from it continues
exactly (same subsets, same order, same augmentation, no evaluation counted twice),
because every generator is re-derived from (seed, purpose, epoch) and the per-sample
state that informed selection reads (last loss, last-visit correctness, forgetting
events) is part of it.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import repeat
from typing import Any, Concatenate, ParamSpec, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from trainers.config import TrainConfig
from trainers.data import DatasetInfo, Split
from trainers.flags import TorchFlags, torch_flags
from trainers.plugins import Transforms, builtin_transforms, make_model
from trainers.rng import generator
from trainers.schedule import count_for, fraction_at
from trainers.selection import SampleView, budget, make_selector, stratified_order

__all__ = ["EpochResult", "TrainResult", "Trainer", "lr_at", "resolve_device", "torch_flags_for"]

EVAL_BATCH = 1000


@dataclass(frozen=True)
class EpochResult:
    """One finished epoch. ``epoch`` counts from 1; ``evaluations`` is cumulative.

    ``scoring_evaluations`` (cumulative) counts the forward passes a selection strategy
    made to score samples, apart from training; its time is inside ``epoch_s``.

    Times, each apart: ``train_s`` is the training work only (the batches' augmentation,
    forward, backward and optimizer steps), ``eval_s`` the test pass, ``select_s`` the
    selection stage, ``epoch_s`` all of the epoch; ``train_cpu_s`` is the CPU time the
    process spent in the training work (other jobs on a shared machine inflate it far less
    than wall time) and, on a GPU, ``train_gpu_s`` the CUDA-event time of the training
    steps (0 on CPU).
    """

    epoch: int
    fraction: float
    samples: int
    evaluations: int
    train_loss: float
    train_top1: float
    test_loss: float
    test_top1: float
    lr: float
    epoch_s: float
    scoring_evaluations: int = 0  # with defaults: histories of older checkpoints
    train_s: float = 0.0
    eval_s: float = 0.0
    select_s: float = 0.0
    train_cpu_s: float = 0.0
    train_gpu_s: float = 0.0

    def metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items() if k != "epoch"}


@dataclass(frozen=True)
class TrainResult:
    """A finished (or stopped) run; times are sums over its epochs (see ``EpochResult``)."""

    epochs: int
    best_top1: float
    best_epoch: int
    final_top1: float
    evaluations: int
    train_s: float
    scoring_evaluations: int = 0
    eval_s: float = 0.0
    select_s: float = 0.0
    train_cpu_s: float = 0.0
    train_gpu_s: float = 0.0

    def metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def lr_at(config: TrainConfig, epoch: int) -> float:
    """Per-epoch learning rate (epoch 0-based): lr x decay^epoch, floored at lr_min."""
    return max(config.lr_min, config.lr * config.lr_decay**epoch)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def take_subset(split: Split, size: int | None, seed: int = 0) -> Split:
    """A class-balanced random subset, part of the data definition: the same for every run seed."""
    if size is None or size >= len(split):
        return split
    order = stratified_order(split.labels.cpu(), generator(seed, "subset"))
    return split.subset(order[:size])


def torch_flags_for(config: TrainConfig, device: torch.device) -> TorchFlags:
    """The process-wide switches a run of ``config`` trains under: its CPU threads, and TF32
    on for ``tf32`` only (off otherwise, so fp32 and bf16's fp32 parts are real fp32 even
    where cuDNN's default would allow TF32 convolutions)."""
    tf32 = config.precision == "tf32"
    return TorchFlags(
        threads=config.threads if device.type == "cpu" else None,
        matmul_precision="high" if tf32 else "highest",
        cudnn_tf32=tf32,
    )


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _under_flags(
    method: Callable[Concatenate[Trainer, _P], _R],
) -> Callable[Concatenate[Trainer, _P], _R]:
    """Run a ``Trainer`` method inside ``Trainer.flags()``."""

    @functools.wraps(method)
    def scoped(self: Trainer, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.flags():
            return method(self, *args, **kwargs)

    return scoped


def _no_augment(prepare: Callable[[torch.Tensor], torch.Tensor]
                ) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """The test-time transform, with the training transform's signature."""
    return lambda images, _gen: prepare(images)


class Trainer:
    """One training run. Runs on the worker that owns the trial's device.

    Building one changes no process-wide switch: ``fit``, ``run_epoch`` and ``evaluate``
    run under ``flags()`` (threads, TF32), which restores the switches when they return.
    """

    def __init__(self, config: TrainConfig, train: Split, test: Split, info: DatasetInfo,
                 transforms: Transforms | None = None) -> None:
        """``transforms`` turn stored batches into model input (default: the built-in set
        ``info.name``'s); the model comes from ``config.model``'s factory
        (``trainers.plugins.make_model``)."""
        self.config = config
        self.device = resolve_device(config.device)
        self.torch_flags = torch_flags_for(config, self.device)
        self._flags_entered = False
        train = take_subset(train, config.train_subset)
        test = take_subset(test, config.test_subset)
        self.selector = make_selector(config.selection, train.labels, config.seed)
        self.train = train.to(self.device)  # the whole split lives on the device as uint8
        self.test = test.to(self.device)
        self.n_train = len(train)
        self.model = make_model(config.model, info, config.seed).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self._forward: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(self.model) if config.compile else self.model  # type: ignore[assignment]
        )
        transforms = transforms if transforms is not None else builtin_transforms(info.name)
        self.augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] = (
            transforms.train if config.augment else _no_augment(transforms.test)
        )
        self.prepare_test = transforms.test
        # Per-sample state, recorded in the training pass (no extra forward pass); informed
        # selection reads it. Last loss (+inf = never seen, so loss_soft always keeps it),
        # correct at the last visit, and forgetting events (correct -> wrong between visits).
        self.sample_loss = torch.full((self.n_train,), float("inf"), device=self.device)
        self.sample_correct = torch.zeros(self.n_train, dtype=torch.bool, device=self.device)
        self.forgettings = torch.zeros(self.n_train, dtype=torch.long, device=self.device)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.evaluations = 0
        self.scoring_evaluations = 0
        self.history: list[EpochResult] = []

    @contextmanager
    def flags(self) -> Iterator[None]:
        """This run's torch switches for the block, the process's own restored after it.

        Re-entrant: an inner ``flags()`` (``run_epoch`` inside ``fit``) changes nothing.
        """
        if self._flags_entered:
            yield
            return
        self._flags_entered = True
        try:
            with torch_flags(self.torch_flags):
                yield
        finally:
            self._flags_entered = False

    # -- one epoch -------------------------------------------------------------------------

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        if self.config.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"
        )

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config.ema_decay
        if self.config.ema_warmup:
            decay = min(decay, (1 + self.step) / (10 + self.step))
        ema_p: list[torch.Tensor] = list(self.ema.parameters())
        live_p: list[torch.Tensor] = list(self.model.parameters())
        torch._foreach_lerp_(ema_p, live_p, 1.0 - decay)
        for ema_b, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            ema_b.copy_(b)

    @_under_flags
    def run_epoch(self) -> EpochResult:
        """Select, then train one epoch, then evaluate the EMA weights on the test set."""
        t, cfg = self.epoch, self.config
        start = time.perf_counter()
        fraction = fraction_at(cfg.schedule, t, cfg.epochs)
        scheduled = count_for(fraction, self.n_train)
        count = budget(cfg.selection, cfg.anneal, scheduled, self.n_train, t, cfg.epochs)
        if count != scheduled:  # past loss_soft's annealing boundary: all the data
            fraction = 1.0
        chosen = self.selector.select(t, count, self.sample_view())
        assert chosen.indices.numel() == count, (cfg.selection, chosen.indices.numel(), count)
        shuffle = torch.randperm(count, generator=generator(cfg.seed, "order", t))  # [count]
        order = chosen.indices[shuffle].to(self.device, non_blocking=True)  # [count]
        weights = None  # [count] loss weight of each position of ``order``
        if chosen.weights is not None:
            weights = chosen.weights[shuffle].to(self.device, non_blocking=True)
        lr = lr_at(cfg, t)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        aug_gen = generator(cfg.seed, "augment", t, device=self.device)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        batches = order.split(cfg.batch_size)  # batches are index gathers
        batch_weights = repeat(None) if weights is None else weights.split(cfg.batch_size)
        timer = _StepTimer(self.device)
        select_s = timer.wall_start - start
        for batch, w in zip(batches, batch_weights, strict=False):  # repeat() never ends
            x = self._inputs(self.augment(self.train.images[batch], aug_gen))  # [B, C, S, S]
            y = self.train.labels[batch]  # [B]
            with self._autocast():
                logits = self._forward(x)  # [B, K]
            losses = F.cross_entropy(logits.float(), y, reduction="none")  # [B]
            self.optimizer.zero_grad(set_to_none=True)
            (losses.mean() if w is None else (w * losses).mean()).backward()
            self.optimizer.step()
            self.step += 1
            self._update_ema()
            detached = losses.detach()
            hit = logits.detach().argmax(1) == y  # [B]
            self._record(batch, detached, hit)
            loss_sum += detached.sum()
            correct += hit.sum()
        train_s, train_cpu_s, train_gpu_s = timer.stop()
        eval_start = time.perf_counter()
        test_loss, test_top1 = self.evaluate()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        end = time.perf_counter()
        self.epoch += 1
        self.evaluations += count
        self.scoring_evaluations += chosen.scoring_evaluations
        result = EpochResult(
            epoch=self.epoch,
            fraction=fraction,
            samples=count,
            evaluations=self.evaluations,
            train_loss=loss_sum.item() / count,  # one host sync per epoch
            train_top1=correct.item() / count,
            test_loss=test_loss,
            test_top1=test_top1,
            lr=lr,
            epoch_s=end - start,
            scoring_evaluations=self.scoring_evaluations,
            train_s=train_s,
            eval_s=end - eval_start,
            select_s=select_s,
            train_cpu_s=train_cpu_s,
            train_gpu_s=train_gpu_s,
        )
        self.history.append(result)
        return result

    def sample_view(self) -> SampleView:
        """The per-sample state a selection strategy reads (on the device, no copy)."""
        return SampleView(self.sample_loss, self.sample_correct, self.forgettings)

    @torch.no_grad()
    def _record(self, batch: torch.Tensor, losses: torch.Tensor, hit: torch.Tensor) -> None:
        """Per-sample state after a step (on the device, no host sync; indices distinct)."""
        self.sample_loss[batch] = losses
        self.forgettings[batch] += (self.sample_correct[batch] & ~hit).long()
        self.sample_correct[batch] = hit

    @_under_flags
    @torch.no_grad()
    def evaluate(self, model: nn.Module | None = None) -> tuple[float, float]:
        """(mean loss, top-1) of ``model`` (default: the EMA weights) on the test split."""
        model = self.ema if model is None else model
        model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        n = len(self.test)
        for start in range(0, n, EVAL_BATCH):
            x = self._inputs(self.prepare_test(self.test.images[start : start + EVAL_BATCH]))
            y = self.test.labels[start : start + EVAL_BATCH]
            with self._autocast():
                logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
        return loss_sum.item() / n, correct.item() / n

    # -- the whole run ---------------------------------------------------------------------

    @_under_flags
    def fit(self, on_epoch: Callable[[EpochResult], None] | None = None) -> TrainResult:
        """Train the remaining epochs, calling ``on_epoch`` after each."""
        while self.epoch < self.config.epochs:
            result = self.run_epoch()
            if on_epoch is not None:
                on_epoch(result)
        return self.result()

    @property
    def train_s(self) -> float:
        """Training time so far (the batches' work only, summed over epochs)."""
        return sum(r.train_s for r in self.history)

    def result(self) -> TrainResult:
        times = {name: sum(getattr(r, name) for r in self.history)
                 for name in ("train_s", "eval_s", "select_s", "train_cpu_s", "train_gpu_s")}
        if not self.history:
            return TrainResult(self.epoch, 0.0, 0, 0.0, self.evaluations,
                               scoring_evaluations=self.scoring_evaluations, **times)
        best = max(self.history, key=lambda r: r.test_top1)
        return TrainResult(
            epochs=self.epoch,
            best_top1=best.test_top1,
            best_epoch=best.epoch,
            final_top1=self.history[-1].test_top1,
            evaluations=self.evaluations,
            scoring_evaluations=self.scoring_evaluations,
            **times,
        )

    # -- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The complete state; loadable with ``torch.load(weights_only=True)``."""
        return {
            "config": self.config.model_dump_json(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sample_loss": self.sample_loss,
            "sample_correct": self.sample_correct,
            "forgettings": self.forgettings,
            "epoch": self.epoch,
            "step": self.step,
            "evaluations": self.evaluations,
            "scoring_evaluations": self.scoring_evaluations,
            "history": [asdict(r) for r in self.history],
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = TrainConfig.model_validate_json(state["config"])
        diff = _config_diff(saved, self.config)
        if diff:
            raise ValueError(f"checkpoint was written by another config: {json.dumps(diff)}")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        # Checkpoints from before informed selection: NaN meant never seen; no correctness.
        inf = float("inf")
        self.sample_loss.copy_(state["sample_loss"].nan_to_num(nan=inf, posinf=inf))
        if "sample_correct" in state:
            self.sample_correct.copy_(state["sample_correct"])
            self.forgettings.copy_(state["forgettings"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.evaluations = int(state["evaluations"])
        self.scoring_evaluations = int(state.get("scoring_evaluations", 0))
        self.history = [EpochResult(**r) for r in state["history"]]
        torch.set_rng_state(state["torch_rng"])


class _StepTimer:
    """Wall, process-CPU and (on a GPU) CUDA-event time of one epoch's training steps."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        if self.cuda:
            torch.cuda.synchronize(device)  # what came before is not charged to training
            self.events = (torch.cuda.Event(enable_timing=True),
                           torch.cuda.Event(enable_timing=True))
            self.events[0].record()
        self.cpu_start = time.process_time()
        self.wall_start = time.perf_counter()

    def stop(self) -> tuple[float, float, float]:
        """(wall s, CPU s, GPU s); one host sync on a GPU, none on a CPU."""
        gpu_s = 0.0
        if self.cuda:
            self.events[1].record()
            torch.cuda.synchronize(self.device)
            gpu_s = self.events[0].elapsed_time(self.events[1]) / 1000.0
        return (time.perf_counter() - self.wall_start, time.process_time() - self.cpu_start,
                gpu_s)


# Where a run executes may change on resume (another node, another path to the same data).
_PLACEMENT_FIELDS = {"device", "data_dir", "threads"}


def _config_diff(a: TrainConfig, b: TrainConfig) -> dict[str, Any]:
    da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
    keys = (da.keys() | db.keys()) - _PLACEMENT_FIELDS
    return {k: [da.get(k), db.get(k)] for k in sorted(keys) if da.get(k) != db.get(k)}
