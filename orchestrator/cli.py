"""The ``lessdata`` command: parse, call a library function, return an exit code.

Every error a user can cause is one line on stderr and exit code 2. Heavy modules
(torch, ray, mlflow) are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from trainers.errors import LessdataError

__all__ = ["main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_schedules(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schedules", help="list the registered experiments and their schedules")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--train-size", type=int, default=60_000)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_schedules)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="run one experiment in-process (no Ray)")
    p.add_argument("--experiment", default="Benchmark", help="Benchmark, E1 ... E20")
    p.add_argument("--schedule", help="a custom schedule as JSON, e.g. "
                   '\'{"method": "data_step", "d": 0.5, "e": 0.5}\' (overrides --experiment)')
    p.add_argument("--dataset", default="digits", help="mnist, cifar10, smallnorb, digits")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--selection", default="fixed",
                   help="fixed, per_epoch, stratified, loss_soft, hardest, easiest, forgetting")
    p.add_argument("--batch-size", type=int, default=120)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier of the model")
    p.add_argument("--heads", type=int, default=1, choices=(1, 3))
    p.add_argument("--train-subset", type=int, help="train on a fixed subset of this many images")
    p.add_argument("--test-subset", type=int, help="evaluate on a fixed subset of this many")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"))
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int)
    p.add_argument("--country", default="GBR", help="ISO 3166 alpha-3 code for codecarbon")
    p.add_argument("--no-emissions", action="store_true", help="skip codecarbon (estimate only)")
    p.add_argument("--output-dir", type=Path, default=Path("runs/train"))
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.set_defaults(run=_cmd_train)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lessdata", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_schedules(sub)
    _add_train(sub)
    from orchestrator.commands import add_commands  # submit, resume, status, report, demo

    add_commands(sub)
    return parser


def _cmd_schedules(args: argparse.Namespace) -> int:
    from orchestrator.listing import FRACTIONS_CAP, schedule_rows
    from trainers.experiments import SELECTION_NOTE, SOURCE_LEGEND

    rows = schedule_rows(args.epochs, args.train_size)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
        same = f"  same schedule as {row['same_as']}" if row["same_as"] else ""
        print(
            f"{row['experiment']:<10} {row['method']:<15} {params:<16} {row['source']:<6} "
            f"evaluations={row['evaluations']:>12,} "
            f"({row['relative_evaluations']:.4f} of Benchmark){same}"
        )
    print(SOURCE_LEGEND)
    print(SELECTION_NOTE)
    if any(row["same_as"] for row in rows):
        print(f"same schedule: the same per-epoch counts at E = {args.epochs}, "
              f"N = {args.train_size}, so the same training for a given seed and recipe")
    if args.epochs > FRACTIONS_CAP:
        print(f"--json lists the per-epoch fractions of the first {FRACTIONS_CAP:,} "
              f"of {args.epochs:,} epochs (fractions_listed); totals cover every epoch")
    return 0


def train_config_from_args(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` for ``lessdata train``; ConfigError on any bad value."""
    from orchestrator.validate import build_train_config

    schedule = json.loads(args.schedule) if args.schedule else None
    return build_train_config(
        {
            "dataset": args.dataset,
            "data_dir": args.data_dir,
            "experiment": args.experiment if schedule is None else "custom",
            "schedule": schedule,
            "selection": args.selection,
            "seed": args.seed,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "train_subset": args.train_subset,
            "test_subset": args.test_subset,
            "augment": not args.no_augment,
            "device": args.device,
            "precision": args.precision,
            "compile": args.compile,
            "threads": args.threads,
            "model": {"width": args.width, "heads": args.heads},
            "emissions": {"enabled": not args.no_emissions, "country_iso_code": args.country},
        }
    )


def _cmd_train(args: argparse.Namespace) -> int:
    config = train_config_from_args(args)
    from trainers.run import run_training

    def show(result: Any, _trainer: Any) -> None:
        print(
            f"epoch {result.epoch:>4}/{config.epochs}  fraction={result.fraction:.3f}  "
            f"samples={result.samples:>6}  evaluations={result.evaluations:>9}  "
            f"loss={result.train_loss:.4f}  top1={result.test_top1:.4f}  "
            f"lr={result.lr:.2e}  {result.epoch_s:.2f}s",
            flush=True,
        )

    summary = run_training(config, args.output_dir, on_epoch=None if args.json else show)
    metrics = summary.metrics()
    if args.json:
        print(json.dumps({"experiment": config.experiment, "seed": config.seed,
                          "dataset": config.dataset, **metrics}, indent=2))
    else:
        print(
            f"done: {config.experiment} seed={config.seed}  best_top1={metrics['best_top1']:.4f} "
            f"(epoch {int(metrics['best_epoch'])})  final_top1={metrics['final_top1']:.4f}  "
            f"evaluations={int(metrics['evaluations'])}  train_s={metrics['train_s']:.1f}  "
            + (f"energy_kwh={metrics['energy_kwh']:.3g} (measured)  "
               f"emissions_kg={metrics['emissions_kg']:.3g} (measured)  "
               if metrics["emissions_measured"] else "energy not measured (--no-emissions)  ")
            + f"estimate_kg={metrics['emissions_estimate_kg']:.3g} (paper-style estimate)"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # CLI output stays ours: MLflow's INFO lines (store migrations ...) are noise here.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args))
    except LessdataError as exc:
        print(f"lessdata {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except json.JSONDecodeError as exc:
        print(f"lessdata {args.command}: error: invalid JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lessdata {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
