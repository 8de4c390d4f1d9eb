"""Warming a worker up before its first measured trial: nothing of it is charged to a run.

A worker's first trial would otherwise pay for the allocator's first blocks, the first
calls of every kernel (and a ``torch.compile``), the data's first trip to the device and
codecarbon's hardware probe, all inside its training time. ``warm_up`` runs a few
training steps and a test pass on a *copy* of the trainer's model with a throwaway
optimizer, then starts and stops one emissions tracker, before the trial's clocks start.
It changes nothing of the run: the model, optimizer, counters and every generator of the
trainer are untouched, and torch's global RNG state is restored (a test checks the run
is bit-identical with and without it).
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from trainers.emissions import track_emissions
from trainers.train import Trainer

__all__ = ["warm_up"]


def warm_up(trainer: Trainer, steps: int = 3, emissions: bool = True) -> float:
    """Run ``steps`` throwaway training steps and a test batch; the seconds it took."""
    start = time.perf_counter()
    cfg = trainer.config
    with torch.random.fork_rng(devices=[trainer.device] if trainer.device.type == "cuda"
                               else []):
        model = copy.deepcopy(trainer.model).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(0)  # not the run's: nothing of the run is drawn
        aug_gen = torch.Generator(device=trainer.device).manual_seed(0)
        take = min(len(trainer.train), cfg.batch_size * steps)
        order = torch.randperm(len(trainer.train), generator=gen)[:take].to(trainer.device)
        for batch in order.split(cfg.batch_size):
            x = trainer.augment(trainer.train.images[batch], aug_gen)  # [B, C, S, S]
            loss = F.cross_entropy(model(x).float(), trainer.train.labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            model.eval()
            model(trainer.prepare_test(trainer.test.images[: cfg.batch_size]))
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
    if emissions and cfg.emissions.enabled:
        with tempfile.TemporaryDirectory(prefix="lessdata-warmup-") as tmp, track_emissions(
            cfg.emissions, Path(tmp)
        ):
            pass  # codecarbon's hardware probe, paid here once per worker
    return time.perf_counter() - start
