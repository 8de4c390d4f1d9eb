"""Row 3: the selection stage's time over one training epoch's, for every strategy.

The selection stage is what the Trainer does before its training loop, timed on its own
on synthetic data at N = 60,000 and N = 1,200,000 (labels in 10 classes; a per-sample
state with random last losses, last-visit correctness and forgetting counts, as the
informed strategies read it):

- ``make_selector`` (once per run; charged here in full to a single epoch, the worst case),
- the per-epoch ``select(epoch, count, view)`` and the shuffle of the chosen indices (and
  loss weights) with the epoch's ``order`` generator, as ``Trainer.run_epoch`` does them,
  taking the slowest of the counts for 25%, 50%, 75% and 100% of N.

The epoch it is compared with is a real Trainer epoch on MNIST (training part, test
evaluation subtracted) at a measured images/s, scaled to N images: a 60,000-image epoch
(and a 1,200,000-image one) on CPU would take minutes. Selection and training
measurements are interleaved and their medians taken.

    python bench/selection_overhead.py [--quick] [--device cpu]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial

import torch

from harness import Goal, Options, Row, interleave, main, median, timed
from trainers.rng import generator
from trainers.schedule import count_for
from trainers.selection import SELECTIONS, SampleView, Selector, make_selector
from workloads import load_mnist, mnist_config, mnist_trainer, train_seconds

GOAL = Goal("<", 0.01)
SIZES = (60_000, 1_200_000)
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
NUM_CLASSES = 10
SEED = 0


def synthetic_data(n: int) -> tuple[torch.Tensor, SampleView]:
    """Labels int64 [n] in [0, 10) and a mid-training per-sample state, seeded."""
    gen = torch.Generator().manual_seed(n)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    view = SampleView(
        loss=torch.empty(n).exponential_(generator=gen),  # [n] last losses
        correct=torch.rand(n, generator=gen) < 0.9,  # [n] bool
        forgettings=torch.randint(0, 4, (n,), generator=gen),  # [n] int64
    )
    return labels, view


def epoch_stage(selector: Selector, epoch: int, count: int, view: SampleView) -> None:
    """One epoch's selection and order shuffle, as ``Trainer.run_epoch`` does them."""
    chosen = selector.select(epoch, count, view)
    shuffle = torch.randperm(count, generator=generator(SEED, "order", epoch))  # [count]
    chosen.indices[shuffle]
    if chosen.weights is not None:
        chosen.weights[shuffle]


def selection_seconds(name: str, labels: torch.Tensor, view: SampleView) -> float:
    """make_selector, then the slowest per-epoch stage over FRACTIONS (seconds)."""
    n = labels.numel()
    built: list[Selector] = []
    build_s = timed(lambda: built.append(make_selector(name, labels, SEED)))
    stages = [partial(epoch_stage, built[0], epoch, count_for(fraction, n), view)
              for epoch, fraction in enumerate(FRACTIONS)]
    return build_s + max(timed(stage) for stage in stages)


def _selection_measure(name: str, data: tuple[torch.Tensor, SampleView]
                       ) -> Callable[[], float]:
    return lambda: selection_seconds(name, *data)


def measure(options: Options) -> list[Row]:
    subset, reps = (1200, 2) if options.quick else (6000, 5)
    trainer = mnist_trainer(mnist_config(options.device, train_subset=subset), load_mnist())
    train_seconds(trainer)  # warm-up
    data = {n: synthetic_data(n) for n in SIZES}
    cases = [(name, n) for n in SIZES for name in SELECTIONS]
    measures = [lambda: train_seconds(trainer)]
    measures += [_selection_measure(name, data[n]) for name, n in cases]
    samples = interleave(measures, reps)
    seconds_per_image = median(samples[0]) / subset
    rows = []
    for (name, n), selection_s in zip(cases, samples[1:], strict=True):
        epoch_s = seconds_per_image * n
        ratio = median(selection_s) / epoch_s
        detail = (f"selection {median(selection_s) * 1e3:.1f} ms vs a {n:,}-image epoch scaled "
                  f"from {subset} MNIST images ({ratio:.3%}); {reps} interleaved repetitions")
        rows.append(Row.judged(f"selection {name} N={n:,} / epoch", ratio, GOAL, detail))
    return rows


if __name__ == "__main__":
    sys.exit(main(measure, __doc__ or ""))
