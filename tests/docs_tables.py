"""docs/reliability.md's bad-input table, made from the real output of every case of
tests/test_bad_input.py. ``make docs`` rewrites it; tests/test_docs.py fails when the file
differs from what the program prints now.

    python -m tests.docs_tables          # rewrite the table in docs/reliability.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.test_bad_input import CASES, refusal

__all__ = ["BEGIN", "END", "RELIABILITY", "bad_input_table", "documented_table", "rewrite"]

RELIABILITY = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
BEGIN = "<!-- bad-input table: made by `make docs` from tests/test_bad_input.py -->"
END = "<!-- end of bad-input table -->"
# Only what changes from run to run or machine to machine: the temporary folder, a free
# port, the GPUs of the machine (the table shows a machine without one).
_VOLATILE = [(re.compile(r"<tmp>"), "TMP"), (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
             (re.compile(r"this machine has \d+ GPU\(s\) \(cuda:0 \.\. cuda:\d+\)"),
              "this machine has no GPU")]


def _stable(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text.replace("|", "\\|")


def bad_input_table() -> str:
    """The markdown table: input, command, exit code, the line the user sees."""
    rows = ["| input | command | exit | what the user sees |", "|---|---|---|---|"]
    for case in CASES:
        out = refusal(case)
        command = " ".join(out.argv)
        line = out.lines[-1] if out.lines else "(nothing)"
        rows.append(f"| {case} | `{_stable(command)}` | {out.returncode} | `{_stable(line)}` |")
    return "\n".join(rows)


def documented_table(path: Path = RELIABILITY) -> str:
    """The table as the file holds it now (between the markers)."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: the markers {BEGIN!r} and {END!r} are missing")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def rewrite(path: Path = RELIABILITY) -> bool:
    """Write the table made now into ``path``; whether it changed."""
    old = documented_table(path)
    new = bad_input_table()
    if old == new:
        return False
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{BEGIN}\n{new}\n{END}{tail}")
    return True


if __name__ == "__main__":
    changed = rewrite()
    print(f"{RELIABILITY}: {'rewritten' if changed else 'already up to date'}")
    sys.exit(0)
