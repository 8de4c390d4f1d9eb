"""Each epoch's times kept apart: training work, test pass, selection, CPU time (CPU)."""

from __future__ import annotations

import time

import pytest

from trainers.config import ModelConfig, TrainConfig
from trainers.data import dataset_info, load_dataset
from trainers.schedule import DataStep
from trainers.train import Trainer


@pytest.fixture(scope="module")
def trained() -> Trainer:
    train, test = load_dataset("digits", None)
    config = TrainConfig(dataset="digits", epochs=4, batch_size=64, seed=1, threads=1,
                         model=ModelConfig(width=0.125), train_subset=800, test_subset=400,
                         schedule=DataStep(d=0.25, e=0.5), experiment="E2")
    trainer = Trainer(config, train, test, dataset_info("digits"))
    trainer.fit()
    return trainer


def test_parts_are_apart_and_inside_the_epoch(trained: Trainer) -> None:
    for r in trained.history:
        assert r.train_s > 0 and r.eval_s > 0 and r.select_s >= 0
        assert r.train_s + r.eval_s + r.select_s <= r.epoch_s + 1e-6
        assert r.train_cpu_s > 0
        assert r.train_gpu_s == 0.0  # CPU run: no CUDA events


def test_training_time_follows_the_images_trained_on(trained: Trainer) -> None:
    # epochs 1-2 train on 200 images, 3-4 on 800; the test pass is the same size in all
    small = sum(r.train_s for r in trained.history[:2])
    full = sum(r.train_s for r in trained.history[2:])
    assert full > 2 * small
    evals = [r.eval_s for r in trained.history]
    assert max(evals) < 3 * min(evals) + 0.05


def test_result_sums_the_epochs(trained: Trainer) -> None:
    result = trained.result()
    assert result.train_s == pytest.approx(sum(r.train_s for r in trained.history))
    assert result.eval_s == pytest.approx(sum(r.eval_s for r in trained.history))
    assert result.train_cpu_s == pytest.approx(sum(r.train_cpu_s for r in trained.history))
    assert trained.train_s == result.train_s


def test_cpu_time_is_not_inflated_by_a_sleep() -> None:
    """The clock the report can fall back on: idle waiting costs wall time, not CPU time."""
    import torch

    from trainers.train import _StepTimer

    timer = _StepTimer(torch.device("cpu"))
    time.sleep(0.3)
    wall, cpu, gpu = timer.stop()
    assert wall >= 0.3 and cpu < 0.1 and gpu == 0.0
