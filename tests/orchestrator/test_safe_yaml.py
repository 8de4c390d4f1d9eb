"""Hostile grid files: each refused in one short line, fast, in little memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.safe_yaml import MAX_BYTES, MAX_DEPTH, clip, load_yaml, read_yaml_file
from trainers.errors import ConfigError

BOMB = textwrap.dedent("""\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    description: *i
    """)

HOSTILE = {
    "alias bomb": (BOMB, "YAML aliases (*a) are not allowed"),
    "one alias": ("seeds: &s 3\nepochs: *s\n", "YAML aliases (*s) are not allowed"),
    "deep nesting": ("x: " + "[" * 5000 + "]" * 5000, "nested"),
    "duplicate key": ("name: a\nepochs: 3\nepochs: 5\n", "duplicate key 'epochs' at line 3"),
    "too many values": ("x: [" + ",".join(["7"] * 250_000) + "]",
                        "more than 200,000 values"),
    "malformed": ("name: [1,\n", "malformed YAML at line 2"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_document_is_one_short_line(name: str) -> None:
    text, needle = HOSTILE[name]
    with pytest.raises(ConfigError) as info:
        load_yaml(text, "g.yaml")
    message = str(info.value)
    assert needle in message
    assert message.startswith("g.yaml: ") and "\n" not in message and len(message) < 400


def test_depth_at_the_limit_is_fine_past_it_refused() -> None:
    ok = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # the mapping is level 1
    assert load_yaml(ok) is not None
    too_deep = "x: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH
    with pytest.raises(ConfigError, match=f"nested deeper than {MAX_DEPTH} levels"):
        load_yaml(too_deep)


def test_plain_grid_loads_and_distinct_keys_in_nested_maps_are_fine() -> None:
    doc = load_yaml("name: a\ntraining: {lr: 0.01}\nmodel: {lr: 3}\nseeds: [0, 1]\n")
    assert doc == {"name": "a", "training": {"lr": 0.01}, "model": {"lr": 3}, "seeds": [0, 1]}


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_BYTES + b"\nname: a\n")
    with pytest.raises(ConfigError, match="larger than 1,000,000 bytes"):
        read_yaml_file(big)


def test_binary_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match="cannot read grid file"):
        read_yaml_file(path)


def test_clip_keeps_one_short_line() -> None:
    assert clip("a\nb   c") == "a b c"
    assert len(clip("x" * 10_000)) == 300 and clip("x" * 10_000).endswith("…")


@pytest.mark.parametrize("name", ["alias bomb", "too many values", "deep nesting"])
def test_bombs_answer_fast_in_little_memory(name: str, tmp_path: Path) -> None:
    """In a fresh process: under 5 s and under 500 MB peak, as a user's run would be."""
    path = tmp_path / "grid.yaml"
    path.write_text(HOSTILE[name][0])
    # VmHWM: this process's own peak RSS (ru_maxrss would carry the forking parent's over).
    code = ("import re, sys; from orchestrator.safe_yaml import read_yaml_file; "
            "from pathlib import Path\n"
            "try:\n read_yaml_file(Path(sys.argv[1]))\nexcept Exception as e: print(e)\n"
            "status = Path('/proc/self/status').read_text()\n"
            "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=30)
    elapsed = time.perf_counter() - start
    peak_mb = int(out.stdout.split()[-1]) / 1024
    assert HOSTILE[name][1] in out.stdout
    assert elapsed < 5.0
    assert peak_mb < 500
