"""Informed selection: each strategy's definition on constructed per-sample state."""

from __future__ import annotations

import pytest
import torch

from trainers.rng import generator
from trainers.selection import (
    SELECTIONS,
    SampleView,
    annealing,
    budget,
    make_selector,
    planned_counts,
    soft_prune,
)

INF = float("inf")
LABELS = torch.arange(10) % 3


def _view(loss: list[float], correct: list[bool] | None = None,
          forgettings: list[int] | None = None) -> SampleView:
    n = len(loss)
    return SampleView(
        loss=torch.tensor(loss),
        correct=torch.tensor(correct if correct is not None else [False] * n),
        forgettings=torch.tensor(forgettings if forgettings is not None else [0] * n),
    )


# -- loss_soft -----------------------------------------------------------------------------

# Known losses 1..6 (mean 3.5): low = {0, 1, 2} (1, 2, 3); high = {3, 4, 5} and the
# never-seen samples 6..9 (+inf): 7 high samples.
LOSSES = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, INF, INF, INF, INF]
LOW, HIGH = {0, 1, 2}, {3, 4, 5, 6, 7, 8, 9}


@pytest.mark.parametrize("count", [8, 9, 10])
def test_loss_soft_keeps_every_high_loss_sample_and_rescales_the_kept_low_ones(
        count: int) -> None:
    chosen = make_selector("loss_soft", LABELS, seed=0).select(0, count, _view(LOSSES))
    indices = chosen.indices.tolist()
    assert len(indices) == len(set(indices)) == count
    assert set(indices) >= HIGH  # never pruned
    kept_low = set(indices) & LOW
    assert len(kept_low) == count - len(HIGH)
    # prune probability p = 1 - kept / |low|: weight 1 / (1 - p) = |low| / kept
    assert chosen.weights is not None
    weight = dict(zip(indices, chosen.weights.tolist(), strict=True))
    assert all(weight[i] == 1.0 for i in HIGH)
    assert all(weight[i] == pytest.approx(len(LOW) / len(kept_low)) for i in kept_low)
    # Unbiased in expectation: the kept low samples weigh as much as all low samples.
    assert sum(weight[i] for i in kept_low) == pytest.approx(len(LOW))


def test_loss_soft_full_budget_is_every_sample_with_weight_one() -> None:
    chosen = make_selector("loss_soft", LABELS, seed=0).select(0, 10, _view(LOSSES))
    assert sorted(chosen.indices.tolist()) == list(range(10))
    assert chosen.weights is not None and torch.all(chosen.weights == 1.0)


@pytest.mark.parametrize("count", [1, 4, 7])
def test_loss_soft_budget_wins_when_the_high_loss_samples_exceed_it(count: int) -> None:
    a = make_selector("loss_soft", LABELS, seed=0).select(0, count, _view(LOSSES))
    assert set(a.indices.tolist()) <= HIGH and a.indices.numel() == count
    assert a.weights is None  # a plain random subset of the high-loss samples
    # Random but seeded: the same (seed, epoch) draws the same, other epochs/seeds differ.
    again = make_selector("loss_soft", LABELS, seed=0).select(0, count, _view(LOSSES))
    assert torch.equal(a.indices, again.indices)
    if count < len(HIGH):
        draws = {tuple(sorted(make_selector("loss_soft", LABELS, seed=s).select(
            e, count, _view(LOSSES)).indices.tolist())) for s in range(4) for e in range(4)}
        assert len(draws) > 1


def test_loss_soft_prunes_low_losses_at_random_per_epoch() -> None:
    select = make_selector("loss_soft", LABELS, seed=3)
    kept = {frozenset(set(select.select(e, 8, _view(LOSSES)).indices.tolist()) & LOW)
            for e in range(20)}
    assert len(kept) > 1  # a fresh draw every epoch
    assert all(len(k) == 1 for k in kept)


def test_loss_soft_before_any_loss_is_a_random_subset() -> None:
    chosen = make_selector("loss_soft", LABELS, seed=0).select(0, 4, SampleView.unseen(10))
    assert chosen.indices.numel() == 4 and chosen.weights is None


def test_soft_prune_mean_is_over_known_losses_only() -> None:
    # Mean of the finite losses is 2.0: 1.0 is low, 2.0 and 3.0 are high (>= mean).
    chosen = soft_prune(torch.tensor([1.0, 2.0, 3.0, INF]), 3, generator(0, "selection", 0))
    assert sorted(chosen.indices.tolist()) == [1, 2, 3]
    assert chosen.weights is None  # the high-loss samples fill the budget exactly


def test_a_nan_loss_counts_as_never_seen() -> None:
    chosen = make_selector("hardest", LABELS, seed=0).select(
        0, 1, _view([1.0, float("nan"), 3.0, 0.5, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7]))
    assert chosen.indices.tolist() == [1]


# -- annealing -----------------------------------------------------------------------------


def test_annealing_boundary_is_the_last_eighth_of_the_epochs_by_default() -> None:
    assert [annealing("loss_soft", 0.875, t, 8) for t in range(8)] == [False] * 7 + [True]
    assert [annealing("loss_soft", 0.875, t, 16) for t in range(16)] == [False] * 14 + [True] * 2
    assert not any(annealing("loss_soft", 0.875, t, 4) for t in range(4))  # 3/4 < 0.875
    assert [annealing("loss_soft", 0.5, t, 4) for t in range(4)] == [False, False, True, True]
    assert not any(annealing("loss_soft", 1.0, t, 300) for t in range(300))  # never
    for name in set(SELECTIONS) - {"loss_soft"}:
        assert not any(annealing(name, 0.5, t, 8) for t in range(8)), name


def test_budget_is_all_the_data_when_annealing() -> None:
    assert budget("loss_soft", 0.875, 25, 100, 7, 8) == 100
    assert budget("loss_soft", 0.875, 25, 100, 6, 8) == 25
    assert budget("fixed", 0.875, 25, 100, 7, 8) == 25
    assert planned_counts("loss_soft", 0.75, [25, 25, 25, 25], 100) == [25, 25, 25, 100]
    assert planned_counts("hardest", 0.75, [25, 25, 25, 25], 100) == [25, 25, 25, 25]


# -- hardest / easiest ---------------------------------------------------------------------

DISTINCT = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]


def test_hardest_and_easiest_take_the_top_and_bottom_losses() -> None:
    hardest = make_selector("hardest", LABELS, seed=0).select(0, 3, _view(DISTINCT))
    easiest = make_selector("easiest", LABELS, seed=0).select(0, 3, _view(DISTINCT))
    assert hardest.indices.tolist() == [2, 6, 4]  # 0.9, 0.8, 0.7
    assert easiest.indices.tolist() == [9, 1, 5]  # 0.0, 0.1, 0.2
    assert hardest.weights is None and easiest.weights is None


def test_never_seen_samples_are_hardest_and_never_easiest() -> None:
    loss = [0.5, INF, 0.9, INF, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7]
    assert set(make_selector("hardest", LABELS, 0).select(0, 2, _view(loss)).indices.tolist()) \
        == {1, 3}
    easiest = make_selector("easiest", LABELS, 0).select(0, 8, _view(loss)).indices.tolist()
    assert 1 not in easiest and 3 not in easiest


@pytest.mark.parametrize("name", ["hardest", "easiest"])
def test_ties_are_broken_at_random_from_the_seed(name: str) -> None:
    tied = [1.0] * 10

    def pick(seed: int, epoch: int) -> list[int]:
        return make_selector(name, LABELS, seed).select(epoch, 4, _view(tied)).indices.tolist()

    assert pick(0, 0) == pick(0, 0)
    assert len({tuple(pick(s, e)) for s in range(3) for e in range(3)}) > 1
    # Ties only among equals: a distinct hardest/easiest sample is always taken first.
    loss = [1.0] * 10
    loss[7] = 5.0 if name == "hardest" else -5.0
    for seed in range(5):
        got = make_selector(name, LABELS, seed).select(0, 2, _view(loss)).indices.tolist()
        assert got[0] == 7


# -- forgetting ----------------------------------------------------------------------------


def test_forgetting_prefers_never_learned_then_most_forgotten() -> None:
    #            0      1      2     3     4      5      6     7     8      9
    correct = [True, True, False, True, False, True, True, True, False, True]
    events = [0, 3, 0, 1, 2, 5, 0, 2, 0, 4]
    # never learned: 2 and 8 (wrong and no event); then 5 (5), 9 (4), 1 (3), {4, 7} (2)
    select = make_selector("forgetting", LABELS, seed=0)
    got = select.select(0, 5, _view([0.0] * 10, correct, events)).indices.tolist()
    assert set(got[:2]) == {2, 8} and got[2:] == [5, 9, 1]
    tie = {select.select(e, 6, _view([0.0] * 10, correct, events)).indices.tolist()[-1]
           for e in range(20)}
    assert tie == {4, 7}  # the tie at 2 events is broken at random per epoch


def test_forgetting_before_any_visit_is_a_random_subset() -> None:
    a = make_selector("forgetting", LABELS, seed=0).select(0, 4, SampleView.unseen(10))
    b = make_selector("forgetting", LABELS, seed=0).select(1, 4, SampleView.unseen(10))
    assert a.indices.numel() == 4 and a.weights is None
    assert a.indices.tolist() != b.indices.tolist()


@pytest.mark.parametrize("name", list(SELECTIONS))
def test_no_strategy_makes_scoring_passes(name: str) -> None:
    chosen = make_selector(name, LABELS, 0).select(2, 5, _view(DISTINCT))
    assert chosen.scoring_evaluations == 0
    assert chosen.indices.dtype == torch.long and chosen.indices.unique().numel() == 5
