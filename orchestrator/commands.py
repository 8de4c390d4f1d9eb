"""The orchestration commands of the CLI: submit, status, report, resume, demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orchestrator import exits

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="run a grid: every experiment x seed as a Ray Tune trial",
                       description="Run a grid: every experiment x seed is one Ray Tune trial "
                       "and one MLflow run. Trials already finished are skipped.")
    _submit_args(p)
    p.set_defaults(run=_cmd_submit)

    p = sub.add_parser("resume", help="finish the unfinished trials of a grid submitted earlier",
                       description="Run what is unfinished of a submitted grid's stored plan "
                       "(its --set and --only included; never the grid file again).")
    p.add_argument("name", help="the grid's name, as submit printed it")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--address", help="Ray cluster address (default: the one it was "
                   "submitted to, else $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=_cmd_resume)

    p = sub.add_parser("status", help="trials pending / running / finished / failed of a grid",
                       description="Where each trial of a grid stands, in the report's order.")
    _read_args(p)
    p.add_argument("--watch", type=float, metavar="SECONDS", nargs="?", const=5.0,
                   help="print again every SECONDS (5 if none given) until no trial is "
                   "pending or running; Ctrl-C stops watching")
    p.set_defaults(run=_cmd_status)

    p = sub.add_parser("list", help="the grids submitted to a storage",
                       description="Every grid submitted to a storage: its name, when, "
                       "trials done / failed / total and tracking URI.")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_list)

    p = sub.add_parser("report", help="the paper-style comparison table of a grid",
                       description="The paper-style comparison table of a grid's runs.")
    _read_args(p)
    p.add_argument("--out", type=Path, help="also write CSV, Markdown and PNG plots here")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="equivalence margin in accuracy points for the TOST (default "
                   f"{DEFAULT_MARGIN:g}, for MNIST-like data)")
    p.set_defaults(run=_cmd_report)

    p = sub.add_parser("demo", help="submit the demo grid locally, then print its report",
                       description="Submit the demo grid on a local Ray, then print its report.")
    p.add_argument("--tracking-uri", help="MLflow URI (default: $MLFLOW_TRACKING_URI or "
                   "a local SQLite store in runs/)")
    p.add_argument("--out", type=Path, default=Path("runs/demo-report"),
                   help="where the report's CSV, Markdown and plots go")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="equivalence margin in accuracy points (default %(default)g)")
    p.set_defaults(run=_cmd_demo)


DEFAULT_MARGIN = 0.1  # as orchestrator.aggregate.DEFAULT_MARGIN (not imported: a fast --help)
STORAGE_HELP = ("where the grid was submitted (its plan and checkpoints): a folder or a "
                "URI like s3://bucket/prefix (default: $LESSDATA_STORAGE or ./runs)")


def _read_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the grid's name, as submit printed it")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--tracking-uri", help="default: the one the grid was submitted to")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _submit_args(p: argparse.ArgumentParser) -> None:
    from trainers.config import DATASETS

    p.add_argument("grid", help="a shipped grid (demo, paper-data-step ...) or a YAML path")
    p.add_argument("--dataset", choices=DATASETS, help="the grid's data set instead of its "
                   "own (the run name gets -DATASET appended)")
    p.add_argument("--data-dir", type=Path, help="folder holding the data set's files "
                   "(default: the grid's, else $LESSDATA_DATA_DIR or ~/.cache/lessdata)")
    p.add_argument("--seeds", type=int, help="number of seeds (0 .. N-1; default: the grid's)")
    p.add_argument("--epochs", type=int, help="epochs of every trial (default: the grid's)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="change a grid value, dotted keys reach in (e.g. training.lr=0.0005, "
                   "model.width=0.5); repeatable; validated as the file is")
    p.add_argument("--only", metavar="E1,E3",
                   help="run only these experiments of the grid (the Benchmark stays)")
    p.add_argument("--no-benchmark", action="store_true",
                   help="leave the Benchmark out (with or without --only)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the trials, evaluations, resources and a measured compute "
                   "estimate; start nothing, write nothing")
    p.add_argument("--images-per-s", type=_positive, metavar="N",
                   help="with --dry-run: a GPU's measured training images/s for one trial "
                   "(bash bench/gpu.sh prints it), for the GPU-hours estimate")
    p.add_argument("--tracking-uri", help="MLflow URI (default: $MLFLOW_TRACKING_URI or "
                   "a local SQLite store in runs/)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or local)")
    p.add_argument("--name", help="grid run name (MLflow experiment); default: the grid's")
    p.add_argument("--storage", help="the plan and checkpoints: a folder every node sees, or "
                   "a URI like s3://bucket/prefix (default: $LESSDATA_STORAGE or ./runs; "
                   "Tune's own state stays on this machine: $LESSDATA_DRIVER_STATE)")
    p.add_argument("--force", action="store_true", help="re-run trials already finished")
    p.add_argument("--allow-large", action="store_true",
                   help="plan a grid past the caps of 2,000 trials, 10,000 epochs or 1,000 "
                   "seeds (a mistyped zero is refused without it)")
    p.add_argument("--system-metrics", action="store_true",
                   help="MLflow system metrics (CPU, GPU, memory) on every trial's run")
    p.add_argument("--json", action="store_true", help="machine-readable output")


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
            why = result.errors.get(key)
            print(f"  failed: {key}" + (f": {why}" if why else ""))
        for key in result.unfinished:
            print(f"  unfinished: {key} (lessdata resume {result.name})")
        if result.unsent_writes:
            print(f"  {result.unsent_writes} tracking writes did not reach {result.tracking_uri}"
                  f": run `lessdata resume {result.name}` once it is back")
        for rejected in result.rejected_writes:
            print(f"  rejected by the tracking server, dropped: {rejected}")
        print(f"report:  lessdata report {result.name} --tracking-uri {result.tracking_uri}")
        _print_link(result.tracking_uri, result.experiment_id)
    if result.unfinished:  # Tune stops trials before their end only when told to stop
        return exits.INTERRUPTED
    return exits.TRIALS_FAILED if (result.failed or result.unsent_writes
                                   or result.rejected_writes) else exits.DONE


def _print_link(uri: str, experiment_id: str) -> None:
    from orchestrator.record import runs_url

    if not uri.startswith(("http://", "https://")):
        print(f"runs:    .venv/bin/mlflow ui --backend-store-uri {uri} --port 5000   # then")
    print(f"runs:    {runs_url(uri, experiment_id)}")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _cmd_submit(args: argparse.Namespace) -> int:
    from orchestrator.overrides import parse_only
    from orchestrator.submit import SubmitOptions, submit

    options = SubmitOptions(
        grid=args.grid, dataset=args.dataset, data_dir=args.data_dir, seeds=args.seeds,
        epochs=args.epochs, tracking_uri=args.tracking_uri, address=args.address,
        name=args.name, storage=args.storage, system_metrics=args.system_metrics,
        sets=tuple(args.sets), only=parse_only(args.only) if args.only is not None else (),
        benchmark=not args.no_benchmark, force=args.force, quiet=args.json,
        allow_large=args.allow_large,
    )
    if args.dry_run:
        return _dry_run(options, args.json, args.images_per_s)
    return _summary(submit(options), args.json)


def _dry_run(options: Any, as_json: bool, images_per_s: float | None = None) -> int:
    from orchestrator.plan import resolve_plan
    from orchestrator.preview import preview, render

    plan = resolve_plan(options)
    result = preview(plan, images_per_s=images_per_s)
    search = plan.grid.search
    more = (f"search: then {search.samples} schedules x {search.seed_count()} seeds "
            f"({search.samples * search.seed_count()} trials more, chosen by "
            f"{search.algorithm}; not counted above)") if search else None
    if as_json:
        print(json.dumps({**result.as_dict(), "search": more}, indent=2))
    else:
        print("\n".join(render(result) + ([more] if more else [])))
    return exits.DONE


def _cmd_resume(args: argparse.Namespace) -> int:
    from orchestrator.submit import resume

    return _summary(resume(args.name, args.storage, args.address, quiet=args.json), args.json)


def _cmd_status(args: argparse.Namespace) -> int:
    import time

    from orchestrator.status import grid_status

    while True:
        status = grid_status(args.name, args.storage, args.tracking_uri)
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            _print_status(args.name, status)
        counts = status["counts"]
        if args.watch is None or not (counts.get("pending") or counts.get("running")):
            return exits.DONE
        time.sleep(args.watch)
        print(flush=True)


def _print_status(name: str, status: dict[str, Any]) -> None:
    counts = status["counts"]
    print(f"grid {name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for trial in status["trials"]:
        epoch = f"epoch {trial['epoch']}/{trial['epochs']}" if trial["epochs"] else ""
        same_as = f"  (same schedule: {trial['same_as']})" if trial.get("same_as") else ""
        print(f"  {trial['state']:<9} {trial['key']:<40} {epoch}{same_as}", flush=True)


def _cmd_list(args: argparse.Namespace) -> int:
    from orchestrator.status import list_grids

    grids = list_grids(args.storage)
    if args.json:
        print(json.dumps(grids, indent=2))
        return exits.DONE
    if not grids:
        print("no grids submitted to this storage (give the one used: --storage)")
    for g in grids:
        done, failed = ("?" if n is None else n for n in (g["finished"], g["failed"]))
        print(f"{g['name']:<32} {g['submitted']:<17} done={done} failed={failed} "
              f"total={g['trials']}  {g['tracking_uri']}")
    return exits.DONE


def _cmd_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from orchestrator.plan import plan_exists, read_plan, tracking_uri_of
    from orchestrator.preflight import require_store
    from orchestrator.report import make_report, render

    uri = tracking_uri_of(args.name, args.storage, args.tracking_uri)
    require_store(uri)
    plan = (read_plan(args.name, args.storage) if plan_exists(args.name, args.storage)
            else None)
    if plan is not None and plan.grid.search is not None:
        from orchestrator.search_report import print_search_report

        return print_search_report(uri, plan, args.out, args.margin, args.json)
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
