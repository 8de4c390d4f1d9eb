"""Torch's process-wide switches: a trainer sets its own while it runs and restores the
process's after, so trainers built in a row (a benchmark's) never inherit each other's."""

from __future__ import annotations

import pytest
import torch

from tests.trainers.conftest import MakeTrainer, tiny_config
from trainers.flags import TorchFlags, torch_flags
from trainers.train import Trainer

# Not the process's own values (torch's defaults, 2 threads here), so that a switch left
# behind is seen.
ODD = TorchFlags(threads=3, matmul_precision="medium", cudnn_tf32=True)


def _flags_while_training(trainer: Trainer) -> list[TorchFlags]:
    """The switches as the process had them after each epoch, read inside ``fit``."""
    seen: list[TorchFlags] = []
    trainer.fit(lambda _result: seen.append(TorchFlags.current()))
    return seen


def test_a_run_sets_its_flags_and_restores_the_process_ones(make_trainer: MakeTrainer) -> None:
    with torch_flags(ODD):
        before = TorchFlags.current()
        trainer = make_trainer(tiny_config(epochs=2, precision="tf32", threads=1))
        assert TorchFlags.current() == before  # building one changes nothing
        during = _flags_while_training(trainer)
        assert [(f.threads, f.matmul_precision, f.cudnn_tf32) for f in during] == [
            (1, "high", True)] * 2
        assert TorchFlags.current() == before
        trainer.evaluate()  # on its own, too
        assert TorchFlags.current() == before


def test_trainers_in_a_row_do_not_inherit_each_others_flags(make_trainer: MakeTrainer) -> None:
    """bench/gpu.py's order: a TF32 trainer runs, then the fp32 reference."""
    tf32 = make_trainer(tiny_config(epochs=1, precision="tf32", threads=1))
    fp32 = make_trainer(tiny_config(epochs=1, precision="fp32", threads=2))
    assert [f.matmul_precision for f in _flags_while_training(tf32)] == ["high"]
    during = _flags_while_training(fp32)
    assert [(f.threads, f.matmul_precision, f.cudnn_tf32) for f in during] == [
        (2, "highest", False)]


def test_nested_scopes_restore_in_order_even_after_an_error(make_trainer: MakeTrainer) -> None:
    before = TorchFlags.current()
    trainer = make_trainer(tiny_config(epochs=1, precision="tf32", threads=1))
    with pytest.raises(RuntimeError, match="stop"), trainer.flags():
        with trainer.flags():  # re-entrant: the inner scope changes nothing
            pass
        assert torch.get_float32_matmul_precision() == "high"
        raise RuntimeError("stop")
    assert TorchFlags.current() == before


def test_the_deterministic_fixture_is_scoped(deterministic: None) -> None:
    assert torch.are_deterministic_algorithms_enabled()
    with torch_flags(TorchFlags(deterministic=False)):
        assert not torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled()
