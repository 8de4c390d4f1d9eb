"""The registries of data sets and models: a name or an import path -> a factory.

A built-in data set's name and the capsule CNN's settings resolve to entries of these
registries, ``PluginSpec``s like the ones a grid names for its own data and model, so a
trial loads every data set and builds every model the same way (``trainers.plugins``).
Importing this module imports neither torch nor any factory.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trainers.config import DATASETS, ModelConfig, PluginSpec
from trainers.errors import ConfigError

__all__ = ["BUILTIN_DATASET", "CAPSULE", "code_digest", "code_on_path", "dataset_factory",
           "dataset_label", "import_factory", "is_plugin", "model_factory", "one_line"]

BUILTIN_DATASET = "trainers.data:builtin_dataset"
"""Every built-in data set's factory, called with ``name=`` (and its folder)."""
CAPSULE = "trainers.model:build_capsule"
"""The capsule CNN's factory, called with ``ModelConfig``'s fields as keyword arguments."""


def is_plugin(choice: object) -> bool:
    """Whether a config's ``dataset`` or ``model`` names a factory of its own."""
    return isinstance(choice, PluginSpec)


def dataset_factory(dataset: str | PluginSpec, data_dir: Path | None = None,
                    download: bool = False) -> PluginSpec:
    """The factory that loads ``dataset``: a built-in name's registry entry, or the plugin."""
    if isinstance(dataset, PluginSpec):
        return dataset
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)} "
                          "or {factory: 'package.module:function'}")
    where = None if data_dir is None else str(data_dir)
    return PluginSpec(factory=BUILTIN_DATASET,
                      kwargs={"name": dataset, "data_dir": where, "download": download})


def model_factory(model: ModelConfig | PluginSpec) -> PluginSpec:
    """The factory that builds ``model``: the capsule CNN's registry entry, or the plugin."""
    if isinstance(model, PluginSpec):
        return model
    return PluginSpec(factory=CAPSULE, kwargs=model.model_dump(mode="json"))


def dataset_label(dataset: str | PluginSpec) -> str:
    """A data set's name for tags and tables: the built-in name, or the factory's path."""
    return dataset.factory if isinstance(dataset, PluginSpec) else dataset


def import_factory(path: str, role: str = "factory") -> Callable[..., Any]:
    """The callable at ``"package.module:function"``; one ``ConfigError`` line otherwise.

    ``role`` names it in the error ("dataset factory", "model factory").
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{role} {path!r} is not an import path 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name + ".").startswith(exc.name + "."):  # it or its package
            raise ConfigError(f"{role} {path!r}: no module named {exc.name!r} (is its folder "
                              "listed under code:?)") from None
        raise ConfigError(f"{role} {path!r}: importing {module_name} failed: {one_line(exc)}"
                          ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing
        raise ConfigError(f"{role} {path!r}: importing {module_name} failed: {one_line(exc)}"
                          ) from None
    target = getattr(module, attr, None)
    if target is None:
        raise ConfigError(f"{role} {path!r}: module {module_name} has no {attr!r}")
    if not callable(target):
        raise ConfigError(f"{role} {path!r}: {attr} is a {type(target).__name__}, not callable")
    return target  # type: ignore[no-any-return]


def one_line(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def code_on_path(folders: Sequence[Path]) -> Iterator[None]:
    """The parents of ``folders`` first on ``sys.path`` for the block (each folder is then
    importable by its name, as Ray's ``py_modules`` makes it on a worker); afterwards
    ``sys.path`` is as it was and the modules imported from the folders are forgotten, so
    nothing later in this process (a Ray worker started from it, say) finds them there."""
    added = [str(Path(f).resolve().parent) for f in folders]
    roots = [str(Path(f).resolve()) for f in folders]
    sys.path[:0] = added
    importlib.invalidate_caches()
    try:
        yield
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None) or ""
            if any(origin.startswith(root + os.sep) for root in roots):
                del sys.modules[name]


def code_digest(folders: Sequence[Path]) -> str | None:
    """sha256 over every file of ``folders`` (relative path and bytes; caches skipped):
    a changed plugin is another digest. None when there are no folders."""
    if not folders:
        return None
    digest = hashlib.sha256()
    for folder in folders:
        root = Path(folder).resolve()
        digest.update(f"folder:{root.name}\n".encode())
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
                continue
            digest.update(f"{rel.as_posix()}\n".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
