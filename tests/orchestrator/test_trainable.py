"""The trainable's warm-up: once per worker process and kind of trainer, before any clock."""

from __future__ import annotations

import pytest

from orchestrator import trainable
from trainers.config import EmissionsConfig, ModelConfig, TrainConfig
from trainers.data import dataset_info, load_dataset
from trainers.train import Trainer


@pytest.fixture(scope="module")
def digits() -> tuple:
    return load_dataset("digits", None)


def _trainer(digits: tuple, width: float = 0.125, experiment: str = "Benchmark") -> Trainer:
    config = TrainConfig(dataset="digits", epochs=1, batch_size=64, threads=1,
                         model=ModelConfig(width=width), train_subset=200, test_subset=64,
                         experiment=experiment, emissions=EmissionsConfig(enabled=False))
    return Trainer(config, digits[0], digits[1], dataset_info("digits"))


def test_warm_once_per_kind_of_trainer(digits: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainable, "_WARM", set())  # a fresh worker process
    first = trainable.warm_once(_trainer(digits))
    assert first > 0
    # the next trial of the same kind (another experiment, same model) is warm already
    assert trainable.warm_once(_trainer(digits, experiment="E3")) == 0.0
    assert trainable.warm_once(_trainer(digits, width=0.25)) > 0  # a new model: warmed
    assert len(trainable._WARM) == 2
