"""What the benchmarks run: real MNIST, the trainer's config, a local MLflow server.

MNIST is the real one in ``../shared/datasets`` (the ``shared`` folder beside the repo).
The model is a quarter-width capsule net on 2 torch threads: big enough that an epoch is
dominated by the forward and backward passes, small enough for a 2-core CPU.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from harness import synchronize
from trainers.config import EmissionsConfig, ModelConfig, TrainConfig
from trainers.data import Split, dataset_info, load_dataset
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
    "train_seconds",
]

MNIST_ROOT = Path(
    os.environ.get("LESSDATA_BENCH_MNIST")
    or Path(__file__).resolve().parents[2] / "shared" / "datasets"
)
"""A torchvision root holding MNIST/raw/ (plain or .gz): ``$LESSDATA_BENCH_MNIST`` if set."""
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
    return Trainer(config, data[0], data[1], dataset_info("mnist"))


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@contextmanager
def mlflow_server() -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite store in a temp dir; yields its URI.

    Started in its own process group and always stopped (as tests/conftest.py does). The
    server's job runner (MLflow 3's huey consumers: eight more processes, a steady few
    percent of a core each) is switched off: lessdata runs no MLflow jobs, and on 2 cores
    they would only add load to the epochs the logging is compared with.
    """
    with tempfile.TemporaryDirectory(prefix="lessdata-bench-mlflow-") as tmp:
        root, port = Path(tmp), _free_port()
        cmd = [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            uri = f"http://127.0.0.1:{port}"
            _wait_http(f"{uri}/health", proc)
            yield uri
        finally:
            _stop(proc)


@contextmanager
def ray_head(num_cpus: int) -> Iterator[str]:
    """A one-node Ray cluster (`ray start --head --block`, its own process group) with
    ``num_cpus`` CPUs and no GPU, always stopped; yields its address once it answers."""
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
           f"--port={port}", f"--num-cpus={num_cpus}", "--num-gpus=0",
           "--include-dashboard=false", "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    probe = "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR')"
    try:
        deadline = time.monotonic() + 90
        while subprocess.run([sys.executable, "-c", probe, address], env=env,
                             capture_output=True, timeout=60).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray head at {address} did not start")
            time.sleep(1)
        yield address
    finally:
        _stop(proc)
