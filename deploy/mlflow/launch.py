"""Start a command in the MLflow image with its secrets read from files (docs/deploy.md).

    python /opt/mlflow/launch.py mlflow server ...

The container's environment holds only paths (``NAME_FILE``); this launcher, the
container's first process, reads them and hands the values to the command alone:

- ``POSTGRES_PASSWORD_FILE`` becomes a libpq password file (``PGPASSFILE``) on the tmpfs
  $TMPDIR, mode 600, so the backend URI carries no password and no ``PGPASSWORD`` exists;
- ``MLFLOW_FLASK_SERVER_SECRET_KEY_FILE`` becomes ``MLFLOW_FLASK_SERVER_SECRET_KEY`` (MLflow
  reads the session key from its environment only).

A missing or empty file stops the start with one line naming it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ENV_FROM_FILE = ("MLFLOW_FLASK_SERVER_SECRET_KEY",)
POSTGRES = {"host": "postgres", "port": "5432", "database": "mlflow", "user": "mlflow"}


def read_secret(variable: str) -> str:
    """The one line in the file named by ``variable`` (also init_auth.py's reader)."""
    who = Path(sys.argv[0]).stem or "launch"
    path = os.environ.get(variable, "")
    try:
        value = Path(path).read_text().removesuffix("\n")
    except OSError as exc:
        sys.exit(f"{who}: {variable}={path!r}: cannot be read ({exc.strerror or exc})")
    if not value.strip() or "\n" in value:
        sys.exit(f"{who}: {variable}={path!r}: must hold one non-empty line")
    return value


def write_passfile(password: str) -> str:
    # One line of libpq's format: host:port:database:user:password, ':' and '\' escaped.
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    fields = [POSTGRES[k] for k in ("host", "port", "database", "user")]
    fd, path = tempfile.mkstemp(prefix="pgpass-")  # mode 600, on the tmpfs /tmp
    with os.fdopen(fd, "w") as f:
        f.write(":".join([*fields, escaped]) + "\n")
    return path


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: launch.py COMMAND [ARG ...]")
    env = dict(os.environ)
    if "POSTGRES_PASSWORD_FILE" in env:
        env["PGPASSFILE"] = write_passfile(read_secret("POSTGRES_PASSWORD_FILE"))
        del env["POSTGRES_PASSWORD_FILE"]
    for name in ENV_FROM_FILE:
        if name + "_FILE" in env:
            env[name] = read_secret(name + "_FILE")
            del env[name + "_FILE"]
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    main(sys.argv[1:])
