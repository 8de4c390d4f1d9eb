"""``lessdata schedules`` and ``lessdata train`` end to end through the entry point."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from trainers.experiments import EXPERIMENTS
from trainers.schedule import evaluations


def test_schedules_json_lists_every_experiment(tmp_path: Path) -> None:
    out = run_cli("schedules", "--epochs", "300", "--train-size", "60000", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["experiment"]: r for r in json.loads(out.stdout)}
    assert list(rows) == list(EXPERIMENTS)
    e3 = rows["E3"]
    assert e3["method"] == "data_step" and e3["params"] == {"d": 0.25, "e": 0.75}
    assert len(e3["fractions"]) == e3["fractions_listed"] == 300
    assert e3["evaluations"] == 7_875_000
    assert rows["E10"]["evaluations"] == 11_227_500  # fewer than E2, as the paper says
    assert rows["E2"]["evaluations"] == 11_250_000
    # Benchmark and E1-E9 are the paper's, E10-E20 our reading
    assert [r["source"] for r in rows.values()] == ["paper"] * 10 + ["ours"] * 11
    assert rows["E13"]["same_as"] == "E5"
    assert [name for name, r in rows.items() if r["same_as"]] == ["E13"]


def test_schedules_text_marks_our_readings(tmp_path: Path) -> None:
    out = run_cli("schedules", "--epochs", "300", "--train-size", "60000", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    by_name = {line.split()[0]: line for line in lines[:21]}
    assert " paper " in by_name["E9"] and " ours " in by_name["E10"]
    assert "11,227,500" in by_name["E10"] and "same schedule as E5" in by_name["E13"]
    legend = [line for line in lines if line.startswith("source:")]
    assert len(legend) == 1 and "ours" in legend[0] and "E10-E12" in legend[0]
    assert any("'fixed'" in line and "our reading" in line for line in lines)


def test_schedules_answer_fast_for_a_billion_epochs(tmp_path: Path) -> None:
    # Totals from runs of equal counts, fractions listed only up to a cap (and said so).
    start = time.monotonic()
    out = run_cli("schedules", "--epochs", "1000000000", "--json", cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - start < 30  # a per-epoch loop would take hours
    rows = {r["experiment"]: r for r in json.loads(out.stdout)}
    assert rows["E3"]["evaluations"] == 60_000 * 437_500_000
    assert rows["E10"]["fractions_listed"] == len(rows["E10"]["fractions"]) == 1000
    text = run_cli("schedules", "--epochs", "1000000000", cwd=tmp_path, timeout=60)
    assert "first 1,000 of 1,000,000,000 epochs" in text.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--experiment", "E99"], "unknown experiment 'E99'"),
        (["train", "--dataset", "imagenet"], "invalid choice: 'imagenet' (choose from 'mnist',"),
        (["train", "--epochs", "0"], "epochs: Input should be greater than or equal to 1"),
        (["train", "--schedule", '{"method": "data_step", "d": 1.5, "e": 0.5}'],
         "schedule.data_step.d: Input should be less than or equal to 1 (got 1.5)"),
        (["train", "--schedule", "{not json"], "invalid JSON"),
        (["train", "--selection", "best"], "invalid choice: 'best' (choose from 'fixed',"),
        (["train", "--width", "abc"], "invalid float value"),
        (["schedules", "--epochs", "0"], "--epochs must be >= 1"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_arguments_one_line_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert needle in lines[0] and "Traceback" not in out.stderr


def test_missing_mnist_is_one_clear_line(tmp_path: Path) -> None:
    out = run_cli("train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "1",
                  cwd=tmp_path)
    assert out.returncode == 3  # the environment (its files), not the input
    assert len(out.stderr.strip().splitlines()) == 1
    assert "train-images-idx3-ubyte" in out.stderr and "missing" in out.stderr


@pytest.mark.slow
def test_real_mnist_benchmark_and_e3(tmp_path: Path, mnist_root: Path) -> None:
    """A reduced model on a real-MNIST subset learns (>= 95%), E3 at the closed-form cost."""
    common = ["--dataset", "mnist", "--data-dir", str(mnist_root), "--epochs", "4",
              "--width", "0.25", "--train-subset", "10000", "--test-subset", "2000",
              "--seed", "0", "--threads", "2", "--no-emissions", "--json"]
    runs = {}
    for name in ("Benchmark", "E3"):
        out = run_cli("train", "--experiment", name, *common, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        runs[name] = json.loads(out.stdout)
    assert runs["Benchmark"]["best_top1"] >= 0.95, runs["Benchmark"]
    assert runs["Benchmark"]["evaluations"] == 4 * 10_000
    assert runs["E3"]["evaluations"] == evaluations(EXPERIMENTS["E3"], 10_000, 4)
    # E3 over 4 epochs: 3 at 25%, 1 full -> 1 - e(1 - d) = 0.4375 exactly.
    assert runs["E3"]["evaluations"] / runs["Benchmark"]["evaluations"] == 0.4375
    assert runs["E3"]["best_top1"] >= 0.85, runs["E3"]


@pytest.mark.parametrize("dataset", ["svhn", "kmnist"])
def test_train_one_epoch_on_a_new_set(tmp_path: Path, dataset: str) -> None:
    """The torchvision sets train through the entry point (tiny files in the real format)."""
    from tests.trainers.test_torchvision_sets import WRITERS

    WRITERS[dataset](tmp_path / "data")
    out = run_cli("train", "--dataset", dataset, "--data-dir", str(tmp_path / "data"),
                  "--epochs", "1", "--width", "0.125", "--batch-size", "4", "--threads", "1",
                  "--no-emissions", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["evaluations"] == {"svhn": 6, "kmnist": 12}[dataset]
    assert 0.0 <= result["best_top1"] <= 1.0
