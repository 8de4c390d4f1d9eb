"""Row 9: what a trial of about a minute loses to everything that is not training or testing.

Two Benchmark trials (seeds 0 and 1) on real MNIST (6,000 training images, 1,000 test
images, width 0.25, batch 120, 2 torch threads, codecarbon on, a checkpoint every epoch,
8 epochs: about 40 s to a minute each here; ``--quick``: 2 epochs) go through the real
CLI, ``lessdata submit GRID --address ... --tracking-uri ... --json``, against a running Ray
head (2 CPUs, so one trial at a time, the second in the worker the first used) and a
running ``mlflow server`` (both started before, not counted). From each trial's own final
metrics (MLflow):

- the trial's whole time in its worker: ``trial_s`` + ``warmup_s`` (from the trainable's
  first line to its last report: building the trainer, loading the data set, the
  emissions tracker, the warm-up, restoring, every epoch, the checkpoints, the reports);
- the work: ``train_s`` + ``eval_s`` (the training steps and the test passes).

Rows: (whole - work) / whole for the trial in a worker that has run one before (goal <=
0.02: every trial of a grid but each worker's first), and for the first trial of a fresh
worker, which pays the worker's one-time start (imports, the warm-up, the data set's first
read), shown with the same goal. The driver's cost per trial is the scale row's
(bench/scale.py); the Ray actor's start before the trainable's first line is in neither.

    python bench/trial_overhead.py [--quick]
"""

from __future__ import annotations

import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from harness import Goal, Options, Row, main
from orchestrator import record
from orchestrator.record import Kind, Tag
from scale import timed_cli
from workloads import MNIST_ROOT, mlflow_server, ray_head

GOAL = Goal("<=", 0.02)
EPOCHS_FULL, EPOCHS_QUICK = 8, 2


def trial_grid(name: str, epochs: int) -> dict[str, Any]:
    return {
        "name": name,
        "dataset": "mnist",
        "epochs": epochs,
        "batch_size": 120,
        "seeds": 2,
        "experiments": ["Benchmark"],
        "model": {"width": 0.25},
        "training": {"train_subset": 6000, "test_subset": 1000},
        "placement": {"threads": 2, "data_dir": str(MNIST_ROOT)},
        "resources": {"cpu": 2, "gpu": 0},
        "checkpoint_every": 1,
    }


def final_metrics(uri: str, name: str) -> list[dict[str, float]]:
    """The trials' final metrics, in the order they started."""
    client = record.client(uri)
    experiment = record.experiment_id(client, name)
    assert experiment is not None, f"no experiment {name}"
    runs = record.search(client, experiment, {Tag.GRID: name, Tag.KIND: Kind.TRIAL})
    assert len(runs) == 2, f"expected two trial runs, found {len(runs)}"
    return [dict(r.data.metrics) for r in sorted(runs, key=lambda r: r.info.start_time)]


def share_row(label: str, m: dict[str, float], epochs: int) -> Row:
    whole = m["trial_s"] + m["warmup_s"]
    work = m["train_s"] + m["eval_s"]
    rest = whole - work
    note = (f"{epochs} epochs of 6,000 MNIST images: whole {whole:.1f} s (warm-up "
            f"{m['warmup_s']:.2f} s), training {m['train_s']:.1f} s + testing "
            f"{m['eval_s']:.1f} s, the rest {rest:.2f} s (selection {m.get('select_s', 0):.3f} s)")
    print(f"{label}: {note}", file=sys.stderr, flush=True)
    return Row.judged(label, rest / whole, GOAL, note)


def measure(options: Options) -> list[Row]:
    epochs = EPOCHS_QUICK if options.quick else EPOCHS_FULL
    name = f"bench-trial-overhead-{epochs}"
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-trial-") as tmp, \
            ExitStack() as stack:
        address = stack.enter_context(ray_head(2))
        uri = stack.enter_context(mlflow_server())
        path = Path(tmp) / f"{name}.yaml"
        path.write_text(yaml.safe_dump(trial_grid(name, epochs)))
        _, _, out = timed_cli(["submit", str(path), "--address", address, "--tracking-uri", uri,
                               "--storage", f"{tmp}/store", "--json"])
        result = json.loads(out)
        if result["failed"] or len(result["finished"]) != 2:
            raise RuntimeError(f"the trials did not finish: {result}"[:3000])
        first, later = final_metrics(uri, name)
    return [share_row(f"trial of {epochs} MNIST epochs, worker reused: share not train/test",
                      later, epochs),
            share_row(f"trial of {epochs} MNIST epochs, fresh worker: share not train/test",
                      first, epochs)]


if __name__ == "__main__":
    sys.exit(main(measure, __doc__ or ""))
