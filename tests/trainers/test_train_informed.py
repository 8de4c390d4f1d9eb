"""The loop with informed selection: loss weights, per-sample state, accounting, restore."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
import torch

from trainers.config import ModelConfig, TrainConfig
from trainers.data import dataset_info, load_dataset
from trainers.schedule import Breakpoint, DataStep, Piecewise, counts
from trainers.selection import SampleView, Selection, planned_counts
from trainers.train import Trainer

TINY = ModelConfig(width=0.125)
QUARTER = Piecewise(breakpoints=[Breakpoint(at=0.0, fraction=0.25)])


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


def test_unit_weights_train_exactly_like_no_weights(digits: tuple) -> None:
    plain, weighted = _trainer(_config(), digits), _trainer(_config(), digits)
    weighted.selector = _Weighted(weighted.selector, 1.0)  # type: ignore[assignment]
    plain.run_epoch()
    weighted.run_epoch()
    for a, b in zip(_params(plain), _params(weighted), strict=True):
        assert torch.equal(a, b)


def test_zero_weights_leave_the_parameters_unchanged(digits: tuple) -> None:
    trainer = _trainer(_config(), digits)
    trainer.selector = _Weighted(trainer.selector, 0.0)  # type: ignore[assignment]
    before = _params(trainer)
    trainer.run_epoch()  # mean(0 * loss): zero gradients, Adam steps of 0
    for a, b in zip(before, _params(trainer), strict=True):
        assert torch.equal(a, b)
    assert int(torch.isfinite(trainer.sample_loss).sum()) == 100  # losses still recorded


def test_scoring_passes_are_counted_apart(digits: tuple) -> None:
    trainer = _trainer(_config(), digits)
    trainer.selector = _Weighted(trainer.selector, None, scoring=7)  # type: ignore[assignment]
    seen: list = []
    result = trainer.fit(seen.append)
    assert [r.scoring_evaluations for r in seen] == [7, 14, 21, 28]  # cumulative
    assert [r.evaluations for r in seen] == [100, 200, 600, 1000]  # training only
    assert result.scoring_evaluations == 28 and result.evaluations == 1000
    assert result.metrics()["scoring_evaluations"] == 28.0
    assert seen[0].metrics()["scoring_evaluations"] == 7.0


@pytest.mark.parametrize("name", ["loss_soft", "hardest", "easiest", "forgetting"])
def test_informed_runs_count_exactly_and_score_for_free(name: str, digits: tuple) -> None:
    config = _config(selection=name, schedule=QUARTER, experiment="quarter", anneal=0.5)
    trainer = _trainer(config, digits)
    seen: list = []
    result = trainer.fit(seen.append)
    expected = planned_counts(name, 0.5, counts(QUARTER, 400, 4), 400)
    assert expected == ([100, 100, 400, 400] if name == "loss_soft" else [100] * 4)
    assert [r.samples for r in seen] == expected
    assert result.evaluations == sum(expected)
    assert result.scoring_evaluations == 0
    if name == "loss_soft":  # past the annealing boundary: all the data, fraction 1
        assert [r.fraction for r in seen] == [0.25, 0.25, 1.0, 1.0]


def test_per_sample_state_follows_the_visits(digits: tuple) -> None:
    trainer = _trainer(_config(), digits)
    batch = torch.tensor([5, 9])
    for hits, expected in [([True, False], [0, 0]), ([False, False], [1, 0]),
                           ([True, True], [1, 0]), ([False, True], [2, 0])]:
        trainer._record(batch, torch.tensor([0.1, 0.2]), torch.tensor(hits))
        assert trainer.forgettings[batch].tolist() == expected
        assert trainer.sample_correct[batch].tolist() == hits
    assert trainer.sample_loss[batch].tolist() == pytest.approx([0.1, 0.2])
    assert int(trainer.forgettings.sum()) == 2 and int(trainer.sample_correct.sum()) == 1


def test_training_records_correctness_and_forgetting(digits: tuple) -> None:
    trainer = _trainer(_config(schedule=DataStep(d=1.0, e=0.5), experiment="full"), digits)
    trainer.run_epoch()
    assert int(trainer.forgettings.sum()) == 0  # one visit: nothing to forget yet
    first = trainer.sample_correct.clone()
    assert 0 < int(first.sum()) < 400
    trainer.run_epoch()
    # A forgetting event is exactly: correct at visit 1 and wrong at visit 2.
    assert torch.equal(trainer.forgettings, (first & ~trainer.sample_correct).long())


@pytest.mark.parametrize("name", ["loss_soft", "forgetting"])
def test_restored_informed_run_equals_uninterrupted(name: str, digits: tuple) -> None:
    config = _config(selection=name, schedule=QUARTER, experiment="quarter", anneal=0.75)
    full = _trainer(config, digits)
    full.fit()

    first = _trainer(config, digits)
    first.run_epoch()
    first.run_epoch()
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    second = _trainer(config, digits)
    second.load_state_dict(torch.load(buf, weights_only=True))
    result = second.fit()

    assert [r.samples for r in second.history] == [r.samples for r in full.history]
    assert result.evaluations == full.evaluations
    for attr in ("sample_loss", "sample_correct", "forgettings"):
        assert torch.equal(getattr(second, attr), getattr(full, attr)), attr
    for key, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[key]), key
    assert result.final_top1 == full.result().final_top1


def test_checkpoint_from_before_informed_selection_loads(digits: tuple) -> None:
    trainer = _trainer(_config(), digits)
    trainer.run_epoch()
    state = trainer.state_dict()
    for key in ("sample_correct", "forgettings", "scoring_evaluations"):
        del state[key]
    state["sample_loss"] = torch.where(torch.isinf(trainer.sample_loss), float("nan"),
                                       trainer.sample_loss)  # NaN meant never seen
    for row in state["history"]:
        del row["scoring_evaluations"]
    restored = _trainer(_config(), digits)
    restored.load_state_dict(state)
    assert torch.equal(restored.sample_loss, trainer.sample_loss)  # NaN -> +inf
    assert restored.scoring_evaluations == 0 and restored.history[0].scoring_evaluations == 0
