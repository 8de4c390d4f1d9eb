"""The orchestration commands of the CLI: submit, status, report, resume, demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trainers.errors import ConfigError

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="run a grid: every experiment x seed as a Ray Tune trial")
    _submit_args(p)
    p.set_defaults(run=_cmd_submit)

    p = sub.add_parser("resume", help="finish the unfinished trials of a grid submitted earlier")
    p.add_argument("name")
    p.add_argument("--storage", type=Path)
    p.add_argument("--address")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_resume)

    p = sub.add_parser("status", help="trials done / running / failed of a grid")
    p.add_argument("name")
    p.add_argument("--tracking-uri")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_status)

    p = sub.add_parser("report", help="the paper-style comparison table of a grid")
    p.add_argument("name")
    p.add_argument("--tracking-uri")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path, help="also write CSV, Markdown and PNG plots here")
    p.set_defaults(run=_cmd_report)

    p = sub.add_parser("demo", help="submit the demo grid locally, then print its report")
    p.add_argument("--tracking-uri")
    p.add_argument("--out", type=Path, default=Path("runs/demo-report"))
    p.set_defaults(run=_cmd_demo)


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
    p.add_argument("--json", action="store_true")


def _summary(result: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(f"grid {result.name}: {len(result.finished)} finished, {len(result.failed)} "
              f"failed, {len(result.skipped)} already finished before (skipped), "
              f"{result.trials} trials in all")
        for key in result.failed:
            print(f"  failed: {key}")
        for key in result.unfinished:
            print(f"  unfinished: {key} (lessdata resume {result.name})")
        if result.unsent_writes:
            print(f"  {result.unsent_writes} tracking writes did not reach {result.tracking_uri}"
                  f": run `lessdata resume {result.name}` once it is back")
        print(f"report:  lessdata report {result.name} --tracking-uri {result.tracking_uri}")
    return 1 if result.failed or result.unfinished or result.unsent_writes else 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from orchestrator.submit import SubmitOptions, submit

    options = SubmitOptions(
        grid=args.grid, dataset=args.dataset, data_dir=args.data_dir, seeds=args.seeds,
        epochs=args.epochs, tracking_uri=args.tracking_uri, address=args.address,
        name=args.name, storage=args.storage, force=args.force, quiet=args.json,
    )
    return _summary(submit(options), args.json)


def _cmd_resume(args: argparse.Namespace) -> int:
    from orchestrator.submit import SubmitOptions, record_path, submit

    path = record_path(args.name, args.storage)
    if not path.exists():
        raise ConfigError(f"no grid named {args.name!r} was submitted here ({path} is missing)")
    rec = json.loads(path.read_text())
    options = SubmitOptions(
        grid=rec["grid"], dataset=rec["dataset"],
        data_dir=Path(rec["data_dir"]) if rec["data_dir"] else None, seeds=rec["seeds"],
        epochs=rec["epochs"], tracking_uri=rec["tracking_uri"],
        address=args.address or rec["address"], name=rec["name"],
        storage=Path(rec["storage"]), quiet=args.json,
    )
    return _summary(submit(options), args.json)


def _cmd_status(args: argparse.Namespace) -> int:
    from orchestrator.status import grid_status

    status = grid_status(args.name, args.tracking_uri)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    counts = status["counts"]
    print(f"grid {args.name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for trial in status["trials"]:
        epoch = f"epoch {trial['epoch']}/{trial['epochs']}" if trial["epochs"] else ""
        print(f"  {trial['state']:<9} {trial['key']:<40} {epoch}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from orchestrator.report import make_report, render
    from orchestrator.tracking import default_tracking_uri, require_store

    uri = args.tracking_uri or default_tracking_uri()
    require_store(uri)
    table, rows, warning = make_report(uri, args.name, args.out)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)  # a piped report keeps whole columns
    if warning:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    render(table, console)
    if args.out:
        console.print(f"wrote {args.out}/ (CSV, Markdown, PNG plots; also logged to MLflow)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import time

    from orchestrator.submit import SubmitOptions, submit
    from orchestrator.tracking import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri()
    start = time.perf_counter()
    result = submit(SubmitOptions(grid="demo", tracking_uri=uri))
    code = _summary(result, False)
    report = argparse.Namespace(name=result.name, tracking_uri=uri, json=False, out=args.out)
    _cmd_report(report)
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    print("open the MLflow UI on these runs with:\n"
          f"  .venv/bin/mlflow ui --backend-store-uri {uri} --port 5000"
          "   # then browse http://127.0.0.1:5000")
    return code
