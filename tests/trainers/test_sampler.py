"""ScheduledSampler: a plain PyTorch loop gets exactly the Trainer's subsets, order and counts."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import BIN, REPO
from trainers import ScheduledSampler
from trainers.config import ModelConfig, TrainConfig
from trainers.data import dataset_info, load_dataset
from trainers.errors import ConfigError
from trainers.experiments import EXPERIMENTS, experiment
from trainers.selection import SampleView, Selection, Selector
from trainers.train import Trainer

EPOCHS = 4
N = 97  # odd, so fractions round and shards are uneven


def _loop(sampler: ScheduledSampler, n: int, batch_size: int = 7) -> list[list[int]]:
    """A plain DataLoader loop over a toy set whose items are their own indices."""
    data = TensorDataset(torch.arange(n), torch.arange(n) % 3)
    loader = DataLoader(data, batch_size=batch_size, sampler=sampler)
    epochs = []
    for epoch in range(sampler.epochs):
        sampler.set_epoch(epoch)
        seen: list[int] = []
        for x, _y in loader:
            seen += x.tolist()
        assert len(seen) == len(sampler)
        epochs.append(seen)
    return epochs


# the CLI's evaluations -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_rows() -> dict[str, int]:
    out = subprocess.run(
        [str(BIN / "lessdata"), "schedules", "--epochs", str(EPOCHS), "--train-size", str(N),
         "--json"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    return {row["experiment"]: row["evaluations"] for row in json.loads(out)}


@pytest.mark.parametrize("selection", ["fixed", "per_epoch", "stratified"])
def test_plain_loop_hands_out_the_cli_evaluations(
    cli_rows: dict[str, int], selection: str
) -> None:
    assert list(cli_rows) == list(EXPERIMENTS)
    for name, expected in cli_rows.items():
        sampler = ScheduledSampler(N, name, epochs=EPOCHS, seed=1, selection=selection,
                                   labels=torch.arange(N) % 3)
        epochs = _loop(sampler, N)
        assert sampler.evaluations == sum(map(len, epochs)) == expected, name
        assert all(len(set(e)) == len(e) for e in epochs)  # no sample twice in an epoch


def test_schedule_mapping_and_object_equal_the_experiment() -> None:
    by_name = _loop(ScheduledSampler(N, "e3", epochs=EPOCHS, seed=2), N)
    mapping = {"method": "data_step", "d": 0.25, "e": 0.75}
    assert _loop(ScheduledSampler(N, mapping, epochs=EPOCHS, seed=2), N) == by_name
    assert _loop(ScheduledSampler(N, experiment("E3"), epochs=EPOCHS, seed=2), N) == by_name


# seeds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("selection", ["fixed", "per_epoch", "stratified", "loss_soft"])
def test_same_seed_same_indices_other_seed_other(selection: str) -> None:
    def run(seed: int) -> list[list[int]]:
        return _loop(ScheduledSampler(N, "E11", epochs=EPOCHS, seed=seed, selection=selection,
                                      labels=torch.arange(N) % 3), N)

    assert run(0) == run(0)
    other = run(1)
    assert other != run(0)
    assert [len(e) for e in other] == [len(e) for e in run(0)]


# sharding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shards_partition_each_epoch(world_size: int) -> None:
    whole = ScheduledSampler(N, "E14", epochs=EPOCHS, seed=5, selection="per_epoch")
    shards = [ScheduledSampler(N, "E14", epochs=EPOCHS, seed=5, selection="per_epoch",
                               rank=r, world_size=world_size) for r in range(world_size)]
    for epoch in range(EPOCHS):
        whole.set_epoch(epoch)
        parts = []
        for shard in shards:
            shard.set_epoch(epoch)
            parts.append(list(shard))
        flat = [i for part in parts for i in part]
        assert sorted(flat) == sorted(whole) and len(set(flat)) == len(flat)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert sum(s.evaluations for s in shards) == whole.evaluations


# equality with the Trainer ----------------------------------------------------------------


@dataclass
class _Recorder:
    """What a Trainer chose (through its selector) and trained on (through ``_record``)."""

    selector: Selector
    selections: list[Selection] = field(default_factory=list)
    batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def select(self, epoch: int, count: int, view: SampleView) -> Selection:
        chosen = self.selector.select(epoch, count, view)
        self.selections.append(chosen)
        return chosen


CASES = [("fixed", "E3"), ("per_epoch", "E10"), ("stratified", "E14"),
         ("loss_soft", "E1"), ("hardest", "E5"), ("forgetting", "E12")]


@pytest.mark.parametrize(("selection", "name"), CASES)
def test_indices_equal_the_trainers(
    monkeypatch: pytest.MonkeyPatch, selection: str, name: str
) -> None:
    """Epoch by epoch, the sampler yields the Trainer's batches in order, fed its losses."""
    train, test = load_dataset("digits", None)
    config = TrainConfig(dataset="digits", experiment=name, schedule=experiment(name),
                         selection=selection, seed=7, epochs=EPOCHS, batch_size=50,
                         anneal=0.5, augment=False, train_subset=300, test_subset=50,
                         model=ModelConfig(width=0.125, convs=3), threads=1)
    trainer = Trainer(config, train, test, dataset_info("digits"))
    recorder = _Recorder(trainer.selector)
    original = trainer._record

    def record(batch: torch.Tensor, losses: torch.Tensor, hit: torch.Tensor) -> None:
        recorder.batches.append((batch.clone(), losses.clone(), hit.clone()))
        original(batch, losses, hit)

    monkeypatch.setattr(trainer, "_record", record)
    monkeypatch.setattr(trainer, "selector", recorder)
    # The Trainer's training set is its class-balanced 300-sample subset: index that.
    sampler = ScheduledSampler(trainer.n_train, name, epochs=EPOCHS, seed=7,
                               selection=selection, labels=trainer.train.labels, anneal=0.5)
    for epoch in range(EPOCHS):
        trainer.run_epoch()
        batches, recorder.batches = recorder.batches, []
        sampler.set_epoch(epoch)
        assert list(sampler) == torch.cat([b for b, _, _ in batches]).tolist(), epoch
        chosen = recorder.selections[epoch]
        expected = dict(zip(chosen.indices.tolist(), (chosen.weights if chosen.weights
                            is not None else torch.ones(len(chosen.indices))).tolist(),
                            strict=True))
        for batch, losses, hit in batches:
            assert sampler.weights(batch).tolist() == [expected[i] for i in batch.tolist()]
            sampler.update(batch, losses, hit)
    assert sampler.evaluations == trainer.evaluations
    assert torch.equal(sampler.sample_loss, trainer.sample_loss)
    assert torch.equal(sampler.forgettings, trainer.forgettings)
    if selection == "loss_soft":  # past the boundary (epochs 2, 3): all data, weight 1
        assert [len(s.indices) for s in recorder.selections][2:] == [300, 300]
        assert any(s.weights is not None for s in recorder.selections[:2])


def test_weighted_loop_with_reduction_none() -> None:
    """The documented loop: per-sample losses in, weights out, exact evaluations."""
    torch.manual_seed(0)
    x_all, y_all = torch.randn(N, 4), torch.arange(N) % 3
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # All data first (every sample gets a loss), then half: loss_soft prunes low losses.
    halves = {"method": "piecewise", "breakpoints": [{"at": 0.0, "fraction": 1.0},
                                                     {"at": 0.25, "fraction": 0.5}]}
    sampler = ScheduledSampler(N, halves, epochs=EPOCHS, seed=0, selection="loss_soft",
                               anneal=1.0)
    loader = DataLoader(TensorDataset(torch.arange(N), x_all, y_all), batch_size=10,
                        sampler=sampler, num_workers=2)
    weighted = 0
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        for step, (idx, x, y) in enumerate(loader):
            # The docs' way to know a batch's indices: slice the epoch's order.
            assert torch.equal(sampler.indices[step * 10:(step + 1) * 10], idx)
            losses = F.cross_entropy(model(x), y, reduction="none")  # [B]
            w = sampler.weights(idx)
            weighted += int((w != 1).sum())
            opt.zero_grad()
            (w * losses).mean().backward()
            opt.step()
            sampler.update(idx, losses)
    assert sampler.evaluations == N + 3 * 49
    assert weighted > 0  # low-loss samples were pruned and the kept ones up-weighted


# checkpoints, errors, import ------------------------------------------------------------


def test_state_dict_resumes_exactly() -> None:
    def make() -> ScheduledSampler:
        return ScheduledSampler(N, "E7", epochs=EPOCHS, seed=3, selection="hardest")

    def epoch(s: ScheduledSampler, t: int) -> list[int]:
        s.set_epoch(t)
        out = list(s)
        losses = torch.rand(len(out), generator=torch.Generator().manual_seed(t))
        s.update(torch.tensor(out), losses)
        return out

    straight = make()
    expected = [epoch(straight, t) for t in range(EPOCHS)]
    first = make()
    got = [epoch(first, t) for t in range(2)]
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    got += [epoch(resumed, t) for t in range(2, EPOCHS)]
    assert got == expected and resumed.evaluations == straight.evaluations


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"experiment": "E99"}, "unknown experiment 'E99'; expected one of: Benchmark, E1"),
        ({"experiment": {"method": "data_step", "d": 0.5}}, "data_step.e: Field required"),
        ({"selection": "best"}, "unknown selection 'best'; expected one of: fixed, per_epoch"),
        ({"selection": "stratified"}, "selection='stratified' needs labels"),
        ({"labels": [0, 1]}, "labels has 2 entries for n=97"),
        ({"rank": 2, "world_size": 2}, "need 0 <= rank < world_size, got rank=2"),
        ({"epochs": 0}, "epochs must be >= 1"),
    ],
)
def test_bad_arguments_one_line(kwargs: dict, message: str) -> None:
    args: dict = {"experiment": "E1", "epochs": EPOCHS, **kwargs}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        ScheduledSampler(N, **args)
    assert "\n" not in str(info.value)


def test_forgetting_needs_correctness() -> None:
    sampler = ScheduledSampler(N, "E1", epochs=EPOCHS, selection="forgetting")
    with pytest.raises(ValueError, match="needs update"):
        sampler.update(torch.tensor([0]), torch.tensor([1.0]))


def test_import_needs_no_ray_mlflow_or_eager_torch() -> None:
    code = (
        "import sys, trainers\n"
        "assert 'torch' not in sys.modules, 'torch imported eagerly'\n"
        "from trainers import ScheduledSampler\n"
        "heavy = [m for m in ('ray', 'mlflow', 'torchvision') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert ScheduledSampler.__module__ == 'trainers.sampler'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
