"""Every bad input: one clear line naming the problem, its exit code (2 input, 3
environment), nothing written. docs/reliability.md's table is made from these cases
(``make docs``; tests/test_docs.py checks it)."""

from __future__ import annotations

import functools
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import MNIST_ROOT, free_port, run_cli
from trainers.experiments import EXPERIMENTS

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


Build = Callable[[Path], list[str]]

CASES: dict[str, tuple[Build, str]] = {
    # name: (argv builder(tmp) -> list[str], text that only this refusal prints: not in the
    # command line, not in any other case's error line; test_each_kind_... checks both)
    "malformed yaml": (lambda t: ["submit", _raw(t, "name: x\nseeds: [1, 2\n")],
                       "malformed YAML at line 3"),
    "yaml not a mapping": (lambda t: ["submit", _raw(t, "- a\n- b\n")],
                           "must be a YAML mapping, got list"),
    "yaml alias bomb": (lambda t: ["submit", _raw(t, "a: &a [x, x]\nb: &b [*a, *a]\n"
                                                 "description: *b\n")],
                        "YAML aliases (*a) are not allowed in grid files (line 2)"),
    "yaml duplicate key": (lambda t: ["submit", _raw(t, "name: x\nepochs: 2\nepochs: 3\n")],
                           "duplicate key 'epochs' at line 3"),
    "yaml nested too deep": (lambda t: ["submit", _raw(t, "x: " + "[" * 40 + "]" * 40)],
                             "nested deeper than 32 levels"),
    "unknown key": (lambda t: ["submit", _grid(t, colour="red")],
                    "colour: Extra inputs are not permitted"),
    "unknown nested key": (lambda t: ["submit", _grid(t, model={"depth": 3})],
                           "model.depth: Extra inputs are not permitted"),
    "fraction above 1": (lambda t: ["submit", _grid(t, custom=[{"name": "c", "schedule": {
        "method": "data_step", "d": 1.5, "e": 0.5}}])],
        "data_step.d: Input should be less than or equal to 1"),
    "fraction zero": (lambda t: ["submit", _grid(t, custom=[{"name": "c", "schedule": {
        "method": "data_increment", "s": 0}}])],
        "data_increment.s: Input should be greater than 0"),
    "unordered breakpoints": (lambda t: ["submit", _grid(t, custom=[{"name": "c", "schedule": {
        "method": "piecewise", "breakpoints": [{"at": 0.0, "fraction": 0.5},
                                               {"at": 0.0, "fraction": 1.0}]}}])],
        "breakpoints must be strictly increasing"),
    "zero epochs": (lambda t: ["submit", _grid(t, epochs=0)],
                    "yaml: epochs: Input should be greater than or equal to 1"),
    "zero seeds": (lambda t: ["submit", _grid(t, seeds=0)],
                   "seeds: Input should be greater than or equal to 1"),
    "duplicate seeds": (lambda t: ["submit", _grid(t, seeds=[1, 1])], "seeds must be distinct"),
    "no experiments": (lambda t: ["submit", _grid(t, experiments=[])], "at least one experiment"),
    "unknown experiment": (lambda t: ["submit", _grid(t, experiments=["E0"])],
                           "unknown experiment 'E0'; expected one of: Benchmark, E1"),
    "unknown dataset": (lambda t: ["submit", _grid(t, dataset="imagenet")],
                        "Input should be 'mnist', 'cifar10', 'smallnorb', 'digits', "
                        "'fashionmnist', 'kmnist', 'cifar100' or 'svhn' (got 'imagenet')"),
    "unknown selection": (lambda t: ["submit", _grid(t, selection="smart")],
                          "Input should be 'fixed', 'per_epoch', 'stratified'"),
    "zero batch size": (lambda t: ["submit", _grid(t, batch_size=0)],
                        "batch_size: Input should be greater than or equal to 1"),
    "fractional gpus above one": (lambda t: ["submit", _grid(t, resources={"gpu": 1.5})],
                                  "more than one GPU must be a whole number"),
    "missing grid file": (lambda t: ["submit", str(t / "nope.yaml")],
                          "not a file and not a shipped grid"),
    "cli seeds zero": (lambda t: ["submit", _grid(t), "--seeds", "0"],
                       "--seeds must be >= 1, got 0"),
    "cli epochs negative": (lambda t: ["submit", _grid(t), "--epochs", "-1"],
                            "--epochs must be >= 1, got -1"),
    "missing mnist": (lambda t: ["submit", _grid(t, dataset="mnist", data_dir=str(t))],
                      "train-images-idx3-ubyte: missing"),
    "truncated mnist": (lambda t: ["train", "--epochs", "1", *_truncated_mnist(t)],
                        "truncated: expected 60008 bytes"),
    "wrong magic mnist": (lambda t: ["train", "--epochs", "1", *_wrong_magic_mnist(t)],
                          "not an IDX file: magic 0x00000807"),
    # The restricted unpickler's own refusal (the folder's name is in every line of this case).
    "forbidden pickle global": (lambda t: ["train", "--epochs", "1", *_evil_cifar(t)],
                                "forbidden global posix.system"),
    "unreachable tracking server": (lambda t: ["submit", _grid(t), "--tracking-uri",
                                               f"http://127.0.0.1:{free_port()}"],
                                    "is unreachable"),
    "resume unknown grid": (lambda t: ["resume", "never-submitted", "--storage", str(t / "s")],
                            "no grid named 'never-submitted' was submitted"),
    "report unknown store": (lambda t: ["report", "nope", "--tracking-uri",
                                       f"sqlite:///{t}/r.db"], "report: error: no MLflow store"),
    "status unknown store": (lambda t: ["status", "nope", "--tracking-uri",
                                        f"sqlite:///{t}/r.db"], "status: error: no MLflow store"),
    "train bad width": (lambda t: ["train", "--width", "0"],
                        "model.width: Input should be greater than 0"),
    "train bad schedule json": (lambda t: ["train", "--schedule", '{"method": "warp"}'],
                                "does not match any of the expected tags"),
    "unknown device": (lambda t: ["train", "--device", "gpu"],
                       "invalid choice: 'gpu' (choose from auto, cpu, cuda, cuda:N)"),
    "absent gpu": (lambda t: ["train", "--device", "cuda:99", "--epochs", "1"],
                   "use --device cpu or auto"),
    "grid cuda without gpus": (lambda t: ["submit", _grid(t, placement={"device": "cuda"})],
                               "needs resources.gpu > 0"),
    "set unknown key": (lambda t: ["submit", _grid(t), "--set", "training.lrr=1"],
                        "with --set: training.lrr: Extra inputs are not permitted"),
    "set not key=value": (lambda t: ["submit", _grid(t), "--set", "epochs"],
                          "expected KEY=VALUE with a dotted key"),
    "only unknown experiment": (lambda t: ["submit", _grid(t), "--only", "E3"],
                                "--only: no experiment 'E3' in grid bad-input"),
    # Caps that --allow-large lifts (orchestrator.limits; tests/orchestrator/test_limits.py
    # also measures their time and memory).
    "a billion epochs": (lambda t: ["submit", _grid(t, epochs=10**9, experiments=[
        "Benchmark", "E1"], baselines=["uniform", "short"]), "--dry-run"],
        "1,000,000,000 epochs (Benchmark) is over the cap of 10,000"),
    "100,000 seeds": (lambda t: ["submit", _grid(t, seeds=list(range(100_000)))],
                      "100,000 seeds is over the cap of 1,000"),
    "61,000 trials": (lambda t: ["submit", _grid(t, seeds=1000, experiments=list(EXPERIMENTS),
                                                 baselines=["uniform", "short"])],
                      "61,000 trials (61 experiments x 1,000 seeds) is over the cap of 2,000"),
}

# The environment was wrong, not the input: exit code 3 (orchestrator.exits); the rest 2.
ENVIRONMENT = {"missing mnist", "truncated mnist", "wrong magic mnist", "forbidden pickle global",
               "unreachable tracking server", "report unknown store", "status unknown store",
               "absent gpu"}


def expected_exit(case: str) -> int:
    return 3 if case in ENVIRONMENT else 2


def _raw(tmp: Path, text: str) -> str:
    path = tmp / "raw.yaml"
    path.write_text(text)
    return str(path)


@dataclass(frozen=True)
class Refusal:
    """What one bad command did: exit code, output, and what it left in its work folder."""

    argv: list[str]  # the temp folder written as <tmp>
    returncode: int
    stdout: str
    stderr: str
    written: list[str]

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@functools.cache
def refusal(case: str) -> Refusal:
    """Run ``case`` once per session through the real entry point, in its own temp folder
    (written as <tmp> in what is returned, so cases compare)."""
    build, _ = CASES[case]
    with tempfile.TemporaryDirectory(prefix="lessdata-bad-input-") as name:
        tmp = Path(name)
        work = tmp / "work"
        work.mkdir()
        argv = build(tmp)
        out = run_cli(*argv, cwd=work, timeout=120)
        written = sorted(str(p.relative_to(work)) for p in work.rglob("*"))

        def clean(text: str) -> str:
            return text.replace(str(tmp), "<tmp>")

        return Refusal([clean(a) for a in argv], out.returncode, clean(out.stdout),
                       clean(out.stderr), written)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case: str) -> None:
    needle = CASES[case][1]
    out = refusal(case)
    assert out.returncode == expected_exit(case), (out.returncode, out.stderr[-2000:])
    assert len(out.lines) == 1, out.stderr[-2000:]
    assert "error" in out.lines[0] and needle in out.lines[0], out.lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""
    # Nothing started or written: no store, no checkpoints, no Tune state in the work dir.
    assert out.written == []


def test_each_kind_is_refused_for_its_own_reason() -> None:
    """At least twenty kinds of bad input, each refused with its own line: every line
    differs, and each case's needle is in its line only and not in what the user typed
    (so it cannot pass by echoing a path or an argument)."""
    lines = {case: refusal(case).lines[-1] for case in CASES}
    assert len(set(lines.values())) == len(CASES) >= 20, lines
    for case, (_, needle) in CASES.items():
        assert needle in lines[case], (case, lines[case])
        assert needle not in " ".join(refusal(case).argv), (case, needle)
        others = [other for other, line in lines.items() if other != case and needle in line]
        assert others == [], (case, needle, others)
