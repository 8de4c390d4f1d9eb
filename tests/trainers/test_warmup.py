"""Warm-up changes nothing of the run and is never inside its training time (CPU)."""

from __future__ import annotations

import time

import pytest
import torch

from trainers.config import ModelConfig, TrainConfig
from trainers.data import dataset_info, load_dataset
from trainers.schedule import DataStep
from trainers.train import Trainer
from trainers.warmup import warm_up


@pytest.fixture(scope="module")
def digits() -> tuple:
    return load_dataset("digits", None)


def _trainer(digits: tuple) -> Trainer:
    config = TrainConfig(dataset="digits", epochs=2, batch_size=64, seed=5, threads=1,
                         model=ModelConfig(width=0.125), train_subset=400, test_subset=200,
                         schedule=DataStep(d=0.5, e=0.5), experiment="E5")
    return Trainer(config, digits[0], digits[1], dataset_info("digits"))


def test_a_warmed_run_is_bit_identical_to_a_cold_one(digits: tuple) -> None:
    cold = _trainer(digits)
    cold.fit()
    warm = _trainer(digits)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    seconds = warm_up(warm, steps=4, emissions=False)
    assert seconds > 0
    assert torch.equal(torch.get_rng_state(), before)  # global RNG restored
    assert (warm.epoch, warm.step, warm.evaluations, warm.history) == (0, 0, 0, [])
    warm.fit()
    assert [r.test_top1 for r in warm.history] == [r.test_top1 for r in cold.history]
    assert [r.train_loss for r in warm.history] == [r.train_loss for r in cold.history]
    for a, b in zip(warm.model.state_dict().values(), cold.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)


def test_warm_up_time_is_not_in_the_training_time(digits: tuple) -> None:
    trainer = _trainer(digits)
    start = time.perf_counter()
    warm_up(trainer, steps=30, emissions=True)  # many steps + codecarbon's probe: slow
    warm_s = time.perf_counter() - start
    first = trainer.run_epoch()
    assert first.train_s < warm_s
    assert trainer.train_s == first.train_s
