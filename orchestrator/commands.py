"""The orchestration commands of the CLI: submit, status, report, resume, demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="run a grid: every experiment x seed as a Ray Tune trial")
    _submit_args(p)
    p.set_defaults(run=_cmd_submit)

    p = sub.add_parser("resume", help="finish the unfinished trials of a grid submitted earlier")
    p.add_argument("name")
    p.add_argument("--storage", type=Path, help=STORAGE_HELP)
    p.add_argument("--address")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_resume)

    p = sub.add_parser("status", help="trials pending / running / finished / failed of a grid")
    _read_args(p)
    p.set_defaults(run=_cmd_status)

    p = sub.add_parser("report", help="the paper-style comparison table of a grid")
    _read_args(p)
    p.add_argument("--out", type=Path, help="also write CSV, Markdown and PNG plots here")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="equivalence margin in accuracy points for the TOST (default "
                   f"{DEFAULT_MARGIN:g}, for MNIST-like data)")
    p.set_defaults(run=_cmd_report)

    p = sub.add_parser("demo", help="submit the demo grid locally, then print its report")
    p.add_argument("--tracking-uri")
    p.add_argument("--out", type=Path, default=Path("runs/demo-report"))
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="equivalence margin in accuracy points (default %(default)g)")
    p.set_defaults(run=_cmd_demo)


DEFAULT_MARGIN = 0.1  # as orchestrator.aggregate.DEFAULT_MARGIN (not imported: a fast --help)
STORAGE_HELP = ("where the grid was submitted (its plan, checkpoints and Tune state; "
                "default: $LESSDATA_STORAGE or ./runs)")


def _read_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name")
    p.add_argument("--storage", type=Path, help=STORAGE_HELP)
    p.add_argument("--tracking-uri", help="default: the one the grid was submitted to")
    p.add_argument("--json", action="store_true")


def _submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", help="a shipped grid (demo, paper-data-step ...) or a YAML path")
    p.add_argument("--dataset", help="mnist, cifar10, smallnorb, digits")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--seeds", type=int, help="number of seeds (0 .. N-1)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--tracking-uri", help="MLflow URI (default: $MLFLOW_TRACKING_URI or "
                   "a local SQLite store in runs/)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or local)")
    p.add_argument("--name", help="grid run name (MLflow experiment); default: the grid's")
    p.add_argument("--storage", type=Path, help="checkpoints and Tune state, on storage every "
                   "node sees (default: $LESSDATA_STORAGE or ./runs)")
    p.add_argument("--force", action="store_true", help="re-run trials already finished")
    p.add_argument("--system-metrics", action="store_true",
                   help="MLflow system metrics (CPU, GPU, memory) on every trial's run")
    p.add_argument("--json", action="store_true")


def _summary(result: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(f"grid {result.name}: {len(result.finished)} finished, {len(result.failed)} "
              f"failed, {len(result.skipped)} already finished before (skipped), "
              f"{result.trials} trials in all")
        if result.identical:
            print(f"  {result.identical}")
        for key in result.failed:
            print(f"  failed: {key}")
        for key in result.unfinished:
            print(f"  unfinished: {key} (lessdata resume {result.name})")
        if result.unsent_writes:
            print(f"  {result.unsent_writes} tracking writes did not reach {result.tracking_uri}"
                  f": run `lessdata resume {result.name}` once it is back")
        for rejected in result.rejected_writes:
            print(f"  rejected by the tracking server, dropped: {rejected}")
        print(f"report:  lessdata report {result.name} --tracking-uri {result.tracking_uri}")
        _print_link(result.tracking_uri, result.experiment_id)
    return 1 if (result.failed or result.unfinished or result.unsent_writes
                 or result.rejected_writes) else 0


def _print_link(uri: str, experiment_id: str) -> None:
    from orchestrator.record import runs_url

    if not uri.startswith(("http://", "https://")):
        print(f"runs:    .venv/bin/mlflow ui --backend-store-uri {uri} --port 5000   # then")
    print(f"runs:    {runs_url(uri, experiment_id)}")


def _cmd_submit(args: argparse.Namespace) -> int:
    from orchestrator.submit import SubmitOptions, submit

    options = SubmitOptions(
        grid=args.grid, dataset=args.dataset, data_dir=args.data_dir, seeds=args.seeds,
        epochs=args.epochs, tracking_uri=args.tracking_uri, address=args.address,
        name=args.name, storage=args.storage, system_metrics=args.system_metrics,
        force=args.force, quiet=args.json,
    )
    return _summary(submit(options), args.json)


def _cmd_resume(args: argparse.Namespace) -> int:
    from orchestrator.submit import resume

    return _summary(resume(args.name, args.storage, args.address, quiet=args.json), args.json)


def _cmd_status(args: argparse.Namespace) -> int:
    from orchestrator.status import grid_status

    status = grid_status(args.name, args.storage, args.tracking_uri)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    counts = status["counts"]
    print(f"grid {args.name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for trial in status["trials"]:
        epoch = f"epoch {trial['epoch']}/{trial['epochs']}" if trial["epochs"] else ""
        same_as = f"  (same schedule: {trial['same_as']})" if trial.get("same_as") else ""
        print(f"  {trial['state']:<9} {trial['key']:<40} {epoch}{same_as}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from orchestrator.plan import plan_path, read_plan, tracking_uri_of
    from orchestrator.preflight import require_store
    from orchestrator.report import make_report, render

    uri = tracking_uri_of(args.name, args.storage, args.tracking_uri)
    require_store(uri)
    plan = (read_plan(args.name, args.storage) if plan_path(args.name, args.storage).exists()
            else None)
    report = make_report(uri, args.name, args.out, margin=args.margin, plan=plan)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
        return 0
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)  # a piped report keeps whole columns
    if report.warning:
        console.print(f"[yellow]warning:[/yellow] {report.warning}")
    render(report.table, console, report.notes)
    if args.out:
        console.print(f"wrote {args.out}/ (CSV, Markdown, PNG plots; also logged to MLflow)")
    _print_link(uri, _experiment_id(uri, args.name))
    return 0


def _experiment_id(uri: str, name: str) -> str:
    from orchestrator import record

    return record.experiment_id(record.client(uri), name) or "0"


def _cmd_demo(args: argparse.Namespace) -> int:
    import time

    from orchestrator.record import default_tracking_uri
    from orchestrator.submit import SubmitOptions, submit

    uri = args.tracking_uri or default_tracking_uri()
    start = time.perf_counter()
    result = submit(SubmitOptions(grid="demo", tracking_uri=uri))
    code = _summary(result, False)
    report = argparse.Namespace(name=result.name, tracking_uri=uri, storage=None, json=False,
                                out=args.out, margin=args.margin)
    _cmd_report(report)
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return code
