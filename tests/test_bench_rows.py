"""The scale and writer rows' arithmetic, without running them (each takes many minutes on
a busy 2-core machine: docs/benchmarks.md records their runs): per-trial cost beyond the
trials, its growth, the read rows; the scale grid is a valid grid of N distinct trials."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import scale  # noqa: E402 - a bench script, importable once bench/ is on the path

from orchestrator.grid import Grid  # noqa: E402


def _point(trials: int, wall_s: float, trial_s: float, report_s: float = 1.0,
           peak_mb: float = 300.0) -> scale.Point:
    return scale.Point(trials, wall_s, trial_s, peak_mb, report_s, 2.0)


def test_per_trial_cost_is_the_wall_beyond_the_trials_on_two_slots_over_n() -> None:
    assert scale.SLOTS == 2
    assert _point(200, 100.0, 160.0).per_trial_s == pytest.approx((100 - 80) / 200)


def test_rows_judge_the_growth_from_the_second_largest_n_and_the_reads_at_the_largest() -> None:
    growth, memory, report, status = scale.rows([
        _point(20, 30.0, 20.0), _point(200, 100.0, 160.0),  # 0.1 s per trial
        _point(1_000, 460.0, 800.0, report_s=12.0, peak_mb=325.0)])  # 0.06 s per trial
    assert growth.name == "scale orchestration per trial N=200 -> 1,000"
    assert growth.ratio == pytest.approx(0.06 / 0.1) and growth.met
    assert "N=1,000: wall 460.0 s" in growth.detail and "driver peak 300 MB" in growth.detail
    # the overhead beyond the trials went from 20 s to 60 s over 800 more trials
    assert "from N=200 to 1,000 added 50 ms of orchestration" in growth.detail
    assert memory.name == "scale driver peak memory N=200 -> 1,000"
    assert memory.ratio == pytest.approx(325 / 300) and memory.met  # under a tenth more
    assert "300 -> 325 MB, 32 KB per added trial" in memory.detail  # 25 MB / 800 trials
    growing = scale.rows([_point(200, 100.0, 160.0),
                          _point(1_000, 460.0, 800.0, peak_mb=340.0)])[1]
    assert growing.ratio == pytest.approx(340 / 300) and not growing.met
    assert report.ratio == pytest.approx(1.2) and not report.met  # 12 s > 10 s
    assert status.ratio == pytest.approx(0.2) and status.met
    quadratic = scale.rows([_point(200, 100.0, 160.0), _point(1_000, 740.0, 800.0)])[0]
    assert quadratic.ratio == pytest.approx(0.34 / 0.1) and not quadratic.met


@pytest.mark.parametrize("trials", [20, 100, 1_000])
def test_the_scale_grid_is_n_distinct_one_epoch_trials(trials: int) -> None:
    grid = Grid.model_validate(scale.scale_grid(f"scale-{trials}", trials))
    specs = grid.trials()
    assert len(specs) == len({s.key for s in specs}) == trials
    assert all(s.config.epochs == 1 for s in specs)


def test_sizes_come_from_the_environment_when_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LESSDATA_SCALE_N", raising=False)
    assert scale.sizes(quick=True) == (20, 100) and scale.sizes(quick=False) == (20, 200, 1_000)
    monkeypatch.setenv("LESSDATA_SCALE_N", "20,200")
    assert scale.sizes(quick=False) == (20, 200)


def test_rss_is_read_from_proc_and_zero_for_a_process_that_is_gone() -> None:
    import os

    assert scale.rss_bytes(os.getpid()) > 10 * 2**20  # this Python, torch imported
    assert scale.rss_bytes(2**22 + 12345) == 0  # above Linux's pid_max: never a process


def test_trial_overhead_share_is_what_is_not_training_or_testing_of_the_whole() -> None:
    import trial_overhead

    m = {"trial_s": 38.0, "warmup_s": 2.0, "train_s": 34.0, "eval_s": 3.0, "select_s": 0.02}
    row = trial_overhead.share_row("fresh", m, 8)
    assert row.ratio == pytest.approx((40.0 - 37.0) / 40.0) and not row.met  # 7.5% > 2%
    assert "the rest 3.00 s" in row.detail and "warm-up 2.00 s" in row.detail
    reused = trial_overhead.share_row("reused", {**m, "warmup_s": 0.0, "trial_s": 37.5}, 8)
    assert reused.ratio == pytest.approx(0.5 / 37.5) and reused.met


def test_the_trial_overhead_grid_is_two_benchmark_trials_on_real_mnist() -> None:
    import trial_overhead

    grid = Grid.model_validate(trial_overhead.trial_grid("overhead", 8))
    specs = grid.trials()
    assert [s.experiment for s in specs] == ["Benchmark", "Benchmark"]
    assert {s.seed for s in specs} == {0, 1}
    assert all(s.config.epochs == 8 and s.config.dataset == "mnist" for s in specs)
