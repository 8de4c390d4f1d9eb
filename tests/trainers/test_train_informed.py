"""The loop with informed selection: loss weights, per-sample state, accounting, restore."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.trainers.conftest import MakeTrainer, restored_after, tiny_config
from trainers.schedule import Breakpoint, DataStep, Piecewise, counts
from trainers.selection import SampleView, Selection, planned_counts
from trainers.train import Trainer

QUARTER = Piecewise(breakpoints=[Breakpoint(at=0.0, fraction=0.25)])





class _Weighted:
    """The ``fixed`` indices with a constant loss weight and a fixed scoring cost."""

    def __init__(self, inner: object, weight: float | None, scoring: int = 0) -> None:
        self.inner, self.weight, self.scoring = inner, weight, scoring

    def select(self, epoch: int, count: int, view: SampleView) -> Selection:
        chosen = self.inner.select(epoch, count, view)  # type: ignore[attr-defined]
        weights = None if self.weight is None else torch.full((count,), self.weight)
        return replace(chosen, weights=weights, scoring_evaluations=self.scoring)


def _params(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_unit_weights_train_exactly_like_no_weights(make_trainer: MakeTrainer) -> None:
    plain, weighted = make_trainer(tiny_config()), make_trainer(tiny_config())
    weighted.selector = _Weighted(weighted.selector, 1.0)  # type: ignore[assignment]
    plain.run_epoch()
    weighted.run_epoch()
    for a, b in zip(_params(plain), _params(weighted), strict=True):
        assert torch.equal(a, b)


def test_zero_weights_leave_the_parameters_unchanged(make_trainer: MakeTrainer) -> None:
    trainer = make_trainer(tiny_config())
    trainer.selector = _Weighted(trainer.selector, 0.0)  # type: ignore[assignment]
    before = _params(trainer)
    trainer.run_epoch()  # mean(0 * loss): zero gradients, Adam steps of 0
    for a, b in zip(before, _params(trainer), strict=True):
        assert torch.equal(a, b)
    assert int(torch.isfinite(trainer.sample_loss).sum()) == 100  # losses still recorded


def test_scoring_passes_are_counted_apart(make_trainer: MakeTrainer) -> None:
    trainer = make_trainer(tiny_config())
    trainer.selector = _Weighted(trainer.selector, None, scoring=7)  # type: ignore[assignment]
    seen: list = []
    result = trainer.fit(seen.append)
    assert [r.scoring_evaluations for r in seen] == [7, 14, 21, 28]  # cumulative
    assert [r.evaluations for r in seen] == [100, 200, 600, 1000]  # training only
    assert result.scoring_evaluations == 28 and result.evaluations == 1000
    assert result.metrics()["scoring_evaluations"] == 28.0
    assert seen[0].metrics()["scoring_evaluations"] == 7.0


@pytest.mark.parametrize("name", ["loss_soft", "hardest", "easiest", "forgetting"])
def test_informed_runs_count_exactly_and_score_for_free(
    name: str, make_trainer: MakeTrainer
) -> None:
    config = tiny_config(selection=name, schedule=QUARTER, experiment="quarter", anneal=0.5)
    trainer = make_trainer(config)
    seen: list = []
    result = trainer.fit(seen.append)
    expected = planned_counts(name, 0.5, counts(QUARTER, 400, 4), 400)
    assert expected == ([100, 100, 400, 400] if name == "loss_soft" else [100] * 4)
    assert [r.samples for r in seen] == expected
    assert result.evaluations == sum(expected)
    assert result.scoring_evaluations == 0
    if name == "loss_soft":  # past the annealing boundary: all the data, fraction 1
        assert [r.fraction for r in seen] == [0.25, 0.25, 1.0, 1.0]


def test_per_sample_state_follows_the_visits(make_trainer: MakeTrainer) -> None:
    trainer = make_trainer(tiny_config())
    batch = torch.tensor([5, 9])
    for hits, expected in [([True, False], [0, 0]), ([False, False], [1, 0]),
                           ([True, True], [1, 0]), ([False, True], [2, 0])]:
        trainer._record(batch, torch.tensor([0.1, 0.2]), torch.tensor(hits))
        assert trainer.forgettings[batch].tolist() == expected
        assert trainer.sample_correct[batch].tolist() == hits
    assert trainer.sample_loss[batch].tolist() == pytest.approx([0.1, 0.2])
    assert int(trainer.forgettings.sum()) == 2 and int(trainer.sample_correct.sum()) == 1


def test_training_records_correctness_and_forgetting(make_trainer: MakeTrainer) -> None:
    trainer = make_trainer(tiny_config(schedule=DataStep(d=1.0, e=0.5), experiment="full"))
    trainer.run_epoch()
    assert int(trainer.forgettings.sum()) == 0  # one visit: nothing to forget yet
    first = trainer.sample_correct.clone()
    assert 0 < int(first.sum()) < 400
    trainer.run_epoch()
    # A forgetting event is exactly: correct at visit 1 and wrong at visit 2.
    assert torch.equal(trainer.forgettings, (first & ~trainer.sample_correct).long())


@pytest.mark.parametrize("name", ["loss_soft", "forgetting"])
def test_restored_informed_run_equals_uninterrupted(name: str, make_trainer: MakeTrainer) -> None:
    config = tiny_config(selection=name, schedule=QUARTER, experiment="quarter", anneal=0.75)
    full = make_trainer(config)
    full.fit()

    second = restored_after(make_trainer, config, epochs=2)
    result = second.fit()

    assert [r.samples for r in second.history] == [r.samples for r in full.history]
    assert result.evaluations == full.evaluations
    for attr in ("sample_loss", "sample_correct", "forgettings"):
        assert torch.equal(getattr(second, attr), getattr(full, attr)), attr
    for key, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[key]), key
    assert result.final_top1 == full.result().final_top1


def test_checkpoint_from_before_informed_selection_loads(make_trainer: MakeTrainer) -> None:
    trainer = make_trainer(tiny_config())
    trainer.run_epoch()
    state = trainer.state_dict()
    for key in ("sample_correct", "forgettings", "scoring_evaluations"):
        del state[key]
    state["sample_loss"] = torch.where(torch.isinf(trainer.sample_loss), float("nan"),
                                       trainer.sample_loss)  # NaN meant never seen
    for row in state["history"]:
        del row["scoring_evaluations"]
    restored = make_trainer(tiny_config())
    restored.load_state_dict(state)
    assert torch.equal(restored.sample_loss, trainer.sample_loss)  # NaN -> +inf
    assert restored.scoring_evaluations == 0 and restored.history[0].scoring_evaluations == 0
