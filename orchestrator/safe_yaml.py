"""Reading a grid file that may be hostile: bounded in size, depth and nodes, no aliases,
no duplicate keys. Every refusal is one short line (``ConfigError``).

PyYAML's safe loader already refuses code, but not a 584-byte alias bomb (a billion
references), a document nested a million deep (RecursionError) or a key given twice (the
last silently wins). The document is first walked as a stream of parser events, which
costs time and memory in proportion to the file's size, and only a document that passes
every bound is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trainers.errors import ConfigError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "clip", "load_yaml", "read_yaml_file"]

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NODES = 200_000
MAX_LINE = 300
"""Error lines quote at most this many characters of the user's input."""

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def clip(text: str, limit: int = MAX_LINE) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _NoDuplicates(_Loader):  # type: ignore[misc,valid-type]
    """The safe loader, refusing a mapping that gives one key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class says so
                break
            if duplicate:
                line = key_node.start_mark.line + 1
                raise ConfigError(f"duplicate key {clip(repr(key), 60)} at line {line}")
            seen.add(key)
        return dict(super().construct_mapping(node, deep=deep))


def _check_events(text: str, where: str) -> None:
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise ConfigError(f"{where}: YAML aliases (*{clip(str(event.anchor), 40)}) are not "
                              f"allowed in grid files (line {line})")
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_NODES:
                raise ConfigError(f"{where}: more than {MAX_NODES:,} values in one grid file")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_yaml(text: str, where: str = "grid") -> Any:
    """Parse ``text`` within every bound; ConfigError (one line) otherwise."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_BYTES:,} bytes; a grid file is small")
    try:
        _check_events(text, where)
        return yaml.load(text, Loader=_NoDuplicates)  # noqa: S506 - a safe loader
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}"
                          ) from None
    except yaml.YAMLError as exc:
        if "nesting depth" in str(exc):  # libyaml's own cap, met while scanning ahead
            raise ConfigError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{where}: malformed YAML{at}: {clip(problem, 120)}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None


def read_yaml_file(path: Path) -> Any:
    """Read and parse a grid file within every bound."""
    where = clip(str(path), 120)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{where}: larger than {MAX_BYTES:,} bytes; a grid file is small")
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read grid file: {clip(str(exc), 120)}") from None
    return load_yaml(text, where)
