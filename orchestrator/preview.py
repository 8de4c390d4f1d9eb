"""``lessdata submit GRID --dry-run``: what a grid would run and cost, before it runs.

Runs on the driver, in-process: no Ray, no MLflow store, no checkpoint folder. The
compute estimate comes from a short measured probe: the grid's first trial's trainer
(its model, batch, precision and threads) is built on random images of the data set's
shape on this machine's device for the trial, a few steps warm it up, then one
training epoch of ``PROBE_BATCHES`` batches and one test pass are timed. Trial-hours are
each trial's planned evaluations over the measured training images/s, plus its test
passes over the measured test images/s. Selection that scores samples (informed
selection) and the driver's overhead are not in it: a lower bound, said so. GPU-hours
(``orchestrator.gpu_estimate``) come from a GPU's training images/s: given
(``--images-per-s``), or the probe's when it ran on a GPU.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.baselines import planned_evaluations
from orchestrator.coincide import summary_line
from orchestrator.gpu_estimate import GpuEstimate, estimate_gpu_hours
from orchestrator.plan import Plan
from orchestrator.plugins import uses_plugins
from trainers.config import TrainConfig
from trainers.factories import dataset_label

__all__ = ["PROBE_BATCHES", "Preview", "Throughput", "measure_throughput", "preview"]

PROBE_BATCHES = 8


@dataclass(frozen=True)
class Throughput:
    """Images per second of one trainer on one device, and how that was measured."""

    train_images_per_s: float
    test_images_per_s: float
    device: str
    how: str


@dataclass
class Preview:
    name: str
    grid: str
    dataset: str
    trials: int
    seeds: list[int]
    experiments: dict[str, int]
    """Experiment -> planned training images (evaluations) of one of its trials."""
    total_evaluations: int
    identical: str
    resources: dict[str, Any]
    tracking_uri: str
    storage: str
    sets: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)
    throughput: Throughput | None = None
    trial_hours: float | None = None
    gpu: GpuEstimate | None = None
    test_images: int = 0
    """Test images evaluated by every trial's test passes, summed."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def preview(plan: Plan, measure: bool = True, images_per_s: float | None = None) -> Preview:
    """What ``plan`` runs; with ``measure``, the compute estimate from a probe on this
    machine (a few seconds); GPU-hours at ``images_per_s`` (a GPU's training images/s)
    when given, else at the probe's when it ran on a GPU."""
    grid = plan.grid
    n = grid.train_size()
    per_experiment: dict[str, int] = {}
    total = 0
    for trial in plan.trials:
        evaluations = _evaluations(trial.config, n)
        per_experiment.setdefault(trial.experiment, evaluations)
        total += evaluations
    result = Preview(
        name=plan.name, grid=grid.name, dataset=dataset_label(grid.dataset),
        trials=len(plan.trials),
        seeds=grid.seed_list(), experiments=per_experiment, total_evaluations=total,
        identical=summary_line(plan.identical),
        resources=grid.resources.model_dump(), tracking_uri=plan.tracking_uri,
        storage=str(plan.storage), sets=list(plan.sets), only=list(plan.only),
        test_images=sum(t.config.epochs * _test_size(t.config) for t in plan.trials),
    )
    # A plugin grid's speed is its own model's: not probed here (``submit`` checks it).
    if measure and plan.trials and not uses_plugins(grid):
        speed = measure_throughput(plan.trials[0].config, threads=_trial_threads(plan))
        result.throughput = speed
        result.trial_hours = sum(
            _evaluations(t.config, n) / speed.train_images_per_s
            + t.config.epochs * _test_size(t.config) / speed.test_images_per_s
            for t in plan.trials
        ) / 3600
    if images_per_s is not None:
        result.gpu = estimate_gpu_hours(total, result.test_images, images_per_s,
                                        "given: --images-per-s")
    elif result.throughput is not None and result.throughput.device.startswith("cuda"):
        result.gpu = estimate_gpu_hours(total, result.test_images,
                                        result.throughput.train_images_per_s,
                                        f"measured here on {result.throughput.device}")
    return result


def _evaluations(config: TrainConfig, n: int) -> int:
    return planned_evaluations(config.schedule, config.selection, config.anneal, n,
                               config.epochs)


def _trial_threads(plan: Plan) -> int:
    """The torch threads a trial gets: the grid's, else its Ray CPUs."""
    return plan.grid.placement.threads or max(1, int(plan.grid.resources.cpu))


def _test_size(config: TrainConfig) -> int:
    from trainers.data import dataset_info

    assert isinstance(config.dataset, str), "built-in data sets only"
    full = dataset_info(config.dataset).test_size
    return min(full, config.test_subset or full)


def measure_throughput(config: TrainConfig, threads: int) -> Throughput:
    """Train and test images/s of ``config``'s trainer on random images of its data
    set's shape, on the device it would use here."""
    import torch

    from trainers.data import Split, dataset_info
    from trainers.train import Trainer
    from trainers.warmup import warm_up

    assert isinstance(config.dataset, str), "built-in data sets only"
    info = dataset_info(config.dataset)
    n = config.batch_size * PROBE_BATCHES
    gen = torch.Generator().manual_seed(0)
    shape = (n, info.channels, info.stored_size, info.stored_size)
    split = Split(torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen),
                  torch.randint(0, info.num_classes, (n,), generator=gen))
    probe = config.model_copy(update={
        "epochs": 1, "train_subset": None, "test_subset": None, "threads": threads,
        "emissions": config.emissions.model_copy(update={"enabled": False}),
    })
    trainer = Trainer(probe, split, split, info)
    warm_up(trainer, steps=2, emissions=False)
    start = time.perf_counter()
    with trainer.flags():
        epoch = trainer.run_epoch()
    wall_s = time.perf_counter() - start
    train_s = epoch.train_s or wall_s
    eval_s = epoch.eval_s or wall_s
    device = str(trainer.device)
    how = (f"measured here: {epoch.samples} random {info.name}-shaped images trained "
           f"({PROBE_BATCHES} batches of {config.batch_size}) and tested on {device}"
           f"{f' with {threads} thread(s)' if trainer.device.type == 'cpu' else ''}, "
           f"{config.precision}, width {getattr(config.model, 'width', '-')}; selection "
           "scoring and driver overhead not included")
    return Throughput(epoch.samples / train_s, n / eval_s, device, how)


def render(result: Preview) -> list[str]:
    """The dry run's lines, for people."""
    seeds = result.seeds
    lines = [
        f"grid {result.name} (from {result.grid}) on {result.dataset}: {result.trials} trials "
        f"= {len(result.experiments)} experiments x {len(seeds)} seeds {seeds}",
        f"evaluations: {result.total_evaluations:,} training images in all",
    ]
    for name, evaluations in result.experiments.items():
        lines.append(f"  {name:<20} {evaluations:>14,} per trial")
    if result.identical:
        lines.append(result.identical)
    res = result.resources
    node = f" node_type={res['node_type']}" if res.get("node_type") else ""
    lines.append(f"resources per trial: cpu={res['cpu']:g} gpu={res['gpu']:g}{node}")
    if result.sets:
        lines.append("overrides: " + " ".join(f"--set {s}" for s in result.sets))
    if result.only:
        lines.append("only: " + ",".join(result.only))
    if result.throughput is not None and result.trial_hours is not None:
        speed = result.throughput
        lines.append(
            f"compute: about {result.trial_hours:.3g} trial-hours at "
            f"{speed.train_images_per_s:,.0f} training images/s and "
            f"{speed.test_images_per_s:,.0f} test images/s ({speed.how})")
    if result.gpu is not None:
        lines += result.gpu.lines()
    else:
        lines.append("GPU estimate: no GPU here to measure on; give a GPU's training "
                     "images/s with --images-per-s (bash bench/gpu.sh measures it)")
    lines.append(f"tracking: {result.tracking_uri}   storage: {result.storage}")
    lines.append("dry run: nothing was started or written")
    return lines
