"""Docs that cannot go stale: docs/reliability.md's bad-input table is the real output, and
the README's "Using it" commands run as written (on the embedded data set, locally)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import MNIST_ROOT, REPO, run_cli
from tests.docs_tables import _VOLATILE, bad_input_table, documented_table

README = REPO / "README.md"


def _machine_independent(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def test_reliability_table_is_the_real_output() -> None:
    """`make docs` rewrites it; this fails when the program's lines have moved on."""
    assert _machine_independent(documented_table()) == bad_input_table(), (
        "docs/reliability.md's bad-input table differs from the real output: run `make docs`")


def readme_commands() -> list[tuple[list[str], str]]:
    """The ``lessdata`` commands of README's "Using it" block, with their trailing comment."""
    text = README.read_text()
    section = text.split("## Using it", 1)[1].split("```", 2)[1]
    commands = []
    for line in section.replace("\\\n", " ").splitlines():
        command, _, comment = line.partition("#")
        argv = shlex.split(command)
        if argv and argv[0] == ".venv/bin/lessdata":
            commands.append((argv[1:], comment.strip()))
    return commands


def test_readme_lists_the_commands_a_researcher_needs() -> None:
    verbs = [argv[0] for argv, _ in readme_commands()]
    for verb in ("schedules", "train", "submit", "list", "status", "report", "resume"):
        assert verb in verbs, verbs


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    """Every command in order, in a fresh folder (so a local store): each exits 0, or
    the code and the line its comment documents ("exit 3: ...")."""
    for argv, comment in readme_commands():
        argv = [str(MNIST_ROOT) if a == "DIR" else a for a in argv]
        out = run_cli(*argv, cwd=tmp_path, timeout=900)
        documented = re.search(r"exit (\d+): (.+)$", comment)
        if documented:
            code, line = int(documented.group(1)), documented.group(2).strip()
            assert out.returncode == code, (argv, out.returncode, out.stderr[-2000:])
            assert line in out.stderr, (argv, line, out.stderr[-2000:])
            assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        else:
            assert out.returncode == 0, (argv, out.stdout[-2000:], out.stderr[-2000:])
        if argv[0] == "submit" and "--dry-run" not in argv and not documented:
            # The name the program prints is the one the README's later commands use.
            named = re.search(r"^grid (\S+): ", out.stdout, re.M)
            later = {a[1] for a, _ in readme_commands() if a[0] in ("status", "report", "resume")}
            assert named and later == {named.group(1)}, (out.stdout[-2000:], later)
        if argv[0] == "list":
            assert "done=6 failed=0 total=6" in out.stdout, out.stdout


def test_results_mnist_commands_carry_no_machine_paths() -> None:
    for name in ("results-mnist.md", "results-mnist.yaml"):
        text = (REPO / "docs" / name).read_text()
        assert "/work/" not in text and "/home/" not in text, name
