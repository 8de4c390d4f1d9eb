"""The dry run's GPU-hours: evaluations over a GPU's images/s, alone and 4 packed per GPU,
its basis said; the paper's grid on MNIST; a bad images/s is a usage error."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.gpu_estimate import PACKED, PACKED_SPEEDUP, estimate_gpu_hours
from orchestrator.plan import PlanOptions, resolve_plan
from orchestrator.preview import preview, render
from tests.conftest import run_cli


def test_hours_are_evaluations_over_images_per_s_and_packing_divides_by_its_speedup() -> None:
    est = estimate_gpu_hours(36_000_000, 9_000_000, 10_000.0, "given")
    assert est.gpu_hours == pytest.approx(1.0)
    assert est.packed == PACKED == 4
    assert est.packed_gpu_hours == pytest.approx(1.0 / PACKED_SPEEDUP)
    assert est.test_share == pytest.approx(0.25)
    assert estimate_gpu_hours(36_000_000, 0, 10_000.0, "x", packed_speedup=4).packed_gpu_hours \
        == pytest.approx(0.25)  # perfect packing: a quarter


@pytest.mark.parametrize(("images_per_s", "speedup"), [(0.0, 2.5), (-5.0, 2.5), (1e4, 0.5),
                                                       (1e4, 4.5)])
def test_a_rate_or_speedup_out_of_range_is_refused(images_per_s: float, speedup: float) -> None:
    with pytest.raises(ValueError, match="images_per_s|packed_speedup"):
        estimate_gpu_hours(1, 1, images_per_s, "x", packed_speedup=speedup)


def test_the_paper_grid_on_mnist_says_trials_evaluations_and_gpu_hours(tmp_path: Path) -> None:
    plan = resolve_plan(PlanOptions(grid="paper", dataset="mnist", storage=tmp_path))
    result = preview(plan, measure=False, images_per_s=20_000.0)
    assert result.dataset == "mnist" and result.trials == len(plan.trials) >= 100
    assert result.total_evaluations > 300 * 60_000 * 5  # far more than one benchmark's
    assert result.gpu is not None
    assert result.gpu.gpu_hours == pytest.approx(result.total_evaluations / 20_000 / 3600)
    assert result.gpu.packed_gpu_hours < result.gpu.gpu_hours
    text = "\n".join(render(result))
    assert f"{result.trials} trials" in text
    assert f"{result.gpu.gpu_hours:,.1f} GPU-hours on one GPU" in text
    assert "20,000 training images/s (given: --images-per-s)" in text
    assert "4 trials packed per GPU" in text and "not yet measured" in text
    assert result.as_dict()["gpu"]["images_per_s"] == 20_000.0  # in --json too


def test_without_a_gpu_figure_the_dry_run_says_how_to_give_one(tmp_path: Path) -> None:
    plan = resolve_plan(PlanOptions(grid="paper", dataset="mnist", storage=tmp_path))
    result = preview(plan, measure=False)
    assert result.gpu is None
    assert any("--images-per-s" in line for line in render(result))


def test_a_non_positive_images_per_s_is_a_usage_error(tmp_path: Path) -> None:
    out = run_cli("submit", "paper", "--dry-run", "--images-per-s", "0", cwd=tmp_path)
    assert out.returncode == 2
    assert "--images-per-s: must be a positive number, got 0" in out.stderr
