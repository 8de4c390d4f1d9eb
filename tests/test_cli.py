"""The CLI explains itself: help on every option, --version, bare usage, dry runs and
overrides (through the real entry point)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestrator.cli import build_parser
from orchestrator.plan import Plan, PlanOptions, resolve_plan
from tests.conftest import free_port, run_cli

COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def _options(help_text: str) -> dict[str, str]:
    """Option -> its help text, from an argparse ``--help`` page."""
    found: dict[str, str] = {}
    current = None
    section = ""
    for line in help_text.splitlines():
        if line and not line.startswith(" "):
            section = line
            current = None
            continue
        if "options:" not in section and "positional" not in section:
            continue
        match = re.match(r"^  (\S.*?)(?:\s{2,}(\S.*))?$", line)
        if match:
            current = match.group(1).split(",")[-1].split()[0]
            found[current] = match.group(2) or ""
        elif current and line.strip():
            found[current] += " " + line.strip()
    return found


def test_the_commands_are_the_documented_ones() -> None:
    assert COMMANDS == ["demo", "download", "list", "report", "resume", "schedules", "status",
                        "submit", "train"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_text(tmp_path: Path, command: str) -> None:
    out = run_cli(command, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    options = _options(out.stdout)
    assert "--help" in options and len(options) >= 2, out.stdout
    missing = [name for name, text in options.items() if not text.strip()]
    assert missing == [], (command, missing, out.stdout)
    assert "exit codes: 0 done; 1 trials failed; 2 wrong input" in out.stdout


def test_help_shows_defaults_and_choices(tmp_path: Path) -> None:
    out = run_cli("train", "--help", cwd=tmp_path)
    text = " ".join(out.stdout.split())
    assert "epochs E (default: 300)" in text
    assert "{mnist,cifar10,smallnorb,digits,fashionmnist,kmnist,cifar100,svhn}" in text
    assert "{fixed,per_epoch,stratified,loss_soft,hardest,easiest,forgetting}" in text
    assert "auto, cpu, cuda, cuda:N" in text and "{fp32,tf32,bf16}" in text


def test_top_level_help_says_what_it_is_with_examples(tmp_path: Path) -> None:
    out = run_cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    assert out.stdout.splitlines()[2].startswith("lessdata trains image classifiers")
    examples = [line for line in out.stdout.splitlines() if line.startswith("  lessdata ")]
    assert len(examples) == 3, out.stdout


def test_version(tmp_path: Path) -> None:
    out = run_cli("--version", cwd=tmp_path)
    assert out.returncode == 0 and re.fullmatch(r"lessdata \d+\.\d+\.\d+\n", out.stdout)


def test_bare_lessdata_prints_usage_and_commands_exit_2(tmp_path: Path) -> None:
    out = run_cli(cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("usage: lessdata")
    assert all(f"    {command}" in out.stderr for command in COMMANDS), out.stderr


def test_dry_run_json_starts_nothing_and_writes_nothing(tmp_path: Path) -> None:
    out = run_cli("submit", "demo", "--dry-run", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    preview = json.loads(out.stdout)
    assert preview["trials"] == 24 and len(preview["experiments"]) == 12
    assert preview["total_evaluations"] == 2 * sum(preview["experiments"].values())
    assert preview["throughput"]["train_images_per_s"] > 0 and preview["trial_hours"] > 0
    assert "measured here" in preview["throughput"]["how"]
    assert list(tmp_path.iterdir()) == []  # no store, no storage, no Ray session folder here


def test_dry_run_text_names_the_identical_schedules(tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("name: twins\ndataset: digits\nepochs: 4\nexperiments: [Benchmark, E5, E13]"
                    "\nmodel: {width: 0.125}\n")
    out = run_cli("submit", str(grid), "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "identical schedules" in out.stdout and "E13" in out.stdout, out.stdout
    assert "trial-hours" in out.stdout and "resources per trial: cpu=1 gpu=0" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.yaml"]


def test_set_and_only_change_the_plan_and_are_stored_in_it(tmp_path: Path) -> None:
    plan = resolve_plan(PlanOptions(
        grid="demo", sets=("training.lr=0.0005", "model.width=0.5"), only=("E1", "e3"),
        storage=tmp_path))
    assert sorted({t.experiment for t in plan.trials}) == ["Benchmark", "E1", "E3"]
    assert {t.config.lr for t in plan.trials} == {0.0005}
    assert {t.config.model.width for t in plan.trials} == {0.5}
    stored = Plan.model_validate_json(plan.model_dump_json())  # what resume reads
    assert stored.sets == ["training.lr=0.0005", "model.width=0.5"]
    assert stored.only == ["E1", "E3"] or stored.only == ["E1", "e3"]
    assert stored.trials == plan.trials
    no_benchmark = resolve_plan(PlanOptions(grid="demo", only=("E1",), benchmark=False,
                                            storage=tmp_path))
    assert {t.experiment for t in no_benchmark.trials} == {"E1"}


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--set", "model.depth=3"], "with --set: model.depth: Extra inputs are not permitted"),
        (["--set", "training.lr=-1"], "training.lr: Input should be greater than 0"),
        (["--set", "nokey"], "expected KEY=VALUE"),
        (["--only", "E1,E42"], "--only: no experiment 'E42' in grid demo"),
        (["--only", ","], "name at least one experiment"),
        (["--only", "Benchmark", "--no-benchmark"], "choose one"),
    ],
)
def test_bad_overrides_are_one_line_exit_2(tmp_path: Path, flags: list[str],
                                           needle: str) -> None:
    out = run_cli("submit", "demo", "--dry-run", *flags, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert list(tmp_path.iterdir()) == []


def test_download_offline_is_one_line_exit_3(tmp_path: Path) -> None:
    # A proxy nobody listens on: no network, the same on every machine.
    dead = f"http://127.0.0.1:{free_port()}"
    out = run_cli("download", "mnist", "--data-dir", str(tmp_path / "data"), cwd=tmp_path,
                  env={"http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead,
                       "HTTPS_PROXY": dead, "no_proxy": "", "NO_PROXY": ""}, timeout=300)
    assert out.returncode == 3, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot download mnist" in lines[0] and "no network?" in lines[0]


def test_download_of_files_already_there_fetches_nothing(tmp_path: Path,
                                                         mnist_root: Path) -> None:
    out = run_cli("download", "mnist", "--data-dir", str(mnist_root), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == f"mnist: ready in {mnist_root} (pass --data-dir {mnist_root})\n"


def test_missing_data_names_the_download_command(tmp_path: Path) -> None:
    out = run_cli("train", "--dataset", "kmnist", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 3
    assert out.stderr.strip().endswith(
        f"fetch it with: lessdata download kmnist --data-dir {tmp_path}"), out.stderr
