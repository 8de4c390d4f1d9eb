"""MLflow's users, made before the server starts (the one-shot `mlflow-init`, docs/deploy.md).

    python /opt/mlflow/launch.py python /opt/mlflow/init_auth.py

With MLflow's own auth store (the tables of ``--app-name basic-auth``, in the database of
``database_uri`` in $MLFLOW_AUTH_CONFIG_PATH):

- the admin (``admin_username``) is created on the first start from
  ``MLFLOW_AUTH_ADMIN_PASSWORD_FILE``; once it exists that file is not read, so it may be
  removed. The server itself never gets the admin password: it finds the admin made;
- the user the drivers sign in as (``LESSDATA_MLFLOW_USERNAME``, default ``lessdata``) is
  created from ``LESSDATA_MLFLOW_PASSWORD_FILE``, or given that password when it changed
  (rotation). It is never an admin: it can create experiments and runs and manages only
  the experiments it created; it reads others' as ``default_permission`` says.

Idempotent: every start of the stack runs it; a run with nothing to do changes nothing.
"""

from __future__ import annotations

import logging
import os
import sys

import launch  # its neighbour in /opt/mlflow (and deploy/mlflow): one secret reader
from mlflow.server.auth.config import read_auth_config
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

log = logging.getLogger("init_auth")


def read_secret(variable: str) -> str | None:
    """The one line in the file named by ``variable``; None when the variable is unset."""
    return None if os.environ.get(variable) is None else launch.read_secret(variable)


def ensure_admin(store: SqlAlchemyStore, username: str) -> str:
    if store.has_user(username, use_primary=True):
        return f"admin {username!r} exists"
    password = read_secret("MLFLOW_AUTH_ADMIN_PASSWORD_FILE")
    if password is None:
        sys.exit("init_auth: the admin does not exist yet: set MLFLOW_AUTH_ADMIN_PASSWORD_FILE "
                 "to the file with its password (first start only)")
    store.create_user(username, password, is_admin=True)
    return f"admin {username!r} created"


def ensure_driver_user(store: SqlAlchemyStore, username: str, admin: str) -> str:
    if username == admin:
        sys.exit(f"init_auth: LESSDATA_MLFLOW_USERNAME is the admin {admin!r}: drivers get "
                 "a user of their own")
    password = read_secret("LESSDATA_MLFLOW_PASSWORD_FILE")
    if password is None:
        sys.exit("init_auth: set LESSDATA_MLFLOW_PASSWORD_FILE to the drivers' password file")
    if not store.has_user(username, use_primary=True):
        store.create_user(username, password, is_admin=False)
        return f"user {username!r} created"
    changed = not store.authenticate_user(username, password, use_primary=True)
    # Never an admin, whatever someone made of it in the UI.
    store.update_user(username, password=password if changed else None, is_admin=False)
    return f"user {username!r} " + ("password updated" if changed else "unchanged")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="init_auth: %(message)s")
    config = read_auth_config()
    admin = config.admin_username or "admin"
    store = SqlAlchemyStore()
    store.init_db(config.database_uri)  # creates or migrates the auth tables
    log.info(ensure_admin(store, admin))
    username = os.environ.get("LESSDATA_MLFLOW_USERNAME", "lessdata")
    log.info(ensure_driver_user(store, username, admin))


if __name__ == "__main__":
    main()
