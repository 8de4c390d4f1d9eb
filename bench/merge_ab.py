"""Byerly's logit normalisation against the raw capsule norms, same seeds, real MNIST.

Trains the default model with ``merge: norm`` (Byerly's, the default) and ``merge: sum``
(lessdata's single head before issue 12: the raw capsule norms) on the same class-balanced
MNIST subset, seed by seed, the two variants interleaved. Prints the test top-1 per epoch
and mean ± std over seeds (docs/method.md quotes it).

    python bench/merge_ab.py --data-dir ../shared/datasets [--seeds 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from trainers.config import EmissionsConfig, ModelConfig, TrainConfig
from trainers.run import build_trainer

MERGES = ("sum", "norm")


def run_one(args: argparse.Namespace, merge: str, seed: int) -> list[float]:
    """Test top-1 after each epoch of one run."""
    config = TrainConfig(
        dataset="mnist",
        data_dir=args.data_dir,
        seed=seed,
        epochs=args.epochs,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        model=ModelConfig(width=args.width, merge=merge),  # type: ignore[arg-type]
        emissions=EmissionsConfig(enabled=False),
        device="cpu",
        threads=args.threads,
    )
    trainer = build_trainer(config)
    trainer.fit(None)
    return [r.test_top1 for r in trainer.history]


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=6000)
    parser.add_argument("--test-subset", type=int, default=2000)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    curves: dict[str, list[list[float]]] = {m: [] for m in MERGES}
    for seed in range(args.seeds):
        for merge in MERGES:
            curve = run_one(args, merge, seed)
            curves[merge].append(curve)
            print(f"seed {seed} merge {merge}: " + " ".join(f"{100 * t:.2f}" for t in curve))
    print("| merge | " + " | ".join(f"epoch {e + 1}" for e in range(args.epochs)) + " |")
    print("|---|" + "---|" * args.epochs)
    for merge in MERGES:
        cells = [_mean_std([c[e] for c in curves[merge]]) for e in range(args.epochs)]
        print(f"| {merge} | " + " | ".join(cells) + " |")
    deltas = [n[-1] - s[-1] for n, s in zip(curves["norm"], curves["sum"], strict=True)]
    print(f"final epoch, norm - sum, paired by seed: {_mean_std(deltas)} points")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
