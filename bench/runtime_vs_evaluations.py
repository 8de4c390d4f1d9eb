"""Row 2: does runtime fall with the evaluations? train_s ratio vs evaluation ratio.

The Trainer runs the Benchmark and the Data Step experiments E1, E3 and E5 (same seed,
same MNIST subset, 4 epochs so e x epochs is whole and the evaluation ratios are exact:
E1 0.8125, E3 0.4375, E5 0.75). For each, train_s / the Benchmark's train_s should
equal evaluations / the Benchmark's evaluations.

``train_s`` is the Trainer's own clock of the training work only: the batches'
augmentation, forward, backward and optimizer steps. The selection stage and the
per-epoch test pass are timed apart (``select_s``, ``eval_s``) and left out: they do not
scale with evaluations, and the paper's runtime is the training's.

Noise: the four runs advance together, one epoch each in turn (the order rotated every
epoch), so load from other work on the machine falls on all of them alike. The set is
repeated R times and each run's runtime is the sum over its epochs of the median
``train_s`` of that epoch across the R repetitions: a burst of load on a 2-core machine
stalls one epoch by seconds, and a median per epoch drops it unless it hits the same
epoch in most repetitions.

    python bench/runtime_vs_evaluations.py [--quick] [--device cpu]
"""

from __future__ import annotations

import sys

from harness import Goal, Options, Row, main, median
from trainers.data import Split
from trainers.experiments import EXPERIMENTS
from trainers.schedule import evaluations
from trainers.train import Trainer
from workloads import load_mnist, mnist_config, mnist_trainer

EXPERIMENT_NAMES = ("Benchmark", "E1", "E3", "E5")
EPOCHS = 4
TOLERANCE = 0.03


def _trainers(options: Options, data: tuple[Split, Split], size: int) -> dict[str, Trainer]:
    return {
        name: mnist_trainer(
            mnist_config(options.device, experiment=name, schedule=EXPERIMENTS[name],
                         epochs=EPOCHS, train_subset=size, seed=0),
            data,
        )
        for name in EXPERIMENT_NAMES
    }


def run_interleaved(trainers: dict[str, Trainer]) -> dict[str, list[float]]:
    """Every trainer to its last epoch, one epoch each in turn; their ``train_s`` lists."""
    names = list(trainers)
    for epoch in range(EPOCHS):
        shift = epoch % len(names)
        for name in names[shift:] + names[:shift]:
            trainers[name].run_epoch()
    return {name: [r.train_s for r in t.history] for name, t in trainers.items()}


def runtime_s(repetitions: list[list[float]]) -> float:
    """Sum over epochs of the median train_s across repetitions ([rep][epoch] in)."""
    return sum(median(epoch) for epoch in zip(*repetitions, strict=True))


def measure(options: Options) -> list[Row]:
    size, reps = (600, 3) if options.quick else (3000, 5)
    data = load_mnist()
    _trainers(options, data, size)["Benchmark"].run_epoch()  # warm-up, not counted
    train_s: dict[str, list[list[float]]] = {name: [] for name in EXPERIMENT_NAMES}
    for _ in range(reps):
        for name, seconds in run_interleaved(_trainers(options, data, size)).items():
            train_s[name].append(seconds)
    base_s = runtime_s(train_s["Benchmark"])
    base = evaluations(EXPERIMENTS["Benchmark"], size, EPOCHS)
    rows = []
    for name in EXPERIMENT_NAMES[1:]:
        expected = evaluations(EXPERIMENTS[name], size, EPOCHS) / base
        runtime = runtime_s(train_s[name]) / base_s
        single = [sum(a) / sum(b) for a, b in zip(train_s[name], train_s["Benchmark"],
                                                  strict=True)]
        detail = (f"evaluation ratio {expected:.4f}, runtime ratio {runtime:.4f}, "
                  f"|difference| {abs(runtime - expected):.4f}; {size} MNIST images, "
                  f"{EPOCHS} epochs, training time only (train_s); {reps} interleaved "
                  f"sets; train_s ratio of each set {[round(v, 3) for v in single]}")
        rows.append(Row.judged(f"runtime ratio {name} / Benchmark", runtime,
                               Goal("within", expected, TOLERANCE), detail))
    return rows


if __name__ == "__main__":
    sys.exit(main(measure, __doc__ or ""))
