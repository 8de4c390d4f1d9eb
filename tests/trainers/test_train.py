"""The training loop: exact accounting, determinism, and exact restore (CPU)."""

from __future__ import annotations

import pytest
import torch

from tests.trainers.conftest import MakeTrainer, restored_after, tiny_config
from trainers.schedule import evaluations
from trainers.train import lr_at


def test_epoch_accounting_matches_closed_form(make_trainer: MakeTrainer) -> None:
    config = tiny_config()
    trainer = make_trainer(config)
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


def test_same_seed_same_run_other_seed_other(make_trainer: MakeTrainer) -> None:
    a = make_trainer(tiny_config(epochs=2)).fit()
    b = make_trainer(tiny_config(epochs=2)).fit()
    c = make_trainer(tiny_config(epochs=2, seed=4))
    c.fit()
    assert a.final_top1 == b.final_top1 and a.evaluations == b.evaluations
    ta, tc = make_trainer(tiny_config(epochs=2)), c
    ta.fit()
    assert not torch.equal(
        next(iter(ta.model.state_dict().values())), next(iter(tc.model.state_dict().values()))
    )


def test_restored_run_equals_uninterrupted(make_trainer: MakeTrainer) -> None:
    config = tiny_config()
    full = make_trainer(config)
    full.fit()

    second = restored_after(make_trainer, config, epochs=2)
    assert second.epoch == 2 and second.evaluations == 200
    result = second.fit()
    assert result.evaluations == full.evaluations == 1000
    assert [r.evaluations for r in second.history] == [r.evaluations for r in full.history]
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    for name, tensor in full.ema.state_dict().items():
        assert torch.equal(tensor, second.ema.state_dict()[name]), name
    assert result.final_top1 == full.result().final_top1


def test_checkpoint_of_another_config_is_refused(make_trainer: MakeTrainer) -> None:
    a = make_trainer(tiny_config(epochs=2))
    a.run_epoch()
    b = make_trainer(tiny_config(epochs=2, seed=9))
    with pytest.raises(ValueError, match="another config.*seed"):
        b.load_state_dict(a.state_dict())


def test_lr_schedule_is_per_epoch_with_floor() -> None:
    config = tiny_config(lr_min=1e-4)
    assert lr_at(config, 0) == 1e-3
    assert lr_at(config, 1) == pytest.approx(0.98e-3)
    assert lr_at(config, 500) == 1e-4


def test_without_augmentation_trains_on_test_time_inputs(make_trainer: MakeTrainer) -> None:
    trainer = make_trainer(tiny_config(epochs=1, augment=False))
    result = trainer.run_epoch()
    assert result.samples == 100 and result.train_loss > 0
