"""The trainer fixtures: the digits splits loaded once, a tiny recipe, and trainers built
through ``trainers.run.build_trainer`` (as production builds them) with deterministic
algorithms on for the test and off again after it."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest
import torch

from trainers.config import ModelConfig, TrainConfig
from trainers.data import Split, load_dataset
from trainers.flags import TorchFlags, torch_flags
from trainers.run import build_trainer
from trainers.schedule import DataStep
from trainers.train import Trainer

MakeTrainer = Callable[[TrainConfig], Trainer]

TINY = ModelConfig(width=0.125)


def tiny_config(**overrides: object) -> TrainConfig:
    """E2 (25% for the first half) on 400 digits, 4 epochs, an eighth-width model, 1 thread."""
    base: dict[str, object] = dict(
        dataset="digits", epochs=4, batch_size=64, seed=3, model=TINY, train_subset=400,
        test_subset=200, threads=1, schedule=DataStep(d=0.25, e=0.5), experiment="E2",
        emissions={"enabled": False},
    )
    base.update(overrides)
    return TrainConfig.model_validate(base)


def restored_after(make_trainer: MakeTrainer, config: TrainConfig, epochs: int) -> Trainer:
    """A fresh trainer loaded from the checkpoint of another that trained ``epochs`` epochs
    (saved and read back as a file is, with ``weights_only``: a checkpoint needs no pickle)."""
    first = make_trainer(config)
    for _ in range(epochs):
        first.run_epoch()
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    second = make_trainer(config)
    second.load_state_dict(torch.load(buf, weights_only=True))
    return second


@pytest.fixture(scope="session")
def digits() -> tuple[Split, Split]:
    """Both digits splits on the CPU, loaded once."""
    return load_dataset("digits", None)


@pytest.fixture
def deterministic() -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` for one test, restored after it."""
    with torch_flags(TorchFlags(deterministic=True)):
        yield


@pytest.fixture
def make_trainer(digits: tuple[Split, Split], deterministic: None) -> MakeTrainer:
    """Trainers on the loaded digits, built as production builds them."""
    return lambda config: build_trainer(config, digits)
