"""Every bad input: one clear line naming the problem, non-zero exit, nothing written."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import MNIST_ROOT, free_port, run_cli

GOOD = {
    "name": "bad-input", "dataset": "digits", "epochs": 2, "seeds": 1,
    "experiments": ["Benchmark"], "model": {"width": 0.125},
    "training": {"train_subset": 100, "test_subset": 50},
}


def _grid(tmp: Path, **change: object) -> str:
    path = tmp / "grid.yaml"
    path.write_text(yaml.safe_dump({**GOOD, **change}))
    return str(path)


def _mnist_copy(tmp: Path) -> Path:
    raw = tmp / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (MNIST_ROOT / "MNIST" / "raw").iterdir():
        (raw / f.name).symlink_to(f)
    return raw


def _truncated_mnist(tmp: Path) -> list[str]:
    raw = _mnist_copy(tmp)
    labels = raw / "train-labels-idx1-ubyte"
    data = labels.read_bytes()
    labels.unlink()
    labels.write_bytes(data[:1000])
    return ["--dataset", "mnist", "--data-dir", str(tmp / "mnist")]


def _wrong_magic_mnist(tmp: Path) -> list[str]:
    raw = _mnist_copy(tmp)
    labels = raw / "t10k-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    labels.unlink()
    data[3] = 0x07
    labels.write_bytes(bytes(data))
    return ["--dataset", "mnist", "--data-dir", str(tmp / "mnist")]


def _evil_cifar(tmp: Path) -> list[str]:
    folder = tmp / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    import os

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps(os.system, protocol=2))
    return ["--dataset", "cifar10", "--data-dir", str(tmp / "cifar")]


CASES: dict[str, tuple] = {
    # name: (argv builder(tmp) -> list[str], text the error line must contain)
    "malformed yaml": (lambda t: ["submit", _raw(t, "name: x\nseeds: [1, 2\n")],
                       "malformed YAML at line"),
    "yaml not a mapping": (lambda t: ["submit", _raw(t, "- a\n- b\n")], "must be a YAML mapping"),
    "unknown key": (lambda t: ["submit", _grid(t, colour="red")], "colour"),
    "unknown nested key": (lambda t: ["submit", _grid(t, model={"depth": 3})], "model.depth"),
    "fraction above 1": (lambda t: ["submit", _grid(t, custom=[{"name": "c", "schedule": {
        "method": "data_step", "d": 1.5, "e": 0.5}}])], "less than or equal to 1"),
    "fraction zero": (lambda t: ["submit", _grid(t, custom=[{"name": "c", "schedule": {
        "method": "data_increment", "s": 0}}])], "greater than 0"),
    "unordered breakpoints": (lambda t: ["submit", _grid(t, custom=[{"name": "c", "schedule": {
        "method": "piecewise", "breakpoints": [{"at": 0.0, "fraction": 0.5},
                                               {"at": 0.0, "fraction": 1.0}]}}])],
        "strictly increasing"),
    "zero epochs": (lambda t: ["submit", _grid(t, epochs=0)], "epochs"),
    "zero seeds": (lambda t: ["submit", _grid(t, seeds=0)], "seeds"),
    "duplicate seeds": (lambda t: ["submit", _grid(t, seeds=[1, 1])], "distinct"),
    "no experiments": (lambda t: ["submit", _grid(t, experiments=[])], "at least one experiment"),
    "unknown experiment": (lambda t: ["submit", _grid(t, experiments=["E0"])],
                           "unknown experiment 'E0'"),
    "unknown dataset": (lambda t: ["submit", _grid(t, dataset="imagenet")], "dataset"),
    "unknown selection": (lambda t: ["submit", _grid(t, selection="smart")], "selection"),
    "zero batch size": (lambda t: ["submit", _grid(t, batch_size=0)], "batch_size"),
    "fractional gpus above one": (lambda t: ["submit", _grid(t, resources={"gpu": 1.5})],
                                  "whole number"),
    "missing grid file": (lambda t: ["submit", str(t / "nope.yaml")], "no grid"),
    "cli seeds zero": (lambda t: ["submit", _grid(t), "--seeds", "0"], "--seeds must be >= 1"),
    "cli epochs negative": (lambda t: ["submit", _grid(t), "--epochs", "-1"],
                            "--epochs must be >= 1"),
    "missing mnist": (lambda t: ["submit", _grid(t, dataset="mnist", data_dir=str(t))],
                      "missing"),
    "truncated mnist": (lambda t: ["train", "--epochs", "1", *_truncated_mnist(t)], "truncated"),
    "wrong magic mnist": (lambda t: ["train", "--epochs", "1", *_wrong_magic_mnist(t)], "magic"),
    "forbidden pickle global": (lambda t: ["train", "--epochs", "1", *_evil_cifar(t)],
                                "cifar"),
    "unreachable tracking server": (lambda t: ["submit", _grid(t), "--tracking-uri",
                                               f"http://127.0.0.1:{free_port()}"], "unreachable"),
    "resume unknown grid": (lambda t: ["resume", "never-submitted", "--storage", str(t / "s")],
                            "no grid named 'never-submitted'"),
    "report unknown store": (lambda t: ["report", "nope", "--tracking-uri",
                                       f"sqlite:///{t}/r.db"], "no MLflow store"),
    "status unknown store": (lambda t: ["status", "nope", "--tracking-uri",
                                        f"sqlite:///{t}/r.db"], "no MLflow store"),
    "train bad width": (lambda t: ["train", "--width", "0"], "width"),
    "train bad schedule json": (lambda t: ["train", "--schedule", '{"method": "warp"}'], "method"),
}


def _raw(tmp: Path, text: str) -> str:
    path = tmp / "raw.yaml"
    path.write_text(text)
    return str(path)


def test_at_least_twenty_kinds() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(tmp_path: Path, case: str) -> None:
    build, needle = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    argv = build(tmp_path)
    out = run_cli(*argv, cwd=work, timeout=120)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr[-2000:]
    assert "error" in lines[0] and needle.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""
    # Nothing started or written: no store, no checkpoints, no Tune state in the work dir.
    assert list(work.iterdir()) == [], list(work.rglob("*"))
    shutil.rmtree(tmp_path, ignore_errors=True)
