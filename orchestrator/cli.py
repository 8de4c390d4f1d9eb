"""The ``lessdata`` command: parse, call a library function, return an exit code.

Every error a user can cause is one line on stderr; the exit code says whose it was
(``orchestrator.exits``). Heavy modules (torch, ray, mlflow) are imported inside the
commands that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

from orchestrator import exits, secrets
from orchestrator.preflight import DEVICE_CHOICES
from trainers.config import DATASETS, SELECTIONS
from trainers.errors import ConfigError, LessdataError

__all__ = ["build_parser", "device_choice", "main"]

DESCRIPTION = """\
lessdata trains image classifiers on a scheduled fraction of their data (the data
selection stage of Sanderson & Kalganova, 2022) and runs grids of such experiments as
Ray Tune trials tracked in MLflow.

examples:
  lessdata schedules --epochs 300 --train-size 60000     # every experiment's schedule
  lessdata submit demo --dry-run                         # what a grid would run and cost
  lessdata submit demo && lessdata report demo           # run it locally, then its table
"""
PRECISIONS = ("fp32", "tf32", "bf16")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown where there is one to show (not None, not a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line, exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(exits.USAGE, exits.error_line(self.prog, message) + "\n")


def device_choice(value: str) -> str:
    """``--device``: auto, cpu, cuda or cuda:N (whether it exists is checked later)."""
    from orchestrator.preflight import check_device_name

    try:
        check_device_name(value)
    except ConfigError:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} (choose from {DEVICE_CHOICES})") from None
    return value


def _package_version() -> str:
    try:
        return version("lessdata")
    except PackageNotFoundError:
        return "unknown"


def _add_schedules(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schedules", help="list the registered experiments and their schedules",
                       description="List every registered experiment: its schedule, its "
                       "source (paper or ours) and its evaluations.")
    p.add_argument("--epochs", type=int, default=300, help="epochs E of a run")
    p.add_argument("--train-size", type=int, default=60_000, help="training images N")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_schedules)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="run one experiment in-process (no Ray, no MLflow)",
                       description="Train one experiment in this process and print each epoch.")
    p.add_argument("--experiment", default="Benchmark", help="Benchmark, E1 ... E20")
    p.add_argument("--schedule", help="a custom schedule as JSON, e.g. "
                   '\'{"method": "data_step", "d": 0.5, "e": 0.5}\' (overrides --experiment)')
    p.add_argument("--dataset", default="digits", choices=DATASETS, help="data set")
    p.add_argument("--data-dir", type=Path,
                   help="folder holding the data set's files (not needed for digits)")
    p.add_argument("--epochs", type=int, default=300, help="epochs E")
    p.add_argument("--seed", type=int, default=0, help="run seed (init, order, selection)")
    p.add_argument("--selection", default="fixed", choices=SELECTIONS,
                   help="which samples the scheduled fraction keeps")
    p.add_argument("--batch-size", type=int, default=120, help="images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier of the model")
    p.add_argument("--heads", type=int, default=1, choices=(1, 3), help="capsule heads")
    p.add_argument("--train-subset", type=int, help="train on a fixed subset of this many images")
    p.add_argument("--test-subset", type=int, help="evaluate on a fixed subset of this many")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument("--device", default="auto", type=device_choice,
                   help=f"{DEVICE_CHOICES} (auto: a GPU if there is one)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="arithmetic of the forward pass")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=int, help="torch threads on CPU (default: torch's)")
    p.add_argument("--country", default="GBR", help="ISO 3166 alpha-3 code for codecarbon")
    p.add_argument("--no-emissions", action="store_true", help="skip codecarbon (estimate only)")
    p.add_argument("--output-dir", type=Path, default=Path("runs/train"),
                   help="where the checkpoint and emissions files go")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.set_defaults(run=_cmd_train)


def _add_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="fetch a data set's official files (md5-checked)",
                       description="Fetch a data set's official files with torchvision's "
                       "downloaders (smallNORB: from the NYU page), check them, and print "
                       "the folder to pass as --data-dir. Files already there are kept.")
    p.add_argument("dataset", choices=DATASETS, help="the data set")
    p.add_argument("--data-dir", type=Path, help="where to put it (default: "
                   "$LESSDATA_DATA_DIR or ~/.cache/lessdata)")
    p.set_defaults(run=_cmd_download)


def _cmd_download(args: argparse.Namespace) -> int:
    from trainers.data import download_dataset

    root = download_dataset(args.dataset, args.data_dir)
    print(f"{args.dataset}: ready in {root} (pass --data-dir {root})")
    return exits.DONE


def build_parser() -> argparse.ArgumentParser:
    epilog = textwrap.fill(exits.EPILOG, 88, subsequent_indent="  ")
    parser = _Parser(prog="lessdata", description=DESCRIPTION, epilog=epilog)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action="version",
                        version=f"lessdata {_package_version()}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND",
                                title="commands")
    _add_schedules(sub)
    _add_train(sub)
    _add_download(sub)
    from orchestrator.commands import add_commands  # submit, resume, status, report, demo

    add_commands(sub)
    for command in sub.choices.values():
        command.epilog = epilog
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
    from orchestrator.preflight import check_local_device
    from trainers.run import run_training

    check_local_device(config.device)  # before any data is read

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
    if args.command is None:  # bare `lessdata`: the usage and the commands, exit 2
        parser.print_help(sys.stderr)
        return exits.USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    with exits.sigterm_as_interrupt() as terminated:
        try:
            secrets.apply_secret_files()
            code = int(args.run(args))
            # SIGTERM reached Tune as a stop: the summary is printed, the code says why.
            return exits.TERMINATED if code and terminated.received else code
        except LessdataError as exc:
            print(exits.error_line(f"lessdata {args.command}", exc), file=sys.stderr)
            return exits.code_for(exc)
        except json.JSONDecodeError as exc:
            print(exits.error_line(f"lessdata {args.command}", f"invalid JSON: {exc}"),
                  file=sys.stderr)
            return exits.USAGE
        except KeyboardInterrupt:
            how = "terminated (SIGTERM)" if terminated.received else "interrupted"
            print(f"lessdata {args.command}: {how}", file=sys.stderr)
            return exits.TERMINATED if terminated.received else exits.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
