"""The report's figures on synthetic tables: files, contents, labels that never overlap."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from orchestrator.aggregate import TRIAL_COLUMNS, experiment_table
from orchestrator.figures import (
    EPOCH_COLUMNS,
    accuracy_figure,
    epochs_figure,
    schedules_figure,
    write_figures,
)
from trainers.experiments import EXPERIMENTS
from trainers.schedule import evaluations, fractions

EPOCHS, TRAIN_SIZE = 4, 1000
NAMES = ["Benchmark", *(f"E{i}" for i in range(1, 21))]  # at 4 epochs many share evaluations


def _tables(names: list[str] = NAMES, seeds: int = 3, top: float = 0.95
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials of ``names`` (accuracy rising with evaluations, seeded noise) and their epochs."""
    rng = np.random.default_rng(0)
    rows, epoch_rows = [], []
    for name in names:
        schedule = EXPERIMENTS[name]
        share = evaluations(schedule, TRAIN_SIZE, EPOCHS) / (TRAIN_SIZE * EPOCHS)
        for seed in range(seeds):
            top1 = min(1.0, top - 0.05 * (1 - share) + rng.normal(0, 0.004))
            row: dict[str, Any] = dict.fromkeys(TRIAL_COLUMNS, math.nan)
            row.update(experiment=name, method=schedule.method,
                       schedule=schedule.model_dump_json(), seed=seed, dataset="digits",
                       epochs=EPOCHS, train_size=TRAIN_SIZE, best_top1=top1, final_top1=top1,
                       evaluations=share * TRAIN_SIZE * EPOCHS, scoring_evaluations=0.0,
                       train_s=share, trial_s=share, energy_kwh=share * 1e-3,
                       emissions_kg=share * 1e-4, emissions_estimate_kg=share * 1e-4)
            rows.append(row)
            for epoch, fraction in enumerate(fractions(schedule, EPOCHS), 1):
                epoch_rows.append({"experiment": name, "seed": seed, "epoch": epoch,
                                   "test_top1": top1 - 0.2 * 0.5 ** epoch * (2 - fraction)})
    return (experiment_table(pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))),
            pd.DataFrame(epoch_rows, columns=list(EPOCH_COLUMNS)))


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _tables()


def _accuracy(table: pd.DataFrame) -> Figure:
    return accuracy_figure(table, "evaluations_pct", "evaluations (% of Benchmark)")


def _errorbars(fig: Figure) -> ErrorbarContainer:
    (bars,) = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    return bars


def test_write_figures_writes_png_and_pdf_of_each(tables: tuple[pd.DataFrame, pd.DataFrame],
                                                 tmp_path: Path) -> None:
    table, epochs = tables
    paths = write_figures(table, tmp_path, epochs)
    stems = {"accuracy_vs_evaluations", "accuracy_vs_energy", "schedules", "accuracy_per_epoch"}
    assert {p.name for p in paths} == {f"{s}.{f}" for s in stems for f in ("png", "pdf")}
    for path in paths:
        magic = b"\x89PNG\r\n\x1a\n" if path.suffix == ".png" else b"%PDF-"
        assert path.read_bytes().startswith(magic), path
    without = write_figures(table, tmp_path / "no-epochs")
    assert {p.stem for p in without} == stems - {"accuracy_per_epoch"}


def test_labels_never_overlap_each_other_nor_leave_the_axes(
        tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    fig = _accuracy(tables[0])
    fig.draw_without_rendering()  # the final positions, as saved
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    labels = [t for t in ax.texts if t.get_text() in NAMES]
    assert sorted(t.get_text() for t in labels) == sorted(NAMES)
    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text, not the leader
    frame = ax.get_window_extent(renderer)
    for i, a in enumerate(boxes):
        assert frame.contains(a.x0, a.y0) and frame.contains(a.x1, a.y1), labels[i].get_text()
        for j in range(i):
            assert not a.overlaps(boxes[j]), (labels[i].get_text(), labels[j].get_text())
    markers = ax.transData.transform(_errorbars(fig).lines[0].get_xydata())
    half = 5.5 * fig.dpi / 72  # the Pareto front's 11 pt squares, the largest markers
    squares = [Bbox.from_extents(px - half, py - half, px + half, py + half)
               for px, py in markers]
    for box, label in zip(boxes, labels, strict=True):  # no label on any marker
        assert not any(box.overlaps(square) for square in squares), label.get_text()


def test_points_of_equal_evaluations_are_spread_apart(
        tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    table = tables[0]
    assert table["evaluations_pct"].duplicated().any()  # E5 and E13, among others
    fig = _accuracy(table)
    x = _errorbars(fig).lines[0].get_xdata()
    assert len(set(np.round(np.asarray(x, float), 9))) == len(table)
    assert np.max(np.abs(np.asarray(x, float) - table["evaluations_pct"].to_numpy())) < 2.0
    assert "spread apart" in fig.axes[0].get_xlabel()
    distinct = _tables(["Benchmark", "E1", "E3"])[0]
    assert "spread apart" not in _accuracy(distinct).axes[0].get_xlabel()


def test_error_bars_are_the_95ci_clipped_to_100_percent() -> None:
    table = _tables(["Benchmark", "E1", "E3", "E7"], top=1.002)[0]  # near perfect accuracy
    assert (table["ci95_high"] == 100.0).any()
    fig = _accuracy(table)
    segments = np.concatenate([s for c in _errorbars(fig).lines[2] for s in c.get_segments()])
    assert segments[:, 1].max() <= 100.0 and segments[:, 1].min() >= 0.0
    tops = sorted(segments[:, 1].reshape(-1, 2).max(axis=1))
    assert tops == pytest.approx(sorted(table["ci95_high"]))
    assert fig.axes[0].get_ylim()[1] <= 100.5


def test_titles_name_dataset_epochs_and_seeds(tables: tuple[pd.DataFrame, pd.DataFrame]
                                              ) -> None:
    table, epochs = tables
    for title in (_accuracy(table).axes[0].get_title(),
                  epochs_figure(epochs, table).get_suptitle()):
        assert "digits" in title and f"{EPOCHS} epochs" in title and "n = 3 seeds" in title
    assert "digits, 4 epochs" in schedules_figure(table).get_suptitle()
    mixed = _tables(["Benchmark", "E1"], seeds=2)[0]
    mixed.loc[1, "n"] = 3
    assert "n = 2-3 seeds" in _accuracy(mixed).axes[0].get_title()


def test_energy_is_in_watt_hours(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    table = tables[0][:3]
    fig = accuracy_figure(table, "energy_kwh_mean", "energy (Wh, mean over seeds)", scale=1000)
    x = np.asarray(_errorbars(fig).lines[0].get_xdata(), float)
    assert sorted(x) == pytest.approx(sorted(1000 * table["energy_kwh_mean"]))
    assert "Wh" in fig.axes[0].get_xlabel()


def test_pareto_front_joins_the_non_dominated(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    table = _tables(["Benchmark", "E1", "E3", "E9"])[0]
    fig = _accuracy(table)
    (front,) = [line for line in fig.axes[0].lines if line.get_label() == "Pareto front"]
    assert 100.0 in front.get_xdata() and min(table["evaluations_pct"]) in front.get_xdata()


def test_accuracy_per_epoch_bands_one_panel_per_experiment(
        tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    table, epochs = tables
    fig = epochs_figure(epochs, table)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [f"{n} (n = 3)" for n in NAMES[1:]]
    e3 = panels[2]
    (band, bench_band) = e3.collections[1], e3.collections[0]  # Benchmark drawn first
    mean = 100 * epochs[epochs["experiment"] == "E3"].groupby("epoch")["test_top1"].mean()
    (line,) = [li for li in e3.lines if li.get_label() == "E3"]
    assert list(line.get_ydata()) == pytest.approx(list(mean))
    assert band.get_paths() and bench_band.get_paths()
    with pytest.raises(ValueError, match="test_top1"):
        epochs_figure(epochs.drop(columns="test_top1"), table)


def test_schedules_are_small_multiples(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    fig = schedules_figure(tables[0])
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(NAMES)
    assert panels[3].get_title() == "E3: d=25% e=75%"
    assert all(len(ax.lines) == 1 for ax in panels)  # one schedule per panel, none hidden
    assert list(panels[3].lines[0].get_ydata()) == [25.0, 25.0, 25.0, 100.0]


def test_empty_tables_still_give_figures(tmp_path: Path) -> None:
    empty = experiment_table(pd.DataFrame(columns=list(TRIAL_COLUMNS)))
    paths = write_figures(empty, tmp_path, pd.DataFrame(columns=list(EPOCH_COLUMNS)))
    assert all(p.stat().st_size > 0 for p in paths)


def test_spreading_moves_only_equal_points_and_keeps_their_centre() -> None:
    from orchestrator.figures import _spread_equal

    x = np.array([50.0, 100.0, 50.0, 75.0, 50.0])
    shifted, moved = _spread_equal(x)
    assert moved and shifted[1] == 100.0 and shifted[3] == 75.0
    assert len(set(shifted[[0, 2, 4]])) == 3 and np.mean(shifted[[0, 2, 4]]) == pytest.approx(50)
    assert _spread_equal(np.array([1.0, 2.0]))[1] is False
    same, moved = _spread_equal(np.array([0.002, 0.002]))  # all equal: steps of its size
    assert moved and 0 < np.ptp(same) < 0.001
