"""What the benchmarks run: real MNIST, the trainer's config, a local MLflow server.

MNIST is the real one in ``../shared/datasets`` (the ``shared`` folder beside the repo;
``$LESSDATA_MNIST`` if set: ``tests.services.MNIST_ROOT``).
The model is a quarter-width capsule net on 2 torch threads: big enough that an epoch is
dominated by the forward and backward passes, small enough for a 2-core CPU.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from harness import synchronize
from tests.services import MNIST_ROOT, mlflow_server_at, ray_cluster
from trainers.config import EmissionsConfig, ModelConfig, TrainConfig
from trainers.data import Split, load_dataset
from trainers.run import build_trainer
from trainers.train import Trainer

__all__ = [
    "BATCH",
    "TEST_SUBSET",
    "MNIST_ROOT",
    "THREADS",
    "WIDTH",
    "load_mnist",
    "mlflow_server",
    "mnist_config",
    "mnist_trainer",
    "ray_head",
    "train_seconds",
]

WIDTH = 0.25
THREADS = 2
BATCH = 120
TEST_SUBSET = 100
"""Test images evaluated per epoch: a small fixed cost (the training part is what we time)."""
MANY_EPOCHS = 10_000
"""Epochs a timing trainer is configured for, so any number of ``run_epoch`` calls is valid."""


def load_mnist(root: Path = MNIST_ROOT) -> tuple[Split, Split]:
    """Both MNIST splits on the CPU, from the official IDX files."""
    return load_dataset("mnist", root)


def mnist_config(device: torch.device, **overrides: Any) -> TrainConfig:
    """The benchmarks' MNIST recipe: the trainer's defaults at width 0.25, 2 threads."""
    base: dict[str, Any] = {
        "dataset": "mnist",
        "data_dir": MNIST_ROOT,
        "epochs": MANY_EPOCHS,
        "batch_size": BATCH,
        "test_subset": TEST_SUBSET,
        "model": ModelConfig(width=WIDTH),
        "threads": THREADS,
        "device": str(device),
        "emissions": EmissionsConfig(enabled=False),
    }
    base.update(overrides)
    return TrainConfig.model_validate(base)


def mnist_trainer(config: TrainConfig, data: tuple[Split, Split]) -> Trainer:
    """A trainer on already loaded MNIST (its ``train_subset`` picks the images)."""
    return build_trainer(config, data)


def train_seconds(trainer: Trainer) -> float:
    """One ``run_epoch``, less its test evaluation (timed again right after, same weights).

    ``run_epoch`` ends with ``evaluate()``; evaluating once more on the same weights costs
    the same, so the difference is the selection stage plus the training part.
    """
    synchronize(trainer.device)
    start = time.perf_counter()
    trainer.run_epoch()
    epoch_s = time.perf_counter() - start  # run_epoch synchronises itself
    start = time.perf_counter()
    trainer.evaluate()
    return epoch_s - (time.perf_counter() - start)


@contextmanager
def mlflow_server(workers: int = 1) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite store in a temp dir (the tests'
    ``MlflowServer``: its own process group, job runner off, always stopped; ``workers``
    server processes); yields its URI."""
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-mlflow-") as tmp, \
            mlflow_server_at(Path(tmp), workers=workers) as server:
        yield server.uri


@contextmanager
def ray_head(num_cpus: int) -> Iterator[str]:
    """A one-node Ray cluster with ``num_cpus`` CPUs and no GPU (the tests'
    ``ray_cluster``), always stopped; yields its address once it answers."""
    with ray_cluster(nodes=1, cpus_per_node=num_cpus) as cluster:
        yield cluster.address
