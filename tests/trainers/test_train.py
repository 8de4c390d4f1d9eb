"""The training loop: exact accounting, determinism, and exact restore (CPU)."""

from __future__ import annotations

import io

import pytest
import torch

from trainers.config import ModelConfig, TrainConfig
from trainers.data import dataset_info, load_dataset
from trainers.schedule import DataStep, evaluations
from trainers.train import Trainer, lr_at

TINY = ModelConfig(width=0.125)


def _config(**kw: object) -> TrainConfig:
    base = dict(dataset="digits", epochs=4, batch_size=64, seed=3, model=TINY,
                train_subset=400, test_subset=200, threads=1,
                schedule=DataStep(d=0.25, e=0.5), experiment="E2")
    base.update(kw)
    return TrainConfig.model_validate(base)


@pytest.fixture(scope="module")
def digits() -> tuple:
    return load_dataset("digits", None)


def _trainer(config: TrainConfig, digits: tuple) -> Trainer:
    torch.use_deterministic_algorithms(True)
    return Trainer(config, digits[0], digits[1], dataset_info("digits"))


def test_epoch_accounting_matches_closed_form(digits: tuple) -> None:
    config = _config()
    trainer = _trainer(config, digits)
    seen: list = []
    result = trainer.fit(seen.append)
    assert [r.samples for r in seen] == [100, 100, 400, 400]
    assert [r.fraction for r in seen] == [0.25, 0.25, 1.0, 1.0]
    assert [r.evaluations for r in seen] == [100, 200, 600, 1000]
    assert result.evaluations == evaluations(config.schedule, 400, 4) == 1000
    assert [r.lr for r in seen] == pytest.approx([1e-3 * 0.98**t for t in range(4)])
    assert all(0.0 <= r.test_top1 <= 1.0 and r.epoch_s > 0 for r in seen)
    assert result.best_top1 == max(r.test_top1 for r in seen)
    assert result.final_top1 == seen[-1].test_top1
    # Every trained sample got its loss recorded; the others never did.
    assert int(torch.isfinite(trainer.sample_loss).sum()) == 400


def test_same_seed_same_run_other_seed_other(digits: tuple) -> None:
    a = _trainer(_config(epochs=2), digits).fit()
    b = _trainer(_config(epochs=2), digits).fit()
    c = _trainer(_config(epochs=2, seed=4), digits)
    c.fit()
    assert a.final_top1 == b.final_top1 and a.evaluations == b.evaluations
    ta, tc = _trainer(_config(epochs=2), digits), c
    ta.fit()
    assert not torch.equal(
        next(iter(ta.model.state_dict().values())), next(iter(tc.model.state_dict().values()))
    )


def test_restored_run_equals_uninterrupted(digits: tuple) -> None:
    config = _config()
    full = _trainer(config, digits)
    full.fit()

    first = _trainer(config, digits)
    first.run_epoch()
    first.run_epoch()
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # a checkpoint needs no pickle

    second = _trainer(config, digits)
    second.load_state_dict(state)
    assert second.epoch == 2 and second.evaluations == 200
    result = second.fit()
    assert result.evaluations == full.evaluations == 1000
    assert [r.evaluations for r in second.history] == [r.evaluations for r in full.history]
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    for name, tensor in full.ema.state_dict().items():
        assert torch.equal(tensor, second.ema.state_dict()[name]), name
    assert result.final_top1 == full.result().final_top1


def test_checkpoint_of_another_config_is_refused(digits: tuple) -> None:
    a = _trainer(_config(epochs=2), digits)
    a.run_epoch()
    b = _trainer(_config(epochs=2, seed=9), digits)
    with pytest.raises(ValueError, match="another config.*seed"):
        b.load_state_dict(a.state_dict())


def test_lr_schedule_is_per_epoch_with_floor() -> None:
    config = _config(lr_min=1e-4)
    assert lr_at(config, 0) == 1e-3
    assert lr_at(config, 1) == pytest.approx(0.98e-3)
    assert lr_at(config, 500) == 1e-4


def test_without_augmentation_trains_on_test_time_inputs(digits: tuple) -> None:
    trainer = _trainer(_config(epochs=1, augment=False), digits)
    result = trainer.run_epoch()
    assert result.samples == 100 and result.train_loss > 0
