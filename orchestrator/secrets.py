"""Secrets handed to the driver as files: ``NAME_FILE=/run/secrets/...`` becomes ``NAME``.

Runs on the driver only, once, where the CLI starts. On a cluster the secrets are files
(compose ``secrets:``, Kubernetes volume-mounted Secrets) and the containers' environment
holds only their paths, so no Ray process inherits a password; the driver reads the file
and sets the variable in its own environment, where the MLflow client looks for it.

The Ray token needs none of this: Ray reads ``RAY_AUTH_TOKEN_PATH`` itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from trainers.errors import ConfigError

__all__ = ["SECRET_VARIABLES", "apply_secret_files", "read_secret_files"]

# The variables that may come from a file; ``NAME_FILE`` names the file.
SECRET_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
FILE_SUFFIX = "_FILE"
MAX_SECRET_BYTES = 64 * 1024  # a password or a token, never a file to stream


def read_secret_files(environ: Mapping[str, str]) -> dict[str, str]:
    """``{NAME: value}`` for every ``NAME_FILE`` set in ``environ`` (``NAME`` in SECRET_VARIABLES).

    Raises ConfigError, one line naming the variable and the file, when the file is
    missing, a folder, unreadable, empty, not UTF-8 or too large, or when both ``NAME``
    and ``NAME_FILE`` are set (which one wins would be a guess).
    """
    values = {}
    for name in SECRET_VARIABLES:
        path = environ.get(name + FILE_SUFFIX)
        if path is None:
            continue
        if name in environ:
            raise ConfigError(f"both {name} and {name}{FILE_SUFFIX} are set: set only one "
                              f"(on a cluster, {name}{FILE_SUFFIX}, so no process inherits it)")
        values[name] = _read_secret(name + FILE_SUFFIX, path)
    return values


def apply_secret_files(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set each ``NAME`` from its ``NAME_FILE`` in ``environ`` (the process's own by default).

    ``NAME_FILE`` is removed once applied, so a second call is a no-op. Returns the names
    set, for a log line; the values never leave this process's environment.
    """
    env = os.environ if environ is None else environ
    values = read_secret_files(env)
    for name, value in values.items():
        env[name] = value
        del env[name + FILE_SUFFIX]
    return sorted(values)


def _read_secret(variable: str, path: str) -> str:
    where = f"{variable}={path!r}"
    if not path:
        raise ConfigError(f"{variable} is empty: set it to the path of the secret's file")
    try:
        with Path(path).open("rb") as f:  # follows links: Kubernetes mounts Secrets through them
            data = f.read(MAX_SECRET_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file (is the secret mounted?)") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a folder, not the secret's file") from None
    except PermissionError:
        raise ConfigError(f"{where}: not readable by this user (uid {os.getuid()})") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_SECRET_BYTES} bytes, not a secret's file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    # One trailing newline is what `echo` and most editors add; it is never part of a secret.
    value = text.removesuffix("\n").removesuffix("\r")
    if not value.strip():
        raise ConfigError(f"{where}: the file is empty")
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{where}: holds more than one line; a secret's file holds one value")
    return value
