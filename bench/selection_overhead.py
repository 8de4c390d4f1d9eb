"""Row 3: the selection stage's time over one training epoch's, for every strategy.

The selection stage is what the Trainer does around the training loop, timed on its own
on synthetic labels (10 classes) at N = 60,000 and N = 1,200,000:

- ``make_selector`` (once per run; charged here in full to a single epoch, the worst case),
- the per-epoch ``select(epoch, count)`` and the shuffle of the chosen indices with the
  epoch's ``order`` generator, exactly as ``Trainer.run_epoch`` does them, taking the
  slowest of the counts for 25%, 50%, 75% and 100% of N.

The epoch it is compared with is a real Trainer epoch on MNIST (training part, test
evaluation subtracted) at a measured images/s, scaled to N images: a 60,000-image epoch
(and a 1,200,000-image one) on CPU would take minutes. Selection and training
measurements are interleaved and their medians taken.

    python bench/selection_overhead.py [--quick] [--device cpu]
"""

from __future__ import annotations

import sys

import torch

from harness import Goal, Options, Row, interleave, main, median, timed
from trainers.rng import generator
from trainers.schedule import count_for
from trainers.selection import SELECTIONS, make_selector
from workloads import load_mnist, mnist_config, mnist_trainer, train_seconds

GOAL = Goal("<", 0.01)
SIZES = (60_000, 1_200_000)
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
NUM_CLASSES = 10
SEED = 0


def synthetic_labels(n: int) -> torch.Tensor:
    """int64 [n] class labels in [0, 10), seeded."""
    return torch.randint(0, NUM_CLASSES, (n,), generator=torch.Generator().manual_seed(n))


def selection_seconds(name: str, labels: torch.Tensor) -> float:
    """make_selector, then the slowest per-epoch select + order shuffle over FRACTIONS."""
    n = labels.numel()
    holder: dict[str, object] = {}
    build_s = timed(lambda: holder.update(select=make_selector(name, labels, SEED)))
    select = holder["select"]
    worst_s = 0.0
    for epoch, fraction in enumerate(FRACTIONS):
        count = count_for(fraction, n)

        def stage(epoch: int = epoch, count: int = count) -> None:
            chosen = select(epoch, count)  # type: ignore[operator]
            chosen[torch.randperm(count, generator=generator(SEED, "order", epoch))]

        worst_s = max(worst_s, timed(stage))
    return build_s + worst_s


def measure(options: Options) -> list[Row]:
    subset, reps = (1200, 3) if options.quick else (6000, 5)
    trainer = mnist_trainer(mnist_config(options.device, train_subset=subset), load_mnist())
    train_seconds(trainer)  # warm-up
    labels = {n: synthetic_labels(n) for n in SIZES}
    cases = [(name, n) for n in SIZES for name in SELECTIONS]
    samples = interleave(
        [lambda: train_seconds(trainer)]
        + [lambda name=name, n=n: selection_seconds(name, labels[n]) for name, n in cases],
        reps,
    )
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
