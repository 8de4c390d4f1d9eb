"""Row 1: the Trainer's images/s over a bare PyTorch loop's, same recipe, side by side.

The bare loop is the trainer's recipe written plainly: randperm, index gather, batch
augmentation, forward, cross-entropy, backward, Adam step, weight-EMA lerp (with the same
warm-up and buffer copy). Same model (``build_model``, same seed), same MNIST subset, same
batch, device and threads. What the ratio measures is lessdata's own overhead: the
selection stage, lr setting, per-sample loss record, loss/accuracy accounting.

Only training is timed. The Trainer's ``run_epoch`` ends with a test evaluation (of a
100-image test subset); it is timed again separately right after and subtracted
(``workloads.train_seconds``). The bare loop does no evaluation.

    python bench/trainer_throughput.py [--quick] [--device cpu]
"""

from __future__ import annotations

import copy
import sys

import torch
import torch.nn.functional as F

from harness import Goal, Options, Row, interleave, main, median, median_ratio, timed
from trainers.augment import train_transform
from trainers.config import ModelConfig
from trainers.data import Split, dataset_info
from trainers.model import build_model
from trainers.rng import generator
from trainers.train import take_subset
from workloads import BATCH, load_mnist, mnist_config, mnist_trainer, train_seconds

GOAL = Goal(">=", 0.97)
SEED = 0


class BareLoop:
    """The same training recipe with nothing of lessdata's around it."""

    def __init__(self, train: Split, options: Options) -> None:
        config = mnist_config(options.device)
        info = dataset_info("mnist")
        self.device = options.device
        self.images = train.images.to(self.device)  # uint8 [N, 1, 28, 28]
        self.labels = train.labels.to(self.device)  # int64 [N]
        assert isinstance(config.model, ModelConfig)  # the capsule CNN, not a plugin
        self.model = build_model(config.model, info.channels, info.input_size,
                                 info.num_classes, SEED).to(self.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.augment = train_transform("mnist")
        self.ema_decay = config.ema_decay
        self.epoch = 0
        self.step = 0

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.ema_decay, (1 + self.step) / (10 + self.step))
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()),
                             1.0 - decay)
        for ema_b, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            ema_b.copy_(b)

    def run_epoch(self) -> None:
        n = len(self.labels)
        order = torch.randperm(n, generator=generator(SEED, "order", self.epoch))
        order = order.to(self.device)
        aug_gen = generator(SEED, "augment", self.epoch, device=self.device)
        self.model.train()
        for batch in order.split(BATCH):
            x = self.augment(self.images[batch], aug_gen)  # [B, 1, 28, 28]
            loss = F.cross_entropy(self.model(x), self.labels[batch])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            self._update_ema()
        self.epoch += 1


def measure(options: Options) -> list[Row]:
    size, reps = (1200, 3) if options.quick else (6000, 7)
    data = load_mnist()
    config = mnist_config(options.device, train_subset=size)
    trainer = mnist_trainer(config, data)  # sets torch threads to 2 on CPU
    bare = BareLoop(take_subset(data[0], size), options)
    # one warm-up epoch each (allocator, kernels, Adam state), not counted
    train_seconds(trainer)
    timed(bare.run_epoch, options.device)
    trainer_s, bare_s = interleave(
        [lambda: train_seconds(trainer), lambda: timed(bare.run_epoch, options.device)], reps
    )
    ratio = median_ratio(bare_s, trainer_s)  # (size / trainer_s) / (size / bare_s)
    detail = (f"{size} MNIST images, batch {BATCH}, width 0.25, {torch.get_num_threads()} "
              f"threads, {options.device}; {reps} interleaved pairs; median images/s "
              f"trainer {size / median(trainer_s):.0f}, bare {size / median(bare_s):.0f}; "
              f"training only (test evaluation subtracted)")
    return [Row.judged("trainer throughput / bare loop", ratio, GOAL, detail)]


if __name__ == "__main__":
    sys.exit(main(measure, __doc__ or ""))
